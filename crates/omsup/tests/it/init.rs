//! `omsup init` against real test worlds: the plan it writes from the running deployment
//! equals the world's own plan file in every field the world defines, lints clean, and plans
//! the upgrade with no preflight finding; a node left out (named by another node's `cm_nodes`,
//! or only by the cm database's `host` table) is reported by its IP.

use std::path::{Path, PathBuf};

use omsup_model::PlanFile;
use omsup_model::plan::{Mounts, Timeouts};
use omsup_testworld::world::{image_package, workspace_root};
use omsup_testworld::{RegionSpec, World, WorldSpec};

use crate::support::{Run, omsup, up};

fn arg(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_owned()
}

/// The node's endpoint as the world's own plan names it (SSH or TCP+TLS by default).
fn endpoint(world: &World, index: usize) -> String {
    world.nodes[index].endpoint()
}

/// `omsup init` on the given nodes of `world`, writing `out`; the flags give what a running
/// deployment cannot tell (package, backup dir, name, password file).
fn init(world: &World, nodes: &[usize], container: bool, out: &Path) -> Run {
    let mut args: Vec<String> = vec!["init".into()];
    for &index in nodes {
        args.extend(["--node".into(), endpoint(world, index)]);
    }
    if container {
        args.extend(["--container".into(), world.container.clone()]);
    }
    // The client files the world's hosts trust, as an operator passes them.
    let client = omsup_testworld::hosts::ClientFiles::expected();
    for (flag, path) in [
        ("--tls-ca", &client.tls_ca),
        ("--tls-cert", &client.tls_cert),
        ("--tls-key", &client.tls_key),
        ("--ssh-identity", &client.ssh_identity),
        ("--ssh-known-hosts", &client.ssh_known_hosts),
    ] {
        args.extend([flag.into(), arg(path)]);
    }
    args.extend([
        "--target-version".into(),
        world.spec.target_version.clone(),
        "--name".into(),
        format!("oms-{}", world.id),
        "--image-package".into(),
        arg(&image_package(&world.spec.target_version)),
        "--backup-dir".into(),
        arg(&world.dir.join("backups")),
        "--password-file".into(),
        arg(&world.password_file),
        "--schema".into(),
        arg(&workspace_root().join("schemas/plan.schema.json")),
        "--out".into(),
        arg(out),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    omsup(&args)
}

fn read(path: &Path) -> PlanFile {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every field the world's plan defines, compared as parsed models; what init adds (each
/// node's observed mounts) is checked against the world's own mounts.
fn assert_same_plan(world: &World, written: &PlanFile) {
    let expected = read(&world.plan_path);
    assert_eq!(written.deployment, expected.deployment);
    assert_eq!(written.image, expected.image);
    assert_eq!(written.meta_db, expected.meta_db);
    assert_eq!(written.backup, expected.backup);
    assert_eq!(written.ha, expected.ha);
    assert_eq!(
        written.container.resolve(None),
        expected.container.resolve(None),
        "the new containers get the options the running ones have"
    );
    // The world's plan shortens the timeouts for tests; init writes the documented ones.
    assert_eq!(written.timeouts, Timeouts::default());
    assert_eq!(written.regions.len(), expected.regions.len());
    let mut compared = 0;
    for (region, want) in written.regions.iter().zip(&expected.regions) {
        assert_eq!((&region.name, &region.cm_hb), (&want.name, &want.cm_hb));
        assert_eq!(region.nodes.len(), want.nodes.len(), "region {}", want.name);
        for (node, want) in region.nodes.iter().zip(&want.nodes) {
            assert_eq!(
                (
                    &node.ip,
                    &node.docker,
                    &node.container,
                    &node.tls,
                    &node.ssh
                ),
                (
                    &want.ip,
                    &want.docker,
                    &want.container,
                    &want.tls,
                    &want.ssh
                )
            );
            assert_eq!(node.container_overrides, None);
            let world_node = world.nodes.iter().find(|n| n.ip == node.ip).unwrap();
            assert_eq!(
                node.mounts.as_ref().or(written.mounts.as_ref()),
                Some(&Mounts {
                    config: world_node.config_path(),
                    logs: world_node.logs_dir(),
                    store: world_node.store_dir(),
                    run: world_node.run_dir(),
                })
            );
            compared += 1;
        }
    }
    assert_eq!(compared, world.nodes.len(), "every node compared");
}

/// `omsup lint` passes and `omsup plan --detailed-exitcode` says "changes" with no finding.
fn assert_lints_and_plans_the_upgrade(world: &World, path: &Path) {
    let lint = omsup(&["lint", &arg(path)]);
    assert_eq!(lint.code, 0, "lint:\n{}{}", lint.stdout, lint.stderr);
    let plan = omsup(&[
        "plan",
        "-f",
        &arg(path),
        "--detailed-exitcode",
        "--format",
        "json",
    ]);
    assert_eq!(plan.code, 2, "plan:\n{}\n{}", plan.stdout, plan.stderr);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(json["preflight"], serde_json::json!([]), "{}", plan.stdout);
    assert_eq!(
        json["from"].as_str(),
        Some(format!("{}-CE", world.spec.version).as_str())
    );
    let nodes = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "node")
        .count();
    assert_eq!(nodes, world.nodes.len());
}

/// With `--container`, and without it (the container found by its mounts). Other tests may
/// run worlds on the same daemons at the same time; then finding by mounts is rightly
/// ambiguous, and the error must list this world's container among the candidates.
fn check_init_writes_the_worlds_plan(world: &World) -> usize {
    let all: Vec<usize> = (0..world.nodes.len()).collect();
    let named = world.dir.join("init-named.toml");
    let run = init(world, &all, true, &named);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("wrote "), "{}", run.stderr);
    let text = std::fs::read_to_string(&named).unwrap();
    assert!(text.starts_with("#:schema "), "{text}");
    assert!(text.contains("# Read from config.yaml"), "{text}");
    let password = world.services.meta_password().unwrap();
    assert!(!text.contains(&password), "the meta password was copied");
    assert_same_plan(world, &read(&named));
    assert_lints_and_plans_the_upgrade(world, &named);

    let found: PathBuf = world.dir.join("init-found.toml");
    let run = init(world, &all, false, &found);
    if run.code == 1 && run.stderr.contains("several OMS containers") {
        assert!(
            run.stderr.contains(&world.container),
            "the candidates include this world's container:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("--container"), "{}", run.stderr);
        assert!(!found.exists(), "nothing is written on an error");
        eprintln!("init without --container: other worlds share the daemons, candidates listed");
        return 1;
    }
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(read(&found), read(&named));
    eprintln!("init without --container found the world's container by its mounts");
    2
}

/// `omsup init` on `given` fails, says `says`, and suggests the command line with `left_out`
/// (and every given node); nothing is written.
fn assert_left_out_is_reported(world: &World, given: &[usize], says: &str, left_out: &str) {
    let partial = world.dir.join("init-partial.toml");
    let run = init(world, given, true, &partial);
    assert_eq!(run.code, 1, "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains(says), "no `{says}` in:\n{}", run.stderr);
    // The suggested command line: every given endpoint, and one guessed for the node left out
    // (the first node's scheme, user and port with the left-out node's address).
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("omsup init --node"))
        .unwrap_or_else(|| panic!("no suggested command line in:\n{}", run.stderr));
    let mut expected = vec![format!("@{left_out}")];
    expected.extend(given.iter().map(|&index| endpoint(world, index)));
    for text in expected {
        assert!(
            line.contains(&text),
            "no `{text}` in the suggested command line:\n{}",
            run.stderr
        );
    }
    assert!(!partial.exists(), "nothing is written");
}

#[tokio::test]
async fn init_writes_a_single_region_plan_and_reports_a_node_left_out() {
    let world = up(WorldSpec::two_nodes()).await;
    let checked = check_init_writes_the_worlds_plan(&world);
    assert!(checked >= 1);

    // Only the first node: its cm_nodes names the second, which is reported, with the command
    // line that would include it; nothing is written.
    let left_out = &world.nodes[1].ip;
    assert_left_out_is_reported(
        &world,
        &[0],
        &format!("node {left_out} is in `cm_nodes` of {}", world.nodes[0].ip),
        left_out,
    );

    // An existing --out is not replaced without --force.
    let named = world.dir.join("init-named.toml");
    let run = init(&world, &[0, 1], true, &named);
    assert_eq!(run.code, 64, "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
}

fn region(name: &str, nodes: usize, shared_cm_nodes: bool) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        nodes,
        shared_cm_nodes,
    }
}

#[tokio::test]
async fn init_groups_three_regions_with_per_node_cm_nodes() {
    let spec = WorldSpec {
        regions: vec![
            region("hz", 1, true),
            region("sh", 2, false),
            region("bj", 1, false),
        ],
        projects: 5,
        heartbeat_rows_per_region: 100,
        ..WorldSpec::two_nodes()
    };
    let world = up(spec).await;
    assert_eq!(world.nodes.len(), 4);
    let checked = check_init_writes_the_worlds_plan(&world);
    assert!(checked >= 1);
    let written = read(&world.dir.join("init-named.toml"));
    let regions: Vec<(&str, usize)> = written
        .regions
        .iter()
        .map(|r| (r.name.as_str(), r.nodes.len()))
        .collect();
    assert_eq!(regions, [("hz", 1), ("sh", 2), ("bj", 1)]);

    // The last node lists only itself in `cm_nodes`, so only the cm database's `host` table
    // (read with the password the plan names) knows it is missing.
    let left_out = &world.nodes[3].ip;
    assert_left_out_is_reported(
        &world,
        &[0, 1, 2],
        &format!("node {left_out} is in the cm database's `host` table (ONLINE)"),
        left_out,
    );
}

#[test]
fn init_help_says_it_changes_nothing() {
    let run = omsup(&["init", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("It never changes anything"),
        "{}",
        run.stdout
    );
    let no_node: &[&str] = &["init", "--target-version", "4.2.9"];
    let bad_version: &[&str] = &[
        "init",
        "--node",
        "unix:///x.sock",
        "--target-version",
        "latest",
    ];
    for (args, says) in [(no_node, "--node"), (bad_version, "not an OMS version")] {
        let run = omsup(args);
        assert_eq!(
            (run.code, run.stderr.contains(says)),
            (64, true),
            "{}",
            run.stderr
        );
    }
}
