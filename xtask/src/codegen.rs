//! `cargo xtask codegen` (placeholder until its owner fills it in).

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
