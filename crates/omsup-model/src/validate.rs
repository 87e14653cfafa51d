//! Semantic checks of a plan file that parsed and matched the schema: what the schema cannot
//! say (uniqueness, cross-field rules, upgrade paths, secrets). `lint` and `plan` both run them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use crate::findings::{FieldPath, Finding};
use crate::plan::{ContainerOptions, HealthCheck, Mounts, PlanFile, TlsVerify};
use crate::upgrade::{UpgradeVerdict, rules};
use crate::{DockerEndpoint, OmsVersion};

/// Every semantic finding of `plan`, in file order.
pub fn validate(plan: &PlanFile) -> Vec<Finding> {
    let mut findings = Vec::new();
    check_versions(plan, &mut findings);
    check_meta_db(plan, &mut findings);
    check_paths(plan, &mut findings);
    check_container_options(
        &plan.container,
        FieldPath::root().key("container"),
        &mut findings,
    );
    check_health(&plan.health, FieldPath::root().key("health"), &mut findings);
    check_regions(plan, &mut findings);
    check_state(plan, &mut findings);
    check_rehearsal(plan, &mut findings);
    findings
}

/// `[rehearsal]`: a throwaway OMS on the host network of a daemon that runs the deployment's
/// OMS would bind the ports of the running one; its endpoint must parse.
fn check_rehearsal(plan: &PlanFile, findings: &mut Vec<Finding>) {
    let Some(rehearsal) = &plan.rehearsal else {
        return;
    };
    let path = FieldPath::root().key("rehearsal");
    if let Some(docker) = &rehearsal.docker
        && let Err(error) = docker.parse::<DockerEndpoint>()
    {
        findings.push(
            Finding::error(
                "rehearsal-docker",
                path.clone().key("docker"),
                error.to_string(),
            )
            .with_hint("`unix:///var/run/docker.sock`, `tcp://host:2376` or `ssh://user@host`"),
        );
    }
    let daemon = rehearsal
        .docker
        .as_deref()
        .or_else(|| plan.nodes().next().map(|(_, node)| node.docker.as_str()));
    let on_a_node = plan
        .nodes()
        .any(|(_, node)| Some(node.docker.as_str()) == daemon);
    if rehearsal.network.as_deref() == Some("host") && on_a_node {
        findings.push(
            Finding::error(
                "rehearsal-host-network",
                path.key("network"),
                "`network = \"host\"` on a node's Docker daemon: the throwaway OMS would bind the ports of the running one",
            )
            .with_hint("name a host without OMS in `[rehearsal] docker`, or leave `network` at its default, `bridge`"),
        );
    }
}

fn check_health(health: &HealthCheck, path: FieldPath, findings: &mut Vec<Finding>) {
    match (health.tls_verify, &health.ca_file) {
        (TlsVerify::Ca, None) => findings.push(
            Finding::error(
                "health-ca-file",
                path.key("tls_verify"),
                "`tls_verify = \"ca\"` without `ca_file`",
            )
            .with_hint("name the PEM file of the CA that signed the nodes' certificates in `ca_file`"),
        ),
        (TlsVerify::Ca, Some(file)) => check_absolute(file, path.key("ca_file"), findings),
        (_, Some(_)) => findings.push(
            Finding::error(
                "health-ca-file",
                path.key("ca_file"),
                "`ca_file` is only read with `tls_verify = \"ca\"`",
            )
            .with_hint("set `tls_verify = \"ca\"`, or remove `ca_file` to trust the certificate each node's container mounts"),
        ),
        (TlsVerify::Off, None) => findings.push(
            Finding::warning(
                "health-tls-unverified",
                path.key("tls_verify"),
                "HTTPS health answers are not verified: anyone on the path can answer \"healthy\"",
            )
            .with_hint("remove `tls_verify` to trust exactly the certificate each node's container mounts, or use `tls_verify = \"ca\"` with `ca_file`"),
        ),
        (TlsVerify::DeploymentCert, None) => {}
    }
}

