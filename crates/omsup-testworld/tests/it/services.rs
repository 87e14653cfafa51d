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
        message.contains("no Docker daemon answers on `/run/omsup-testworld/node"),
        "{message}"
    );
    assert!(
        message.contains("hint: run `cargo xtask services`"),
        "{message}"
    );
}
