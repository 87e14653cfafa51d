//! The remote transports as an operator meets them: a world whose nodes are reached over SSH
//! (node 1 on port 2222) and TCP with TLS; what omsup says when a transport refuses (the
//! node, the endpoint and the failing part, before anything is changed); and faults on a
//! world's own hosts: a node cut off in the downtime window, a node's dockerd restarted
//! mid-apply, a node cut off at its image load, the meta database (a server of the world's own)
//! restarted during the backups, each ending with the deployment upgraded after resume; and an
//! image package that is already on the nodes, loaded there over SSH.

use std::path::Path;
use std::process::Command;

use omsup_testworld::WorldSpec;
use omsup_testworld::hosts::{self, NodeHost};
use omsup_testworld::world::{NodeTransport, Transports, image_package, image_tag};

use crate::apply::{assert_upgraded, before, plan_arg, show, status_json};
use crate::apply_scenarios::{assert_online_on_4_2_9, status_step};
use crate::support::{omsup, omsup_env, resume_after_kill, up};

/// Restores a host's link when dropped, also when the test fails.
struct LinkCut<'a>(&'a NodeHost);

impl<'a> LinkCut<'a> {
    fn cut(host: &'a NodeHost) -> Self {
        hosts::set_link(host, false).expect("cannot cut the link");
        Self(host)
    }
}

impl Drop for LinkCut<'_> {
    fn drop(&mut self) {
        let _ = hosts::set_link(self.0, true);
    }
}

/// Kills an apply at `failpoint`, then resumes it with `node`'s link cut: the resume fails
/// naming the node, its endpoint and `also`.
fn resume_cut_off_after_a_kill_at(
    plan: &str,
    node: &omsup_testworld::world::WorldNode,
    failpoint: &str,
    also: &[&str],
) {
    let killed = omsup_env(
        &["apply", "--yes", "-f", plan],
        &[("OMSUP_FAILPOINTS", failpoint)],
    );
    assert_ne!(killed.code, 0, "{}", show(&killed));
    let _cut = LinkCut::cut(&node.host);
    let cut_off = resume_after_kill(plan);
    assert_ne!(cut_off.code, 0, "{}", show(&cut_off));
    let endpoint = node.endpoint();
    for expected in [node.ip.as_str(), endpoint.as_str()].iter().chain(also) {
        assert!(
            cut_off.stderr.contains(expected),
            "no `{expected}` in\n{}",
            show(&cut_off)
        );
    }
}

/// Replaces `from` by `to` in the world's plan file (exactly once).
fn edit_plan(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "`{from}` in:\n{text}");
    std::fs::write(path, text.replace(from, to)).unwrap();
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the deployment runs on each node: the container's image, running or not.
async fn images(world: &omsup_testworld::World) -> Vec<(String, Option<bool>)> {
    let mut images = Vec::new();
    for node in &world.nodes {
        let container = node
            .docker()
            .unwrap()
            .inspect_container(&world.container, None)
            .await
            .unwrap();
        images.push((
            container.config.and_then(|c| c.image).unwrap_or_default(),
            container.state.and_then(|s| s.running),
        ));
    }
    images
}

#[tokio::test]
async fn the_default_world_mixes_ssh_with_a_port_and_tls() {
    let world = up(WorldSpec::two_nodes()).await;
    let endpoints: Vec<String> = world.nodes.iter().map(|n| n.endpoint()).collect();
    assert_eq!(
        world.nodes.iter().map(|n| n.transport).collect::<Vec<_>>(),
        [NodeTransport::Ssh { port: 2222 }, NodeTransport::Tls]
    );
    assert!(endpoints[0].starts_with("ssh://root@") && endpoints[0].ends_with(":2222"));
    assert!(endpoints[1].starts_with("tcp://") && endpoints[1].ends_with(":2376"));
    // Planning reads both nodes through their endpoints: the containers and config.yaml.
    let plan = plan_arg(&world);
    let run = omsup(&["plan", "-f", &plan, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let text = json.to_string();
    for node in &world.nodes {
        assert!(
            text.contains(&format!("node[{}].start-new", node.ip)),
            "no start-new for {}: {text}",
            node.ip
        );
    }
    assert!(!text.contains("Unreachable"), "{text}");
}

#[tokio::test]
async fn an_ssh_key_the_node_refuses_stops_apply_before_any_change_naming_node_and_endpoint() {
    let world = up(WorldSpec::two_nodes()).await;
    let node = &world.nodes[0];
    assert!(matches!(node.transport, NodeTransport::Ssh { .. }));
    let stranger = world.dir.join("stranger_ed25519");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&stranger),
    );
    edit_plan(
        &world.plan_path,
        &format!(
            "identity = \"{}\"",
            world.services.client.ssh_identity.display()
        ),
        &format!("identity = \"{}\"", stranger.display()),
    );
    let before = images(&world).await;
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "--yes", "-f", &plan]);
    assert_ne!(run.code, 0, "{}", show(&run));
    let endpoint = node.endpoint();
    for expected in [
        node.ip.as_str(),
        endpoint.as_str(),
        "the transport (SSH or TLS) refused the connection",
        "Permission denied",
    ] {
        assert!(
            run.stderr.contains(expected),
            "no `{expected}` in\n{}",
            show(&run)
        );
    }
    assert!(!run.stderr.contains("hyper"), "{}", show(&run));
    assert_eq!(images(&world).await, before, "apply changed a node");
    let status = omsup(&["status", "-f", &plan, "--format", "json"]);
    let journaled: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
    assert!(
        journaled["run"].is_null(),
        "a run was journaled: {}",
        show(&status)
    );
}