fn check_versions(plan: &PlanFile, findings: &mut Vec<Finding>) {
    let deployment = FieldPath::root().key("deployment");
    let target = match plan.deployment.target_version.parse::<OmsVersion>() {
        Ok(target) => target,
        Err(error) => {
            findings.push(Finding::error(
                "invalid-version",
                deployment.key("target_version"),
                error.to_string(),
            ));
            return;
        }
    };
    if !rules().is_known_target(target) {
        let known: Vec<String> = rules()
            .known_targets()
            .iter()
            .map(ToString::to_string)
            .collect();
        findings.push(
            Finding::warning(
                "undocumented-target",
                deployment.clone().key("target_version"),
                format!(
                    "no documented upgrade rule for {target}: omsup cannot check the upgrade path"
                ),
            )
            .with_hint(format!("documented targets: {}", known.join(", "))),
        );
    }
    if let Some(invalid) = check_image_reference(&plan.image.tag) {
        findings.push(invalid);
    } else if !plan.image.tag.contains(&target.numeric()) {
        findings.push(
            Finding::warning(
                "image-tag-version",
                FieldPath::root().key("image").key("tag"),
                format!(
                    "the image tag `{}` does not name the target version {}",
                    plan.image.tag,
                    target.numeric()
                ),
            )
            .with_hint(format!(
                "OMS images are tagged like `oms:feature_{}-ce`",
                target.numeric()
            )),
        );
    }
    let Some(current_text) = &plan.deployment.current_version else {
        return;
    };
    let path = deployment.key("current_version");
    let current = match current_text.parse::<OmsVersion>() {
        Ok(current) => current,
        Err(error) => {
            findings.push(Finding::error("invalid-version", path, error.to_string()));
            return;
        }
    };
    match rules().check(current, target) {
        UpgradeVerdict::Allowed { .. } => {}
        UpgradeVerdict::Refused {
            allowed_from,
            reason,
            source,
        } => {
            let hint = if allowed_from.is_empty() {
                format!("source: {source}")
            } else {
                format!(
                    "upgrade to {target} from {} (source: {source})",
                    allowed_from.join(" or ")
                )
            };
            findings.push(
                Finding::error(
                    "upgrade-path",
                    path,
                    format!("cannot upgrade from {current} to {target}: {reason}"),
                )
                .with_hint(hint),
            );
        }
        UpgradeVerdict::Undocumented { reason } => {
            findings.push(Finding::warning("undocumented-upgrade-path", path, reason));
        }
    }
}

/// `[image] tag` against Docker's image reference grammar (distribution/reference:
/// `name[:tag][@digest]`, a lowercase repository path, a tag of at most 128 word characters,
/// `.` and `-`), so that `docker load` and `docker create` cannot refuse it mid-upgrade.
fn check_image_reference(tag: &str) -> Option<Finding> {
    use container_image_dist_ref::err::Kind;
    let error = container_image_dist_ref::ImgRef::new(tag).err()?;
    let index: usize = error.index().into();
    let part = match error.kind() {
        Kind::TagTooLong | Kind::TagInvalidChar | Kind::TagMissing => "tag",
        Kind::PortOrTagMissing | Kind::PortOrTagInvalidChar => "tag (or registry port)",
        Kind::AlgorithmMissing
        | Kind::InvalidOciAlgorithm
        | Kind::AlgorithmInvalidNumericPrefix
        | Kind::OciRegisteredAlgorithmWrongDigestLength
        | Kind::AlgorithmInvalidChar
        | Kind::AlgorithmTooLong
        | Kind::EncodedMissing
        | Kind::EncodedInvalidChar
        | Kind::EncodedNonLowerHex
        | Kind::OciRegisteredDigestInvalidChar
        | Kind::EncodingTooShort
        | Kind::EncodingTooLong => "digest",
        _ => "repository name",
    };
    let at = match tag.get(index..).and_then(|rest| rest.chars().next()) {
        Some(character) => format!("{character:?} at offset {index}"),
        None => "the end".to_owned(),
    };
    Some(
        Finding::error(
            "invalid-image-reference",
            FieldPath::root().key("image").key("tag"),
            format!("`{tag}` is not a valid Docker image reference: its {part} is invalid at {at}"),
        )
        .with_hint(
            "write `repository:tag` with a lowercase repository and a tag of letters, digits, \
             `_`, `.` and `-`, e.g. `oms:feature_4.2.9-ce`",
        ),
    )
}

