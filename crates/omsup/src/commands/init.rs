//! `omsup init --node ENDPOINT... --target-version X`: write a plan file from the running
//! deployment. Read-only: it inspects containers and reads config.yaml through each node's
//! Docker daemon (`omsup_exec::observe::discover`), builds the plan with
//! `omsup_engine::init::build_plan` (which refuses disagreeing config.yaml files and nodes that
//! `cm_nodes` names but that were not given), renders it with the comments of the example plans
//! (`render_plan_toml`), checks that the text lints clean and reads back as the same plan, and
//! writes it (`--out`, never over an existing file without `--force`) or prints it.
//!
//! Exit codes: 0 written, 1 a node could not be read or the cross-checks failed (nothing is
//! written), 64 usage (bad flags, an existing `--out` without `--force`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use omsup_engine::init::{
    InitFinding, InitOptions, NodeSeen, PasswordSource, build_plan, hosts_not_given,
};
use omsup_engine::observed::MetaDbReach;
use omsup_exec::observe::discover::discover_node;
use omsup_exec::observe::observe;
use omsup_exec::secrets::Secrets;
use omsup_model::lint::lint_source;
use omsup_model::plan::{ContainerOptions, Mounts, SshFiles, TlsFiles};
use omsup_model::{DockerEndpoint, OmsVersion, PlanFile, Severity};

use crate::cli::InitArgs;
use crate::commands::common::runtime;
use crate::exit_codes;
use crate::report::CliError;
use crate::style::Style;

/// The variable the plan names for the meta password unless `--password-env` says otherwise.
pub const DEFAULT_PASSWORD_ENV: &str = "OMSUP_META_PASSWORD";

pub fn run(args: &InitArgs, style: &Style) -> Result<u8, CliError> {
    let usage = |message: String| CliError::new(message).with_exit_code(exit_codes::USAGE);
    let target_version: OmsVersion = args.target_version.parse().map_err(|_| {
        usage(format!("`{}` is not an OMS version", args.target_version))
            .with_hint("give it as `4.2.9` or `4.2.9-CE`")
    })?;
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        return Err(usage(format!("`{}` already exists", out.display()))
            .with_hint("choose another `--out`, or add `--force` to replace it"));
    }
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let tls = match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
            ca: absolute(ca),
            cert: absolute(cert),
            key: absolute(key),
        }),
        _ => None,
    };
    let ssh = (args.ssh_identity.is_some() || args.ssh_known_hosts.is_some()).then(|| SshFiles {
        identity: args.ssh_identity.as_deref().map(absolute),
        known_hosts: args.ssh_known_hosts.as_deref().map(absolute),
    });
    let options =
        InitOptions {
            name: args.name.clone(),
            target_version,
            image_package: absolute(&args.image_package.clone().unwrap_or_else(|| {
                PathBuf::from(format!("oms-{}-ce.tar", target_version.numeric()))
            })),
            image_tag: args.image_tag.clone(),
            backup_dir: absolute(&args.backup_dir),
            password: match &args.password_file {
                Some(file) => PasswordSource::File(absolute(file)),
                None => PasswordSource::Env(
                    args.password_env
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PASSWORD_ENV.into()),
                ),
            },
        };

    let seen = runtime()?.block_on(read_nodes(args, tls.as_ref(), ssh.as_ref()));
    let mut nodes = Vec::new();
    let mut unreadable = 0;
    for result in seen {
        match result {
            Ok(node) => nodes.push(node),
            Err(error) => {
                unreadable += 1;
                let hint = error.hint();
                anstream::eprint!(
                    "{}",
                    CliError::from_error(&error).with_hint(hint).render(style)
                );
            }
        }
    }
    if unreadable > 0 {
        return Err(CliError::new(format!(
            "{unreadable} of {} nodes could not be read: no plan written",
            args.nodes.len()
        )));
    }

    let plan = match build_plan(&nodes, &options) {
        Ok(plan) => plan,
        Err(findings) => return Err(report_findings(args, &findings, style)),
    };
    let findings = check_cm_hosts(&plan, style)?;
    if !findings.is_empty() {
        return Err(report_findings(args, &findings, style));
    }
    let text = render_plan_toml(&plan, &args.schema, nodes.len());
    check_written_plan(&text, &plan)?;
    match &args.out {
        Some(out) => {
            std::fs::write(out, &text).map_err(|error| {
                CliError::new(format!("cannot write `{}`", out.display()))
                    .with_cause(error.to_string())
            })?;
            let regions = plan.regions.len();
            anstream::eprintln!(
                "wrote {}: {} node{} in {regions} region{}, {} → {}",
                out.display(),
                nodes.len(),
                plural(nodes.len()),
                plural(regions),
                plan.deployment
                    .current_version
                    .as_deref()
                    .unwrap_or("(mixed versions)"),
                plan.deployment.target_version
            );
            let password = match &options.password {
                PasswordSource::Env(variable) => {
                    format!("export {variable}=... (the meta password)")
                }
                PasswordSource::File(file) => {
                    format!("put the meta password in {} (mode 0600)", file.display())
                }
            };
            anstream::eprintln!(
                "next: check [image] and [backup], {password}, then `omsup plan -f {}`",
                out.display()
            );
        }
        None => anstream::print!("{text}"),
    }
    Ok(exit_codes::SUCCESS)
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// When the password the plan names is at hand, the cm database's `host` table must list no
/// node that was not given. Without it the check is skipped, and a note says so.
fn check_cm_hosts(plan: &PlanFile, style: &Style) -> Result<Vec<InitFinding>, CliError> {
    let Ok(secrets) = Secrets::from_plan(plan) else {
        anstream::eprintln!(
            "{} the cm database's `host` table was not checked for nodes left out: the meta password the plan names is not set",
            style.cyan("note:")
        );
        return Ok(Vec::new());
    };
    let observation = runtime()?.block_on(observe(plan, &secrets));
    match &observation.world.meta_db {
        MetaDbReach::Reachable(db) => Ok(hosts_not_given(plan, &db.hosts)),
        MetaDbReach::Unreachable { error } => {
            anstream::eprintln!(
                "{} the cm database's `host` table was not checked for nodes left out: {error}",
                style.cyan("note:")
            );
            Ok(Vec::new())
        }
    }
}

