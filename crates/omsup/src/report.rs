//! The one error renderer (`error:`, `caused by:`, `hint:`) and tracing set-up.

use crate::cli::{GlobalArgs, LogFormat};
use crate::exit_codes;
use crate::style::Style;

/// An error on its way to the user: a message, its causes, an optional hint, an exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    pub exit_code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            exit_code: exit_codes::FAILURE,
        }
    }

    /// Builds from any error, walking its `source()` chain into `caused by:` lines.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut this = Self::new(error.to_string());
        let mut source = error.source();
        while let Some(cause) = source {
            this.causes.push(cause.to_string());
            source = cause.source();
        }
        this
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_exit_code(mut self, code: u8) -> Self {
        self.exit_code = code;
        self
    }

    pub fn exit_code(&self) -> u8 {
        self.exit_code
    }

    /// `error: ...` / `caused by: ...` / `hint: ...`, one per line, ending with a newline.
    pub fn render(&self, style: &Style) -> String {
        let mut out = format!("{} {}\n", style.red("error:"), self.message);
        for cause in &self.causes {
            // A cause of several lines (a log tail) stays under its `caused by:`.
            let cause = cause.replace('\n', "\n              ");
            out.push_str(&format!("  {} {cause}\n", style.bold("caused by:")));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("{} {hint}\n", style.cyan("hint:")));
        }
        out
    }
}

/// Logs go to stderr; `--log-format json` for machines; `RUST_LOG` or `-v` for detail.
pub fn init_tracing(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = match global.verbose {
        // sqlx warns of every statement slower than a second: noise while a server is down.
        0 => "warn,sqlx::query=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match global.log_format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