fn check_meta_db(plan: &PlanFile, findings: &mut Vec<Finding>) {
    let meta = FieldPath::root().key("meta_db");
    let db = &plan.meta_db;
    if db.password.is_some() {
        findings.push(
            Finding::error(
                "literal-password",
                meta.clone().key("password"),
                "a literal password in a plan file ends up in version control, logs and reviews",
            )
            .at_key()
            .with_hint("put the password in an environment variable and name it: `password_env = \"OMS_META_PASSWORD\"` (or use `password_file`)"),
        );
    }
    match (&db.password_env, &db.password_file) {
        (Some(_), Some(_)) => findings.push(
            Finding::error("password-source", meta.clone().key("password_file"), "both `password_env` and `password_file` are set")
                .with_hint("keep one of them"),
        ),
        (None, None) if db.password.is_none() => findings.push(
            Finding::error("password-source", meta.clone(), "`[meta_db]` says nowhere how to get the password")
                .with_hint("add `password_env = \"OMS_META_PASSWORD\"` or `password_file = \"/etc/omsup/meta.password\"`"),
        ),
        _ => {}
    }
    if let Some(name) = &db.password_env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            findings.push(
                Finding::error("password-env-name", meta.clone().key("password_env"), format!("`{name}` is not an environment variable name"))
                    .with_hint("`password_env` names the variable that holds the password, like `OMS_META_PASSWORD`; it is not the password"),
            );
        }
    }
    for (key, name) in [("rm", &db.rm), ("cm", &db.cm)] {
        check_database_name(name, meta.clone().key(key), findings);
    }
    if db.rm == db.cm {
        findings.push(Finding::error(
            "rm-equals-cm",
            meta.key("cm"),
            format!(
                "rm and cm are both `{}`; OMS keeps them in two databases",
                db.cm
            ),
        ));
    }
}

/// `[state] database` is omsup's own: not rm, cm or a heartbeat database (omsup backs those up
/// and restores them, OMS migrates them).
fn check_state(plan: &PlanFile, findings: &mut Vec<Finding>) {
    let Some(database) = plan.state.database.as_ref() else {
        return;
    };
    let path = FieldPath::root().key("state").key("database");
    let valid = !database.is_empty()
        && database.len() <= 64
        && database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        findings.push(
            Finding::error(
                "state-database",
                path,
                format!("`{database}` cannot name omsup's state database"),
            )
            .with_hint("use letters, digits and `_` (at most 64), like `omsup_state`"),
        );
        return;
    }
    let taken = [("rm", &plan.meta_db.rm), ("cm", &plan.meta_db.cm)]
        .into_iter()
        .map(|(what, name)| (what.to_owned(), name))
        .chain(plan.regions.iter().map(|region| {
            (
                format!("region `{}`'s heartbeat", region.name),
                &region.cm_hb,
            )
        }))
        .find(|(_, name)| name.eq_ignore_ascii_case(database));
    if let Some((what, _)) = taken {
        findings.push(
            Finding::error(
                "state-database",
                path,
                format!("`{database}` is the {what} database; omsup's state needs a database of its own"),
            )
            .with_hint("omsup backs up and restores the OMS databases: keep its lock elsewhere, e.g. `omsup_state`"),
        );
    }
}

/// The database names omsup accepts, and so may interpolate into SQL: letters, digits, `_`
/// and `$`, at most 64 characters (what OMS database names use).
pub fn is_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

fn check_database_name(name: &str, path: FieldPath, findings: &mut Vec<Finding>) {
    let valid = is_database_name(name);
    if !valid {
        findings.push(
            Finding::error(
                "database-name",
                path,
                format!("`{name}` is not a database name omsup can back up"),
            )
            .with_hint("use letters, digits and `_`, at most 64 characters"),
        );
    }
}

