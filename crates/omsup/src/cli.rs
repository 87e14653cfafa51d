//! clap types: the raw command line, before it is resolved into per-command configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit_codes;
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
#[command(name = "omsup", version = crate::VERSION, about = ABOUT, after_help = format!("{AFTER_HELP}{}", exit_codes::help_table(exit_codes::ROOT)))]
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
    /// Write a plan file from the running deployment (reads only; never changes anything)
    #[command(
        after_help = help::INIT.render(),
        long_about = "Write a plan file from the running deployment.\n\nReads only: it connects to each given Docker daemon, inspects the OMS container and reads its config.yaml (the meta password in it is never copied). It never changes anything: no container, image or database is touched."
    )]
    Init(Box<InitArgs>),
    /// Validate plan files offline: schema, semantics, upgrade path
    #[command(after_help = help::LINT.render())]
    Lint(LintArgs),
    /// Observe the deployment, diff it against the plan file, and show the steps
    #[command(after_help = help::PLAN.render())]
    Plan(PlanArgs),
    /// Execute a plan (a plan file, re-planned, or a saved plan)
    #[command(after_help = help::APPLY.render())]
    Apply(ApplyArgs),
    /// Continue an interrupted run from its journal
    #[command(after_help = help::RESUME.render())]
    Resume(ResumeArgs),
    /// Undo a run, from any point, back to the state before it
    #[command(after_help = help::ROLLBACK.render())]
    Rollback(RollbackArgs),
    /// Show the current or last run, step by step
    #[command(after_help = help::STATUS.render())]
    Status(StateArgs),
    /// Show every run recorded in the journal
    #[command(after_help = help::HISTORY.render())]
    History(StateArgs),
    /// Run the target version's init against copies of the meta databases, before the outage
    #[command(
        after_help = help::REHEARSE.render(),
        long_about = "Run the target version's init against copies of the meta databases, before the outage.\n\nWith the deployment still running, copies rm, cm and every cm_hb into scratch databases on the same server (`<deployment>_rh_<id>_<role>`, marked as a rehearsal's), starts one throwaway container of the target image with a config.yaml pointing at the copies (on the daemon `[rehearsal]` names, default the first node's, on a `bridge` network of its own), runs `docker_init.sh` with `IS_UPGRADE=true` as apply would, checks the copies (schema version, rows kept, the host ONLINE), then removes the container and the copies, whatever happened. Nothing of the deployment is changed. The deployment lock is held throughout, so it never runs beside an apply. What a killed rehearsal left is removed by the next one, or by `--clean`."
    )]
    Rehearse(RehearseArgs),
    /// Print the step graph as DOT (from a plan file, or a saved plan without observing)
    #[command(after_help = help::GRAPH.render())]
    Graph(GraphArgs),
    /// Write one journaled run as a self-contained HTML page (a timeline by lane)
    #[command(after_help = help::REPORT.render())]
    Report(ReportArgs),
    /// Manage where the journal lives: move a deployment's history between backends
    #[command(after_help = help::STATE.render())]
    State(StateCommandArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = help::COMPLETIONS.render())]
    Completions(CompletionsArgs),
}

/// Examples and exit codes of each command's `--help`, kept as data so that a test can check
/// that every command has both.
pub mod help {
    use crate::exit_codes::{
        FAILURE, INTERRUPTED_AT_ONCE_LINE, INTERRUPTED_LINE, Meaning, PLAN_HAS_CHANGES,
        REFUSED_LINE, SUCCESS, USAGE_LINE,
    };

    /// The part of a command's `--help` after its flags.
    #[derive(Debug)]
    pub struct CommandHelp {
        pub examples: &'static [(&'static str, &'static str)],
        pub exit_codes: &'static [Meaning],
    }