#[tokio::test]
async fn a_tls_daemon_signed_by_another_ca_is_refused_naming_the_transport() {
    let world = up(WorldSpec::two_nodes()).await;
    let node = &world.nodes[1];
    assert_eq!(node.transport, NodeTransport::Tls);
    let other_ca = world.dir.join("other-ca.pem");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:P-256")
            .args(["-nodes", "-days", "1", "-subj", "/CN=another CA", "-keyout"])
            .arg(world.dir.join("other-ca-key.pem"))
            .arg("-out")
            .arg(&other_ca),
    );
    edit_plan(
        &world.plan_path,
        &format!("ca = \"{}\"", world.services.client.tls_ca.display()),
        &format!("ca = \"{}\"", other_ca.display()),
    );
    let plan = plan_arg(&world);
    let run = omsup(&["plan", "-f", &plan]);
    assert_ne!(run.code, 0, "{}", show(&run));
    let endpoint = node.endpoint();
    for expected in [
        node.ip.as_str(),
        endpoint.as_str(),
        "the transport (SSH or TLS) refused the connection",
        "certificate",
    ] {
        assert!(
            run.stderr.contains(expected),
            "no `{expected}` in\n{}",
            show(&run)
        );
    }
}

/// A two-node world on hosts of its own (which start empty: no image but the world's).
async fn private_two_nodes() -> crate::support::WorldGuard {
    up(WorldSpec {
        private_hosts: true,
        ..WorldSpec::two_nodes()
    })
    .await
}

#[tokio::test]
async fn a_node_cut_off_in_the_downtime_window_is_named_and_resume_upgrades_once_it_is_back() {
    let world = private_two_nodes().await;
    let plan = plan_arg(&world);
    // omsup dies right before node 1's new container starts: its old one is stopped, the
    // downtime window is open.
    let node = &world.nodes[0];
    resume_cut_off_after_a_kill_at(
        &plan,
        node,
        &format!("before:node[{}].start-new", node.ip),
        &["the node's host did not answer"],
    );
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));
    assert_online_on_4_2_9(&world, "after the link came back and resume").await;
}

#[tokio::test]
async fn a_node_dockerd_restarted_mid_apply_ends_upgraded_after_resume() {
    let world = private_two_nodes().await;
    let plan = plan_arg(&world);
    let node = &world.nodes[1];
    assert_eq!(node.transport, NodeTransport::Tls);
    // omsup dies after node 2's new container started, before it is journaled; then the
    // node's daemon restarts (its containers stop with it).
    let failpoint = format!("after:node[{}].start-new", node.ip);
    let killed = omsup_env(
        &["apply", "--yes", "-f", &plan],
        &[("OMSUP_FAILPOINTS", failpoint.as_str())],
    );
    assert_ne!(killed.code, 0, "{}", show(&killed));
    hosts::restart_dockerd(&node.host).expect("cannot restart the node's dockerd");
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));
    assert_online_on_4_2_9(&world, "after the daemon restarted and resume").await;
}