/// Reads every given node concurrently, in the order given.
async fn read_nodes(
    args: &InitArgs,
    tls: Option<&TlsFiles>,
    ssh: Option<&SshFiles>,
) -> Vec<Result<NodeSeen, omsup_exec::observe::discover::DiscoverError>> {
    let mut set = tokio::task::JoinSet::new();
    for (index, endpoint) in args.nodes.iter().enumerate() {
        let endpoint = endpoint.clone();
        let container = args.container.clone();
        // TLS files only mean something for tcp:// endpoints.
        let tls = tls.filter(|_| endpoint.starts_with("tcp://")).cloned();
        // SSH files only for ssh:// endpoints.
        let ssh = ssh.filter(|_| endpoint.starts_with("ssh://")).cloned();
        set.spawn(async move {
            let result =
                discover_node(&endpoint, tls.as_ref(), ssh.as_ref(), container.as_deref()).await;
            (index, result)
        });
    }
    let mut results: Vec<_> = set.join_all().await.into_iter().collect();
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Prints every finding, and returns the error that ends the command (with the command line
/// that would include the nodes left out, when some were).
fn report_findings(args: &InitArgs, findings: &[InitFinding], style: &Style) -> CliError {
    let mut missing = Vec::new();
    for finding in findings {
        missing.extend(finding.missing_node().map(str::to_owned));
        let mut error = CliError::new(finding.message());
        match finding {
            InitFinding::NodeNotGiven { ip, .. } => {
                error = error.with_hint(format!(
                    "add `--node` with the Docker endpoint of {ip}, or fix `cm_nodes` if it is no longer part of the deployment"
                ));
            }
            InitFinding::HostNotGiven { ip, .. } => {
                error = error.with_hint(format!(
                    "add `--node` with the Docker endpoint of {ip}, or remove it from the OMS console if it is no longer part of the deployment"
                ));
            }
            InitFinding::Disagreement { .. } => {
                error = error.with_hint(
                    "omsup does not merge config.yaml files: make them agree (or give only the nodes of one deployment), then run `omsup init` again",
                );
            }
            InitFinding::MissingKey { .. } => {
                error =
                    error.with_hint("the deployer writes this key into every node's config.yaml");
            }
            InitFinding::NoHostIp { .. } => {
                error =
                    error.with_hint("OMS containers are created with `-e OMS_HOST_IP=<node ip>`");
            }
            InitFinding::DuplicateNode { .. } => {
                error = error.with_hint("give each node once");
            }
        }
        anstream::eprint!("{}", error.render(style));
    }
    let mut error = CliError::new(format!(
        "{} problem{} in the deployment: no plan written",
        findings.len(),
        plural(findings.len())
    ));
    if !missing.is_empty() {
        error = error.with_hint(format!(
            "include every node: {}",
            command_line(args, &missing)
        ));
    }
    error
}

/// The `omsup init` command line of `args` with a `--node` for each of `missing`, guessing each
/// one's endpoint from the scheme of the first given node (`ssh://USER@<ip>` when it cannot).
pub fn command_line(args: &InitArgs, missing: &[String]) -> String {
    let guess = |ip: &str| match args
        .nodes
        .first()
        .and_then(|e| e.parse::<DockerEndpoint>().ok())
    {
        Some(DockerEndpoint::Tcp { port, .. }) => format!("tcp://{ip}:{port}"),
        Some(DockerEndpoint::Ssh {
            user: Some(user),
            port,
            ..
        }) => match port {
            Some(port) => format!("ssh://{user}@{ip}:{port}"),
            None => format!("ssh://{user}@{ip}"),
        },
        _ => format!("ssh://USER@{ip}"),
    };
    let mut words: Vec<String> = vec!["omsup".into(), "init".into()];
    for endpoint in &args.nodes {
        words.extend(["--node".into(), endpoint.clone()]);
    }
    for ip in missing {
        words.extend(["--node".into(), guess(ip)]);
    }
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            words.extend([name.to_owned(), value]);
        }
    };
    flag("--container", args.container.clone());
    flag("--target-version", Some(args.target_version.clone()));
    flag("--name", args.name.clone());
    flag(
        "--image-package",
        args.image_package.as_ref().map(|p| p.display().to_string()),
    );
    flag("--image-tag", args.image_tag.clone());
    flag("--password-env", args.password_env.clone());
    flag(
        "--password-file",
        args.password_file.as_ref().map(|p| p.display().to_string()),
    );
    flag("--out", args.out.as_ref().map(|p| p.display().to_string()));
    words
        .iter()
        .map(|word| shell_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The written text must lint clean and read back as exactly the plan that was built.
fn check_written_plan(text: &str, plan: &PlanFile) -> Result<(), CliError> {
    let linted = lint_source(text);
    let errors: Vec<String> = linted
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect();
    if !errors.is_empty() {
        let mut error = CliError::new("the plan file would not lint clean: no plan written")
            .with_hint(
                "each cause names a field: fix the flag that set it (`--name`, `--image-tag`, ...) or the deployment value it was read from",
            );
        for line in errors {
            error = error.with_cause(line);
        }
        return Err(error);
    }
    if linted.plan.as_ref() != Some(plan) {
        return Err(CliError::new(
            "the plan text omsup init rendered does not read back as the plan it built (a bug in omsup)",
        )
        .with_hint("please report it, with the output of `omsup init` without `--out`"));
    }
    Ok(())
}

/// A TOML basic string.
fn q(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn qp(path: &Path) -> String {
    q(&path.display().to_string())
}

/// The plan as a commented TOML file, laid out as `plans/two-nodes-ha.toml`.
pub fn render_plan_toml(plan: &PlanFile, schema: &str, node_count: usize) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "#:schema {schema}");
    let _ = writeln!(
        o,
        "# Written by `omsup init` from the running deployment ({node_count} node{}, {} region{}).",
        plural(node_count),
        plan.regions.len(),
        plural(plan.regions.len())
    );
    let _ = writeln!(
        o,
        "# Check [image] and [backup], provide the meta password, then run `omsup plan -f <this file>`."
    );
    let d = &plan.deployment;
    let _ = writeln!(o, "\n[deployment]");
    let _ = writeln!(o, "name = {}", q(&d.name));
    let _ = writeln!(o, "target_version = {}", q(&d.target_version));
    match &d.current_version {
        Some(current) => {
            let _ = writeln!(
                o,
                "# What the containers run now (read off their image tags). `lint` checks the upgrade\n# path against it offline; `plan` always observes the real version and cross-checks it."
            );
            let _ = writeln!(o, "current_version = {}", q(current));
        }
        None => {
            let _ = writeln!(
                o,
                "# The nodes run different versions (or untagged images): current_version is left out."
            );
        }
    }
    let _ = writeln!(o, "\n[image]");
    let _ = writeln!(
        o,
        "package = {} # what `docker load` reads on each node (operator side)",
        qp(&plan.image.package)
    );
    let _ = writeln!(
        o,
        "tag = {} # what loading it must yield",
        q(&plan.image.tag)
    );

    let m = &plan.meta_db;
    let _ = writeln!(
        o,
        "\n# Read from config.yaml (oms_meta_host, oms_meta_port, oms_meta_user, drc_rm_db, drc_cm_db)."
    );
    let _ = writeln!(o, "[meta_db]");
    let _ = writeln!(o, "host = {}", q(&m.host));
    let _ = writeln!(o, "port = {}", m.port);
    let _ = writeln!(o, "user = {}", q(&m.user));
    if let Some(variable) = &m.password_env {
        let _ = writeln!(
            o,
            "password_env = {} # or password_file = \"/etc/omsup/meta.pass\"; never a literal",
            q(variable)
        );
    }
    if let Some(file) = &m.password_file {
        let _ = writeln!(
            o,
            "password_file = {} # or password_env = \"OMSUP_META_PASSWORD\"; never a literal",
            qp(file)
        );
    }
    let _ = writeln!(o, "rm = {}", q(&m.rm));
    let _ = writeln!(o, "cm = {}", q(&m.cm));

    let _ = writeln!(o, "\n[backup]");
    let _ = writeln!(o, "dir = {}", qp(&plan.backup.dir));

    let t = &plan.timeouts;
    let _ = writeln!(o, "\n[timeouts]");
    let _ = writeln!(
        o,
        "readiness = {} # polls /oms/health and the start log line; never a blind sleep",
        q(&t.readiness.to_string())
    );
    let _ = writeln!(o, "init = {}", q(&t.init.to_string()));
    let _ = writeln!(o, "stop = {}", q(&t.stop.to_string()));
    let _ = writeln!(o, "online = {}", q(&t.online.to_string()));

    let _ = writeln!(o, "\n[ha]");
    let _ = writeln!(
        o,
        "after = \"restore\" # \"restore\" (the value seen before) | \"on\" | \"off\""
    );

    let _ = writeln!(
        o,
        "\n# Every node's new container gets these, as the running containers have them. A node may\n# override them in its own `[region.node.container_overrides]` table."
    );
    let _ = writeln!(o, "[container]");
    container_lines(o, &plan.container);

    if let Some(mounts) = &plan.mounts {
        let _ = writeln!(
            o,
            "\n# The host paths every old container mounts; `plan` checks them, the new containers reuse them."
        );
        let _ = writeln!(o, "[mounts]");
        mount_lines(o, mounts);
    }

    for region in &plan.regions {
        let _ = writeln!(
            o,
            "\n# The region's name and heartbeat database: cm_region and drc_cm_heartbeat_db in its nodes' config.yaml."
        );
        let _ = writeln!(o, "[[region]]");
        let _ = writeln!(o, "name = {}", q(&region.name));
        let _ = writeln!(o, "cm_hb = {}", q(&region.cm_hb));
        for node in &region.nodes {
            let _ = writeln!(o, "\n  [[region.node]]");
            let _ = writeln!(o, "  ip = {} # OMS_HOST_IP", q(&node.ip));
            let _ = writeln!(o, "  docker = {}", q(&node.docker));
            let _ = writeln!(o, "  container = {}", q(&node.container));
            if let Some(tls) = &node.tls {
                let _ = writeln!(
                    o,
                    "  tls = {{ ca = {}, cert = {}, key = {} }}",
                    qp(&tls.ca),
                    qp(&tls.cert),
                    qp(&tls.key)
                );
            }
            if let Some(ssh) = &node.ssh {
                let files: Vec<String> = [
                    ("identity", &ssh.identity),
                    ("known_hosts", &ssh.known_hosts),
                ]
                .into_iter()
                .filter_map(|(key, path)| path.as_ref().map(|p| format!("{key} = {}", qp(p))))
                .collect();
                let _ = writeln!(o, "  ssh = {{ {} }}", files.join(", "));
            }
            if let Some(overrides) = &node.container_overrides {
                let _ = writeln!(o, "\n    [region.node.container_overrides]");
                let mut lines = String::new();
                container_lines(&mut lines, overrides);
                for line in lines.lines() {
                    let _ = writeln!(o, "    {line}");
                }
            }
            if let Some(mounts) = &node.mounts {
                let _ = writeln!(
                    o,
                    "\n    [region.node.mounts] # what this node's container mounts"
                );
                let mut lines = String::new();
                mount_lines(&mut lines, mounts);
                for line in lines.lines() {
                    let _ = writeln!(o, "    {line}");
                }
            }
        }
    }
    out
}

fn container_lines(o: &mut String, c: &ContainerOptions) {
    if let Some(network) = &c.network {
        let _ = writeln!(o, "network = {}", q(network));
    }
    if let Some(privileged) = c.privileged {
        let _ = writeln!(o, "privileged = {privileged}");
    }
    if let Some(limit) = c.pids_limit {
        let _ = writeln!(o, "pids_limit = {limit}");
    }
    if let Some(nproc) = c.ulimit_nproc {
        let _ = writeln!(o, "ulimit_nproc = {nproc}");
    }
    if let Some(cert) = &c.https_cert {
        let _ = writeln!(o, "https_cert = {} # mounted at /etc/pki/nginx/", qp(cert));
    }
    if let Some(key) = &c.https_key {
        let _ = writeln!(o, "https_key = {}", qp(key));
    }
}

fn mount_lines(o: &mut String, m: &Mounts) {
    let _ = writeln!(
        o,
        "config = {} # /home/admin/conf/config.yaml",
        qp(&m.config)
    );
    let _ = writeln!(o, "logs = {} # /home/admin/logs", qp(&m.logs));
    let _ = writeln!(o, "store = {} # /home/ds/store", qp(&m.store));
    let _ = writeln!(o, "run = {} # /home/ds/run", qp(&m.run));
}

#[cfg(test)]
mod tests {
    use omsup_engine::synthetic::node_seen as seen;

    use super::*;

    #[test]
    fn the_written_plan_lints_clean_reads_back_and_keeps_the_example_layout() {
        let nodes = [
            seen("10.0.0.2", "cn-hangzhou", &["10.0.0.2", "10.0.0.3"]),
            seen("10.0.0.3", "cn-hangzhou", &["10.0.0.2", "10.0.0.3"]),
            seen("10.0.1.2", "cn-shanghai", &["10.0.1.2"]),
        ];
        let options = InitOptions {
            name: None,
            target_version: "4.2.9".parse().unwrap(),
            image_package: "/data/pkgs/oms-4.2.9-ce.tar".into(),
            image_tag: None,
            backup_dir: "/var/backups/omsup".into(),
            password: PasswordSource::Env(DEFAULT_PASSWORD_ENV.into()),
        };
        let plan = build_plan(&nodes, &options).unwrap();
        let text = render_plan_toml(&plan, "../schemas/plan.schema.json", nodes.len());
        check_written_plan(&text, &plan).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_suggested_command_line_adds_the_missing_nodes_in_the_given_scheme() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::parse_from([
            "omsup",
            "init",
            "--node",
            "ssh://admin@10.0.0.2",
            "--target-version",
            "4.2.9",
            "--out",
            "my plan.toml",
        ]);
        let crate::cli::Command::Init(args) = cli.command else {
            panic!("parsed as init")
        };
        assert_eq!(
            command_line(&args, &["10.0.0.3".into()]),
            "omsup init --node ssh://admin@10.0.0.2 --node ssh://admin@10.0.0.3 --target-version 4.2.9 --out 'my plan.toml'"
        );
    }
}