    impl CommandHelp {
        pub fn render(&self) -> String {
            let width = self
                .examples
                .iter()
                .map(|(c, _)| c.len())
                .max()
                .unwrap_or(0);
            let mut text = String::from("Examples:");
            for (command, what) in self.examples {
                text.push_str(&format!("\n  {command:<width$}  {what}"));
            }
            format!(
                "{text}\n\n{}",
                crate::exit_codes::help_table(self.exit_codes)
            )
        }
    }

    pub const INIT: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup init --node ssh://admin@10.0.0.2 --node ssh://admin@10.0.0.3 --target-version 4.2.9 --out oms.toml",
                "two nodes, the OMS container found by its mounts",
            ),
            (
                "omsup init --node tcp://10.0.0.2:2376 --tls-ca ca.pem --tls-cert cert.pem --tls-key key.pem --container oms_428 --target-version 4.2.9",
                "over TLS, the container named; the plan on stdout",
            ),
            (
                "omsup init --node unix:///var/run/docker.sock --target-version 4.2.9 --password-file /etc/omsup/meta.pass --out oms.toml",
                "the plan reads the meta password from a file",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "the plan file was written (or printed)"),
            (
                FAILURE,
                "a node could not be read, or the deployment's config.yaml files disagree or name nodes not given: nothing written",
            ),
            (
                crate::exit_codes::USAGE,
                "usage error (bad flags or arguments, an invalid version) or `--out` exists without `--force`",
            ),
        ],
    };
    pub const LINT: CommandHelp = CommandHelp {
        examples: &[
            ("omsup lint plans/*.toml", "check plan files offline"),
            (
                "omsup lint --format github plans/*.toml",
                "annotations for GitHub Actions",
            ),
            (
                "omsup lint --format json oms.toml",
                "one versioned JSON document",
            ),
        ],
        exit_codes: &[
            (
                SUCCESS,
                "no findings at error level (warnings may have been printed)",
            ),
            (FAILURE, "at least one finding at error level"),
            USAGE_LINE,
        ],
    };
    pub const PLAN: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup plan -f oms.toml",
                "observe and show what would change",
            ),
            (
                "omsup plan -f oms.toml --out upgrade.plan.json",
                "save the plan for `omsup apply`",
            ),
            (
                "omsup plan -f oms.toml --format json",
                "the versioned JSON plan",
            ),
            (
                "omsup plan -f oms.toml --detailed-exitcode",
                "0 nothing to do, 2 changes (for scripts)",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "success (with --detailed-exitcode: nothing to do)"),
            (
                FAILURE,
                "an invalid plan file or a part of the world that cannot be observed",
            ),
            (
                PLAN_HAS_CHANGES,
                "with --detailed-exitcode: the plan has changes",
            ),
            USAGE_LINE,
        ],
    };
    pub const APPLY: CommandHelp = CommandHelp {
        examples: &[
            ("omsup apply -f oms.toml", "plan, show, ask, then apply"),
            (
                "omsup apply upgrade.plan.json",
                "apply exactly a saved plan",
            ),
            (
                "omsup apply -f oms.toml --yes --format jsonl",
                "no question; JSON Lines events on stdout",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "applied (or nothing to do)"),
            (FAILURE, "a step failed or a service is unreachable"),
            REFUSED_LINE,
            INTERRUPTED_LINE,
            USAGE_LINE,
            INTERRUPTED_AT_ONCE_LINE,
        ],
    };
    pub const RESUME: CommandHelp = CommandHelp {
        examples: &[
            ("omsup resume -f oms.toml", "continue the unfinished run"),
            (
                "omsup resume -f oms.toml --force-unlock <LOCK_ID>",
                "take over a stale lock first",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "the run finished (or nothing to resume)"),
            (FAILURE, "a step failed or a service is unreachable"),
            REFUSED_LINE,
            INTERRUPTED_LINE,
            USAGE_LINE,
            INTERRUPTED_AT_ONCE_LINE,
        ],
    };
    pub const ROLLBACK: CommandHelp = CommandHelp {
        examples: &[
            ("omsup rollback -f oms.toml", "undo the last apply"),
            (
                "omsup rollback -f oms.toml --run <RUN_ID> --keep-new",
                "undo that run, keep the new containers stopped",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "undone (or nothing to undo)"),
            (FAILURE, "a step failed or a service is unreachable"),
            REFUSED_LINE,
            INTERRUPTED_LINE,
            USAGE_LINE,
            INTERRUPTED_AT_ONCE_LINE,
        ],
    };
    pub const STATUS: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup status -f oms.toml",
                "the last run, step by step, and the lock",
            ),
            (
                "omsup status --state-dir .omsup --format json",
                "versioned JSON",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "shown"),
            (FAILURE, "the journal cannot be read"),
            USAGE_LINE,
        ],
    };
    pub const HISTORY: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup history -f oms.toml",
                "every run, rollbacks under the runs they undid",
            ),
            ("omsup history -f oms.toml --format json", "versioned JSON"),
        ],
        exit_codes: &[
            (SUCCESS, "shown"),
            (FAILURE, "the journal cannot be read"),
            USAGE_LINE,
        ],
    };
    pub const REHEARSE: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup rehearse -f oms.toml",
                "init of the target version against copies, then cleaned up",
            ),
            (
                "omsup rehearse -f oms.toml --clean",
                "only remove what a killed rehearsal left",
            ),
        ],
        exit_codes: &[
            (
                SUCCESS,
                "the rehearsal succeeded (or there was nothing to rehearse or clean)",
            ),
            (
                FAILURE,
                "the rehearsal failed (the step and init's log tail; apply would fail the same way), a service is unreachable, or the plan file has errors",
            ),
            (
                crate::exit_codes::REFUSED,
                "refused before touching anything: lock held, unfinished run",
            ),
            (
                crate::exit_codes::INTERRUPTED,
                "interrupted (Ctrl-C, SIGTERM): the copies and the container were removed",
            ),
            USAGE_LINE,
        ],
    };
    pub const GRAPH: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup graph -f oms.toml | dot -Tsvg > steps.svg",
                "observe, plan, draw",
            ),
            (
                "omsup graph upgrade.plan.json",
                "draw a saved plan without observing",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "the graph was printed"),
            (
                FAILURE,
                "a part of the world could not be observed (what could be planned is still printed)",
            ),
            USAGE_LINE,
        ],
    };
    pub const REPORT: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup report -f oms.toml",
                "the last run, as omsup-<deployment>-<run>.html",
            ),
            (
                "omsup report -f oms.toml --run <RUN_ID> --out run.html",
                "that run, to run.html",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "written (its path is printed on stdout)"),
            (
                FAILURE,
                "the journal or the run cannot be read, or the page cannot be written",
            ),
            USAGE_LINE,
        ],
    };
    pub const STATE: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup state migrate --to meta_db -f oms.toml",
                "the local journal's history into the meta database server",
            ),
            (
                "omsup state migrate --to local -f oms.toml --state-dir .omsup",
                "the server's history back into a local journal",
            ),
        ],
        exit_codes: &[
            (SUCCESS, "every run and event copied"),
            (FAILURE, "a journal cannot be read or written"),
            REFUSED_LINE,
            USAGE_LINE,
        ],
    };
    pub const COMPLETIONS: CommandHelp = CommandHelp {
        examples: &[
            (
                "omsup completions bash > /etc/bash_completion.d/omsup",
                "bash, system-wide",
            ),
            ("omsup completions zsh > \"${fpath[1]}/_omsup\"", "zsh"),
            (
                "omsup completions fish > ~/.config/fish/completions/omsup.fish",
                "fish",
            ),
        ],
        exit_codes: &[(SUCCESS, "printed"), USAGE_LINE],
    };

    /// Every command's help, by command name (kept in step with `Command` by a test).
    pub const ALL: &[(&str, &CommandHelp)] = &[
        ("init", &INIT),
        ("lint", &LINT),
        ("plan", &PLAN),
        ("apply", &APPLY),
        ("resume", &RESUME),
        ("rollback", &ROLLBACK),
        ("status", &STATUS),
        ("history", &HISTORY),
        ("rehearse", &REHEARSE),
        ("graph", &GRAPH),
        ("report", &REPORT),
        ("state", &STATE),
        ("completions", &COMPLETIONS),
    ];
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// The plan file
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Only remove what earlier (killed) rehearsals left: scratch databases and containers
    #[arg(long)]
    pub clean: bool,
    /// Take over a stale lock with this id (see the refusal message)
    #[arg(long, value_name = "LOCK_ID")]
    pub force_unlock: Option<String>,
    #[command(flatten)]
    pub state: StateDirArgs,
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
    /// Exit 0 when there is nothing to do, 1 on error, 2 when there are changes (usage errors exit 64)
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
    #[command(flatten)]
    pub source: PlanSource,
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
    #[command(flatten)]
    pub source: PlanSource,
}