fn check_paths(plan: &PlanFile, findings: &mut Vec<Finding>) {
    let root = FieldPath::root();
    check_absolute(
        &plan.image.package,
        root.clone().key("image").key("package"),
        findings,
    );
    check_absolute(
        &plan.backup.dir,
        root.clone().key("backup").key("dir"),
        findings,
    );
    if let Some(file) = &plan.meta_db.password_file {
        check_absolute(
            file,
            root.clone().key("meta_db").key("password_file"),
            findings,
        );
    }
    if let Some(client) = &plan.backup.dump_command {
        // A bare name is looked up on PATH; anything with a slash must be absolute.
        if client.components().count() > 1 {
            check_absolute(
                client,
                root.clone().key("backup").key("dump_command"),
                findings,
            );
        }
    }
    if let Some(mounts) = &plan.mounts {
        check_mounts(mounts, root.key("mounts"), findings);
    }
}

fn check_mounts(mounts: &Mounts, path: FieldPath, findings: &mut Vec<Finding>) {
    for (key, value) in [
        ("config", &mounts.config),
        ("logs", &mounts.logs),
        ("store", &mounts.store),
        ("run", &mounts.run),
    ] {
        check_absolute(value, path.clone().key(key), findings);
    }
}

fn check_absolute(value: &Path, path: FieldPath, findings: &mut Vec<Finding>) {
    if !value.is_absolute() {
        findings.push(
            Finding::error("relative-path", path, format!("`{}` is not an absolute path", value.display()))
                .with_hint("omsup runs from anywhere (CI, cron, another directory): write the full path, starting with `/`"),
        );
    }
}

fn check_container_options(
    options: &ContainerOptions,
    path: FieldPath,
    findings: &mut Vec<Finding>,
) {
    for reserved in ["IS_UPGRADE", "OMS_HOST_IP"] {
        if options.env.contains_key(reserved) {
            let why = if reserved == "IS_UPGRADE" {
                "omsup always sets `IS_UPGRADE=true`: without it the new OMS re-initialises the meta data"
            } else {
                "omsup sets `OMS_HOST_IP` to each node's `ip`"
            };
            findings.push(
                Finding::error(
                    "reserved-env",
                    path.clone().key("env").key(reserved),
                    format!("`{reserved}` cannot be set in `env`"),
                )
                .at_key()
                .with_hint(why),
            );
        }
    }
    match (&options.https_cert, &options.https_key) {
        (Some(_), None) => findings.push(
            Finding::error(
                "https-pair",
                path.clone().key("https_cert"),
                "`https_cert` without `https_key`",
            )
            .with_hint("HTTPS needs both the certificate and its key"),
        ),
        (None, Some(_)) => findings.push(
            Finding::error(
                "https-pair",
                path.clone().key("https_key"),
                "`https_key` without `https_cert`",
            )
            .with_hint("HTTPS needs both the certificate and its key"),
        ),
        _ => {}
    }
    for (key, value) in [
        ("https_cert", &options.https_cert),
        ("https_key", &options.https_key),
    ] {
        if let Some(value) = value {
            check_absolute(value, path.clone().key(key), findings);
        }
    }
    if let Some(network) = options
        .network
        .as_deref()
        .filter(|n| *n != ContainerOptions::DEFAULT_NETWORK)
    {
        findings.push(
            Finding::warning("network-not-host", path.key("network"), format!("network `{network}` instead of `host`"))
                .with_hint("OMS documents host networking: its ports (8088, 8089, 8090, 9000, 2023) must be reachable on the node's IP"),
        );
    }
}

