//! clap types: the raw command line, before it is resolved into per-command configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::style::ColorChoice;

const ABOUT: &str =
    "Declarative plan/apply upgrades for OceanBase Migration Service (OMS) Community Edition";

const AFTER_HELP: &str = concat!(
    "Examples:\n",
    "  omsup lint plans/*.toml                 validate plan files offline (for CI)\n",
    "  omsup plan -f oms-prod.toml             observe the deployment and show what would change\n",
    "  omsup plan -f oms-prod.toml --out p.json  save a plan bound to what was observed\n",
    "  omsup apply p.json                      apply a saved plan (refused if the world changed)\n",
    "  omsup resume                            continue an interrupted run from its journal\n",
    "  omsup rollback                          undo the last run\n",
    "\n",
    "Environment:\n",
    "  NO_COLOR      disable colour (colour is only ever used on a terminal)\n",
    "  RUST_LOG      log filter for stderr logs, e.g. `omsup=debug`\n",
    "\n",
);

#[derive(Debug, Parser)]
#[command(name = "omsup", version, about = ABOUT, after_help = format!("{AFTER_HELP}{}", crate::exit_codes::HELP_TABLE))]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// When to use colour on stderr/stdout
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Format of the logs written to stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logs on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate plan files offline: schema, semantics, upgrade path
    #[command(
        after_help = "Examples:\n  omsup lint plans/*.toml\n  omsup lint --format github plans/*.toml\n\nExit codes:\n  0  no findings at error level (warnings may have been printed)\n  1  at least one finding at error level\n  2  usage error, or a file that cannot be read"
    )]
    Lint(LintArgs),
    /// Observe the deployment, diff it against the plan file, and show the steps
    Plan(PlanArgs),
    /// Execute a plan (a plan file, re-planned, or a saved plan)
    Apply(ApplyArgs),
    /// Continue an interrupted run from its journal
    Resume(ResumeArgs),
    /// Undo a run, from any point, back to the state before it
    Rollback(RollbackArgs),
    /// Show the current or last run, step by step
    Status(StateArgs),
    /// Show every run recorded in the journal
    History(StateArgs),
    /// Print the step graph as DOT
    Graph(GraphArgs),
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Plan files to check
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Diagnostics with a snippet and a caret under the span
    Human,
    /// One versioned JSON document on stdout
    Json,
    /// GitHub Actions workflow commands (`::error file=...,line=...,col=...::`)
    Github,
}

/// Where the journal lives.
#[derive(Debug, Args)]
pub struct StateDirArgs {
    /// Journal directory (default: `.omsup/` next to the plan file, or in the current directory)
    #[arg(long, value_name = "DIR", env = "OMSUP_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan file
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Save the plan, bound to a fingerprint of what was observed, for `omsup apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Exit 0 when there is nothing to do, 1 on error, 2 when there are changes
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file (re-planned before applying)
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "saved_plan"
    )]
    pub file: Option<PathBuf>,
    /// A plan saved by `omsup plan --out`
    #[arg(value_name = "SAVED_PLAN", required_unless_present = "file")]
    pub saved_plan: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Progress format on stderr (`jsonl`: JSON Lines events on stdout)
    #[arg(long, value_enum, default_value_t = ProgressFormat::Human)]
    pub format: ProgressFormat,
    /// How many steps may run at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Take over a stale lock with this id (see the refusal message)
    #[arg(long, value_name = "LOCK_ID")]
    pub force_unlock: Option<String>,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressFormat {
    Human,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The plan file (default: the one the run was started with)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Progress format on stderr (`jsonl`: JSON Lines events on stdout)
    #[arg(long, value_enum, default_value_t = ProgressFormat::Human)]
    pub format: ProgressFormat,
    /// How many steps may run at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Take over a stale lock with this id (see the refusal message)
    #[arg(long, value_name = "LOCK_ID")]
    pub force_unlock: Option<String>,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The run to undo (default: the last one)
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// The plan file (default: the one the run was started with)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Keep the new containers, stopped and renamed, instead of removing them
    #[arg(long)]
    pub keep_new: bool,
    /// Progress format on stderr (`jsonl`: JSON Lines events on stdout)
    #[arg(long, value_enum, default_value_t = ProgressFormat::Human)]
    pub format: ProgressFormat,
    /// How many steps may run at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Take over a stale lock with this id (see the refusal message)
    #[arg(long, value_name = "LOCK_ID")]
    pub force_unlock: Option<String>,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// The plan file whose journal to read
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The plan file
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}