/// A plan file (observed and planned) or a plan saved by `omsup plan --out`, exactly one.
#[derive(Debug, Args)]
pub struct PlanSource {
    /// The plan file (the deployment is observed and planned)
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "saved_plan"
    )]
    pub file: Option<PathBuf>,
    /// A plan saved by `omsup plan --out` (`apply` checks it against the world first)
    #[arg(value_name = "SAVED_PLAN", required_unless_present = "file")]
    pub saved_plan: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StateCommandArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy a deployment's history (every run and event) from the backend its plan file names
    /// into the other one; then switch `[state] backend` in the plan file
    #[command(after_help = help::STATE.render())]
    Migrate(MigrateArgs),
}

/// `[state] backend`, as `--to` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// A SQLite file in the state directory
    Local,
    /// omsup's database in the meta database server
    #[value(name = "meta_db")]
    MetaDb,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Where the history goes (it comes from the backend the plan file names)
    #[arg(long, value_enum)]
    pub to: BackendArg,
    /// The plan file of the deployment
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The plan file whose journal to read
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The run to draw (default: the last one)
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Where to write the page (default: `omsup-<deployment>-<run id>.html` here)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `omsup init`: everything not read off the deployment comes from these flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// A node's Docker endpoint (`unix:///path`, `tcp://host:port`, `ssh://user@host`); once per node
    #[arg(long = "node", value_name = "ENDPOINT", required = true)]
    pub nodes: Vec<String>,
    /// The OMS container's name (default: the one running container that mounts the OMS paths)
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// The version to upgrade to, e.g. `4.2.9`
    #[arg(long, value_name = "VERSION")]
    pub target_version: String,
    /// Write the plan here (default: print it on stdout)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace `--out` when it exists
    #[arg(long)]
    pub force: bool,
    /// The deployment's name (default: `oms-<first region>`)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The image package to load (default: `oms-<target>-ce.tar` in the current directory)
    #[arg(long, value_name = "FILE")]
    pub image_package: Option<PathBuf>,
    /// The tag the package yields (default: `oms:feature_<target>-ce`)
    #[arg(long, value_name = "TAG")]
    pub image_tag: Option<String>,
    /// Where backups go
    #[arg(long, value_name = "DIR", default_value = "/var/backups/omsup")]
    pub backup_dir: PathBuf,
    /// The environment variable the plan names for the meta password [default: OMSUP_META_PASSWORD]
    #[arg(long, value_name = "VARIABLE", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// A file the plan names for the meta password (instead of `--password-env`)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// CA certificate for `tcp://` endpoints
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate for `tcp://` endpoints
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// Client key for `tcp://` endpoints
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// The private key to log in with on `ssh://` endpoints (default: ssh's own configuration)
    #[arg(long, value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// The known-hosts file holding the `ssh://` nodes' host keys (checked strictly)
    #[arg(long, value_name = "FILE")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// The `#:schema` line's target (editors validate the file against it)
    #[arg(
        long,
        value_name = "PATH|URL",
        default_value = "../schemas/plan.schema.json"
    )]
    pub schema: String,
}
