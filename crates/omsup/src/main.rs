//! The `omsup` binary: sets up output and hands over to the library's command dispatcher.

fn main() -> std::process::ExitCode {
    omsup::main_with_args(std::env::args_os())
}