fn check_regions(plan: &PlanFile, findings: &mut Vec<Finding>) {
    let mut region_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut heartbeat_dbs: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ips: BTreeMap<String, String> = BTreeMap::new();
    for (r, region) in plan.regions.iter().enumerate() {
        let path = FieldPath::root().key("region").index(r);
        if let Some(first) = region_names.insert(&region.name, r) {
            findings.push(Finding::error(
                "duplicate-region",
                path.clone().key("name"),
                format!(
                    "region `{}` is declared twice (also region[{first}])",
                    region.name
                ),
            ));
        }
        check_database_name(&region.cm_hb, path.clone().key("cm_hb"), findings);
        if let Some(first) = heartbeat_dbs.insert(&region.cm_hb, r) {
            findings.push(
                Finding::error(
                    "duplicate-cm-hb",
                    path.clone().key("cm_hb"),
                    format!(
                        "heartbeat database `{}` is also region[{first}]'s",
                        region.cm_hb
                    ),
                )
                .with_hint("each region has its own `drc_cm_heartbeat_db`"),
            );
        }
        for (other, key) in [(&plan.meta_db.rm, "rm"), (&plan.meta_db.cm, "cm")] {
            if &region.cm_hb == other {
                findings.push(Finding::error(
                    "cm-hb-clash",
                    path.clone().key("cm_hb"),
                    format!("heartbeat database `{other}` is also the {key} database"),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (n, node) in region.nodes.iter().enumerate() {
            let node_path = path.clone().key("node").index(n);
            check_node(plan, node, &node_path, &mut ips, findings);
            names.insert(&node.container);
        }
    }
}

fn check_node(
    plan: &PlanFile,
    node: &crate::plan::Node,
    path: &FieldPath,
    ips: &mut BTreeMap<String, String>,
    findings: &mut Vec<Finding>,
) {
    match node.ip.parse::<IpAddr>() {
        Err(_) => findings.push(
            Finding::error("invalid-ip", path.clone().key("ip"), format!("`{}` is not an IP address", node.ip))
                .with_hint("`ip` is the node's address as OMS knows it (`OMS_HOST_IP`, `cm_nodes`), like `10.0.0.2`"),
        ),
        Ok(ip) => {
            if let Some(first) = ips.insert(ip.to_string(), path.to_string()) {
                findings.push(Finding::error("duplicate-node-ip", path.clone().key("ip"), format!("node IP {ip} is declared twice (also {first})")));
            }
        }
    }
    match node.docker.parse::<DockerEndpoint>() {
        Err(error) => findings.push(Finding::error(
            "invalid-endpoint",
            path.clone().key("docker"),
            error.to_string(),
        )),
        Ok(DockerEndpoint::Tcp { .. }) if node.tls.is_none() => findings.push(
            Finding::warning(
                "tcp-without-tls",
                path.clone().key("docker"),
                "the Docker API over plain TCP lets anyone on the network control the daemon",
            )
            .with_hint(
                "add `tls = { ca = ..., cert = ..., key = ... }` for this node, or use `ssh://`",
            ),
        ),
        Ok(DockerEndpoint::Tcp { .. }) => {}
        Ok(_) if node.tls.is_some() => findings.push(
            Finding::error(
                "tls-without-tcp",
                path.clone().key("tls"),
                "`tls` files only apply to a `tcp://` Docker endpoint",
            )
            .at_key(),
        ),
        Ok(_) => {}
    }
    if plan.image.package_on == crate::plan::PackageLocation::Nodes
        && let Ok(DockerEndpoint::Tcp { .. }) = node.docker.parse::<DockerEndpoint>()
    {
        findings.push(
            Finding::error(
                "package-on-node-over-tcp",
                path.clone().key("docker"),
                "`[image] package_on = \"nodes\"` runs `docker load` on the node over its `ssh://` \
                 endpoint; a `tcp://` endpoint cannot run a command there",
            )
            .with_hint("reach this node with `ssh://`, or set `package_on = \"operator\"` to stream the package from this machine"),
        );
    }
    if let Some(tls) = &node.tls {
        for (key, value) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            check_absolute(value, path.clone().key("tls").key(key), findings);
        }
    }
    if let Some(ssh) = &node.ssh {
        if !matches!(node.docker.parse(), Ok(DockerEndpoint::Ssh { .. })) {
            findings.push(
                Finding::error(
                    "ssh-without-ssh",
                    path.clone().key("ssh"),
                    "`ssh` files only apply to an `ssh://` Docker endpoint",
                )
                .at_key(),
            );
        }
        for (key, value) in [
            ("identity", &ssh.identity),
            ("known_hosts", &ssh.known_hosts),
        ] {
            if let Some(value) = value {
                check_absolute(value, path.clone().key("ssh").key(key), findings);
            }
        }
    }
    if let Some(overrides) = &node.container_overrides {
        check_container_options(overrides, path.clone().key("container_overrides"), findings);
    }
    if let Some(mounts) = &node.mounts {
        check_mounts(mounts, path.clone().key("mounts"), findings);
    }
    let _ = plan;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PlanFile {
        toml::from_str(include_str!("../../../plans/two-nodes-ha.toml")).unwrap()
    }

    fn codes(plan: &PlanFile) -> Vec<&'static str> {
        validate(plan).iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_rehearsal_on_the_host_network_of_a_node_is_refused() {
        let mut plan = example();
        let node = plan.regions[0].nodes[0].docker.clone();
        for (docker, network, refused) in [
            (None, Some("host"), true),
            (Some(node.as_str()), Some("host"), true),
            (Some("ssh://admin@10.0.0.9"), Some("host"), false),
            (None, None, false),
            (None, Some("bridge"), false),
        ] {
            plan.rehearsal = Some(crate::plan::Rehearsal {
                docker: docker.map(str::to_owned),
                network: network.map(str::to_owned),
                ..Default::default()
            });
            assert_eq!(
                codes(&plan).contains(&"rehearsal-host-network"),
                refused,
                "{docker:?} {network:?}"
            );
        }
        plan.rehearsal = Some(crate::plan::Rehearsal {
            docker: Some("ftp://nowhere".into()),
            ..Default::default()
        });
        assert!(codes(&plan).contains(&"rehearsal-docker"));
    }

    #[test]
    fn the_state_database_is_omsups_own() {
        let mut plan = example();
        assert!(!codes(&plan).contains(&"state-database"));
        let cases = [
            (plan.meta_db.rm.clone(), true),
            (plan.meta_db.cm.clone(), true),
            (plan.regions[0].cm_hb.clone(), true),
            ("omsup-state".to_owned(), true),
            ("omsup_state".to_owned(), false),
        ];
        for (database, refused) in &cases {
            plan.state = crate::plan::StateSettings {
                backend: crate::plan::StateBackend::default(),
                database: Some(database.clone()),
            };
            assert_eq!(
                codes(&plan).contains(&"state-database"),
                *refused,
                "`{database}`"
            );
        }
        assert_eq!(cases.len(), 5);
    }

    #[test]
    fn the_example_has_no_errors() {
        let errors: Vec<_> = validate(&example())
            .into_iter()
            .filter(|f| f.severity == crate::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn image_references_follow_dockers_grammar() {
        for valid in [
            "oms:feature_4.2.9-ce",
            "registry.local:5000/oms/oms:feature_4.2.9-ce",
            "oms@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image_reference(valid), None, "{valid}");
        }
        for (invalid, part) in [
            ("oms feature", "repository name"),
            ("OMS:feature_4.2.9-ce", "repository name"),
            ("oms:feature 4.2.9", "tag"),
            ("oms:", "tag"),
            ("", "repository name"),
        ] {
            let finding = check_image_reference(invalid)
                .unwrap_or_else(|| panic!("`{invalid}` must be refused"));
            assert_eq!(finding.code, "invalid-image-reference");
            assert_eq!(finding.severity, crate::Severity::Error);
            assert!(
                finding.message.contains(part),
                "{invalid}: {}",
                finding.message
            );
        }
    }

    #[test]
    fn each_rule_fires_on_its_mistake() {
        let mut plan = example();
        plan.regions[0].nodes[1].ip = plan.regions[0].nodes[0].ip.clone();
        plan.meta_db.password = Some("secret".into());
        plan.container
            .env
            .insert("IS_UPGRADE".into(), "false".into());
        plan.deployment.current_version = Some("4.1.0-CE".into());
        plan.regions[0].cm_hb = plan.meta_db.rm.clone();
        let found = codes(&plan);
        for code in [
            "duplicate-node-ip",
            "literal-password",
            "reserved-env",
            "upgrade-path",
            "cm-hb-clash",
        ] {
            assert!(found.contains(&code), "{code} missing from {found:?}");
        }
    }
}