#[tokio::test]
async fn a_package_already_on_the_nodes_is_loaded_there_and_a_missing_one_is_named_per_node() {
    let world = up(WorldSpec {
        transports: Transports::Ssh,
        private_hosts: true,
        ..WorldSpec::two_nodes()
    })
    .await;
    let tag = image_tag(&world.spec.target_version);
    for node in &world.nodes {
        assert!(
            node.docker().unwrap().inspect_image(&tag).await.is_err(),
            "a private host starts without the target image"
        );
    }
    let plan = plan_arg(&world);
    let package = image_package(&world.spec.target_version)
        .display()
        .to_string();
    let package_line = format!("package = \"{package}\"");
    edit_plan(
        &world.plan_path,
        &package_line,
        "package = \"/nonexistent/oms.tar\"\npackage_on = \"nodes\"",
    );
    let missing = omsup(&["plan", "-f", &plan]);
    assert_ne!(missing.code, 0, "{}", show(&missing));
    for node in &world.nodes {
        let expected = format!(
            "the image package `/nonexistent/oms.tar` is not on this node ({})",
            node.endpoint()
        );
        assert!(
            missing.stdout.contains(&expected) || missing.stderr.contains(&expected),
            "no `{expected}` in\n{}",
            show(&missing)
        );
    }

    edit_plan(
        &world.plan_path,
        "package = \"/nonexistent/oms.tar\"",
        &package_line,
    );
    let applied = omsup(&["apply", "--yes", "-f", &plan]);
    assert_eq!(applied.code, 0, "{}", show(&applied));
    assert!(
        applied.stderr.contains("(on the node, over ssh)")
            || applied.stdout.contains("(on the node, over ssh)"),
        "the plan says where the package is loaded\n{}",
        show(&applied)
    );
    let status = status_json(&plan);
    for node in &world.nodes {
        let load = status_step(&status, &format!("node[{}].load-image", node.ip));
        assert_eq!(load["state"], "succeeded", "{load:#}");
    }
    assert_online_on_4_2_9(&world, "after loading the package on the nodes").await;
}

#[tokio::test]
async fn a_node_cut_off_at_its_image_load_fails_before_the_window_and_resume_upgrades() {
    let world = private_two_nodes().await;
    let plan = plan_arg(&world);
    let node = &world.nodes[0];
    resume_cut_off_after_a_kill_at(
        &plan,
        node,
        &format!("before:node[{}].load-image", node.ip),
        &[],
    );
    // The loads come before the window: nothing was stopped, OMS never went down.
    let status = status_json(&plan);
    for other in &world.nodes {
        let stop = status_step(&status, &format!("node[{}].stop-old", other.ip));
        assert_eq!(stop["state"], "pending", "{stop:#}");
    }
    assert!(
        images(&world)
            .await
            .iter()
            .all(|(_, running)| *running == Some(true)),
        "every old container still runs: {:?}",
        images(&world).await
    );
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));
    assert_online_on_4_2_9(&world, "after the link came back and resume").await;
}

#[tokio::test]
async fn the_meta_database_restarted_during_the_backups_fails_the_step_and_resume_upgrades() {
    let world = up(WorldSpec {
        private_meta_db: true,
        ..WorldSpec::two_nodes()
    })
    .await;
    let port = world.services.meta_port;
    assert_ne!(
        port,
        omsup_testworld::services::META_PORT,
        "a server of its own"
    );
    let before = before(&world).await;
    let plan = plan_arg(&world);
    // A dump client that waits, once the backups have begun, until the server is down; the
    // preflight's probes (schema only) go straight through.
    let started = world.dir.join("dump-started");
    let down = world.dir.join("meta-down");
    let wrapper = world.dir.join("gated-dump.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --no-data \"*|*\" --version \"*) exec mariadb-dump \"$@\";; esac\n\
             touch {started}\nwhile [ ! -e {down} ]; do sleep 0.05; done\nexec mariadb-dump \"$@\"\n",
            started = started.display(),
            down = down.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    edit_plan(
        &world.plan_path,
        "[backup]\n",
        &format!("[backup]\ndump_command = \"{}\"\n", wrapper.display()),
    );

    let apply = {
        let plan = plan.clone();
        std::thread::spawn(move || omsup(&["apply", "--yes", "-f", &plan]))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline && !apply.is_finished(),
            "the backups never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        omsup_testworld::services::stop_private_meta(port),
        "the world's meta database was not running"
    );
    std::fs::write(&down, "").unwrap();
    let failed = apply.join().unwrap();
    assert_eq!(failed.code, 1, "{}", show(&failed));
    assert!(
        failed
            .stderr
            .contains(&format!("stopped at `db[{}].backup`", world.rm))
            || failed
                .stderr
                .contains(&format!("`db[{}].backup`, ", world.rm))
            || failed
                .stderr
                .contains(&format!(", `db[{}].backup`", world.rm)),
        "the failed backup step is named\n{}",
        show(&failed)
    );
    // The deployment lock lives in the server that went down, so the journal (fenced by it)
    // may not hold the backups' outcomes; the error keeps them all the same.
    assert!(
        failed.stderr.contains("Can't connect to server"),
        "the dump's own error is shown\n{}",
        show(&failed)
    );
    let status = status_json(&plan);
    let backup = status_step(&status, &format!("db[{}].backup", world.rm));
    assert_ne!(backup["state"], "succeeded", "{backup:#}");
    let stop = status_step(&status, &format!("node[{}].stop-old", world.nodes[0].ip));
    assert_eq!(stop["state"], "succeeded", "the window was open: {stop:#}");

    omsup_testworld::services::start_private_meta(port, false)
        .expect("cannot start the world's meta database again");
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));
    assert_upgraded(
        &world,
        &before,
        "after the meta database came back and resume",
    )
    .await;
}
