//! The services' promises to the tests that use them: they answer, they say where, and a
//! missing part fails loudly with the command that starts it.

use omsup_testworld::services;

#[test]
fn the_default_services_answer_and_keep_the_password_in_a_private_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let up = services::check(services::DEFAULT_NODES)
        .unwrap_or_else(|error| panic!("the test services are not up: {error}"));
    assert_eq!(up.node_sockets.len(), services::DEFAULT_NODES);
    let mode = std::fs::metadata(&up.meta_password_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the password file is readable by others");
    assert!(up.meta_password().unwrap().len() >= 16);
}

#[test]
fn a_missing_node_daemon_fails_loudly_with_the_command_that_starts_it() {
    let error = services::check(64).expect_err("no test machine runs 64 node daemons");
    let message = error.to_string();
    assert!(
        message.contains("no Docker daemon answers on node host"),
        "{message}"
    );
    assert!(
        message.contains("hint: run `cargo xtask services`"),
        "{message}"
    );
}

/// `docker info --format {{.DockerRootDir}}` (each daemon has its own) through `args` (a docker or ssh command line).
fn daemon_id(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn every_node_host_answers_over_ssh_and_tls_from_its_own_daemon() {
    let up = services::check(services::DEFAULT_NODES)
        .unwrap_or_else(|error| panic!("the test services are not up: {error}"));
    let client = &up.client;
    let (ca, cert, key) = (
        client.tls_ca.to_str().unwrap(),
        client.tls_cert.to_str().unwrap(),
        client.tls_key.to_str().unwrap(),
    );
    let identity = client.ssh_identity.to_str().unwrap();
    let known_hosts = format!(
        "UserKnownHostsFile={}",
        client.ssh_known_hosts.to_str().unwrap()
    );
    let mut ids = std::collections::BTreeSet::new();
    for host in &up.hosts {
        let unix = daemon_id(
            "docker",
            &[
                "-H",
                &host.unix_url(),
                "info",
                "--format",
                "{{.DockerRootDir}}",
            ],
        );
        let tls = daemon_id(
            "docker",
            &[
                "--tlsverify",
                "--tlscacert",
                ca,
                "--tlscert",
                cert,
                "--tlskey",
                key,
                "-H",
                &host.tls_url(),
                "info",
                "--format",
                "{{.DockerRootDir}}",
            ],
        );
        assert_eq!(tls, unix, "host {}: TLS reaches another daemon", host.index);
        for port in omsup_testworld::hosts::SSH_PORTS {
            // What `docker system dial-stdio` relies on: the login's DOCKER_HOST is the node's.
            let ssh = daemon_id(
                "ssh",
                &[
                    "-i",
                    identity,
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    &known_hosts,
                    "-p",
                    &port.to_string(),
                    &format!("root@{}", host.address),
                    "docker",
                    "info",
                    "--format",
                    "'{{.DockerRootDir}}'",
                ],
            );
            assert_eq!(
                ssh, unix,
                "host {} port {port}: SSH reaches another daemon",
                host.index
            );
        }
        assert!(ids.insert(unix), "host {} shares a daemon", host.index);
    }
    assert_eq!(ids.len(), services::DEFAULT_NODES);
}

#[test]
fn a_tls_client_without_the_test_ca_is_refused() {
    let up =
        services::check(1).unwrap_or_else(|error| panic!("the test services are not up: {error}"));
    let output = std::process::Command::new("docker")
        .args(["-H", &up.hosts[0].tls_url(), "info"])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "plain TCP reached a --tlsverify daemon"
    );
}
