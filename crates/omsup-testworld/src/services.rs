//! The test services: one node host per test node (a network namespace with its own address,
//! `dockerd`, `sshd` and TLS listener; see [`crate::hosts`]), a MariaDB server with a test
//! administrator whose password is generated once and kept in a 0600 file, and a forwarder
//! that makes it reachable from the node hosts at the bridge's address. The primary Docker
//! daemon builds the simulator images.
//!
//! [`ensure`] is idempotent and safe to call from parallel tests and processes (a file lock
//! serialises it): it installs what is missing from Debian's packages, starts what does not
//! answer, and waits until everything answers. [`down`] stops what it started.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::hosts::{self, ClientFiles, NodeHost};
use crate::{Error, Result};

/// Where the services keep their state (daemon data roots, logs, the password file).
pub const STATE_DIR: &str = "/var/lib/omsup-testworld";
/// Where the node hosts' sockets, exec roots and pid files live.
pub const RUN_DIR: &str = "/run/omsup-testworld";
/// The primary Docker daemon's socket (it builds the simulator images).
pub const PRIMARY_SOCKET: &str = "/var/run/docker.sock";
/// How many node hosts the services start by default.
pub const DEFAULT_NODES: usize = 4;
/// The test administrator of the meta database.
pub const META_USER: &str = "omsup_test";
pub const META_HOST: &str = "127.0.0.1";
pub const META_PORT: u16 = 3306;
/// The pid file of the forwarder from the bridge's address to MariaDB.
const META_FORWARDER_PID_FILE: &str = "meta-forwarder.pid";

/// What the services offer once they answer.
#[derive(Debug, Clone)]
pub struct Services {
    /// The node hosts: index 0 is node 1.
    pub hosts: Vec<NodeHost>,
    /// Docker socket per node host: index 0 is node 1.
    pub node_sockets: Vec<PathBuf>,
    /// The client's TLS and SSH files.
    pub client: ClientFiles,
    /// The meta database as the operator and the node hosts reach it (the bridge's address).
    pub meta_host: String,
    pub meta_port: u16,
    pub meta_user: String,
    /// A 0600 file holding the meta password (never printed).
    pub meta_password_file: PathBuf,
}

impl Services {
    /// The meta password, read from its file.
    pub fn meta_password(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.meta_password_file).map_err(|e| {
            Error::io(
                format!("cannot read {}", self.meta_password_file.display()),
                e,
            )
        })?;
        Ok(text.trim().to_owned())
    }

    /// The Docker endpoint URL of node `index` (0-based).
    pub fn docker_url(&self, index: usize) -> String {
        format!("unix://{}", self.node_sockets[index].display())
    }
}

/// The services as they should be, without starting anything: for tests to check and fail
/// loudly with a hint when something is missing.
pub fn expected(nodes: usize) -> Services {
    let hosts: Vec<NodeHost> = (1..=nodes).map(NodeHost::new).collect();
    Services {
        node_sockets: hosts.iter().map(|h| h.socket.clone()).collect(),
        hosts,
        client: ClientFiles::expected(),
        meta_host: hosts::BRIDGE_ADDRESS.to_owned(),
        meta_port: META_PORT,
        meta_user: META_USER.to_owned(),
        meta_password_file: Path::new(STATE_DIR).join("meta.password"),
    }
}

/// Checks that the services answer; the error says what is missing and how to start it.
pub fn check(nodes: usize) -> Result<Services> {
    let services = expected(nodes);
    hosts::check(nodes)?;
    if !mariadb_answers(META_HOST) {
        return Err(Error::ServicesMissing(format!(
            "no MariaDB answers on {META_HOST}:{META_PORT}"
        )));
    }
    if !mariadb_answers(hosts::BRIDGE_ADDRESS) {
        return Err(Error::ServicesMissing(format!(
            "the meta database is not reachable from the node hosts at {}:{META_PORT}",
            hosts::BRIDGE_ADDRESS
        )));
    }
    if !services.meta_password_file.is_file() {
        return Err(Error::ServicesMissing(format!(
            "the test administrator's password file `{}` is missing",
            services.meta_password_file.display()
        )));
    }
    Ok(services)
}

/// Takes the services' file lock (released when the file is dropped).
pub(crate) fn lock() -> Result<std::fs::File> {
    std::fs::create_dir_all(STATE_DIR)
        .map_err(|e| Error::io(format!("cannot create {STATE_DIR}"), e))?;
    let lock_path = Path::new(STATE_DIR).join("services.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io("cannot lock the services".to_owned(), e))?;
    Ok(lock)
}

/// Installs, starts and waits for everything; idempotent; serialised by a file lock.
pub fn ensure(nodes: usize) -> Result<Services> {
    let _lock = lock()?;
    if let Ok(services) = check(nodes) {
        return Ok(services);
    }
    ensure_debian_packages(&[
        ("dockerd", "docker.io"),
        ("docker", "docker.io"),
        ("mariadbd", "mariadb-server"),
        ("mariadb", "mariadb-client"),
        ("busybox", "busybox-static"),
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("openssl", "openssl"),
        ("curl", "curl"),
        ("socat", "socat"),
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
    ])?;
    ensure_primary_docker()?;
    hosts::ensure(nodes)?;
    ensure_mariadb()?;
    ensure_meta_user()?;
    ensure_meta_forwarder()?;
    check(nodes)
}

/// Stops the node hosts (and removes their namespaces and links), the forwarder, and MariaDB
/// when [`ensure`] started it; leaves the primary Docker daemon running. Idempotent.
pub fn down() -> Result<Vec<String>> {
    let mut stopped = hosts::down();
    if stop_by_pid_file(&Path::new(STATE_DIR).join(META_FORWARDER_PID_FILE)) {
        stopped.push("meta forwarder".to_owned());
    }
    let mariadb_marker = Path::new(STATE_DIR).join(MARIADB_PID_FILE);
    if stop_by_pid_file(&mariadb_marker) {
        stopped.push("mariadb".to_owned());
    }
    let _ = std::fs::remove_file(&mariadb_marker);
    Ok(stopped)
}

/// The pid file of the MariaDB server that [`ensure`] started (absent when it found one).
const MARIADB_PID_FILE: &str = "mariadb.started.pid";

/// Sends SIGTERM to the process named by `pid_file` and waits (up to 30 s) for it to exit;
/// false when there was no such live process.
pub(crate) fn stop_by_pid_file(pid_file: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    let pid = pid.trim().to_owned();
    if pid.is_empty() || !alive(&pid) {
        return false;
    }
    let _ = Command::new("kill").arg(&pid).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Whether process `pid` exists and has not exited: a zombie (a daemon this process started,
/// exited and not yet reaped) counts as exited.
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) state ...`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Installs the Debian packages whose command is missing (`apt-get update` first).
pub fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(command, _)| !command_exists(command))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("services: installing {}", missing.join(", "));
    run_quiet(Command::new("apt-get").arg("update"), "apt-get update")?;
    run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {}", missing.join(" ")),
    )
}

fn command_exists(command: &str) -> bool {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(command).is_file())
}

pub(crate) fn run_quiet(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("cannot run {what}"), e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::ServiceFailed {
            what: what.to_owned(),
            log_tail: tail(&stderr, 15),
        });
    }
    Ok(())
}

fn docker_answers(socket: &Path) -> bool {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn wait_until(
    what: &str,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log_tail = std::fs::read_to_string(log)
        .map(|text| tail(&text, 15))
        .unwrap_or_default();
    Err(Error::ServiceFailed {
        what: format!(
            "starting {what} (no answer within {timeout:?}; log `{}`)",
            log.display()
        ),
        log_tail,
    })
}

/// Starts `command` detached from us (own process group), output to `log`; returns its pid.
pub(crate) fn spawn_detached(command: &mut Command, log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let file = std::fs::File::create(log)
        .map_err(|e| Error::io(format!("cannot create {}", log.display()), e))?;
    let err = file
        .try_clone()
        .map_err(|e| Error::io("cannot clone a log handle".to_owned(), e))?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| Error::io(format!("cannot start {:?}", command.get_program()), e))?;
    Ok(child.id())
}

fn ensure_primary_docker() -> Result<()> {
    let socket = Path::new(PRIMARY_SOCKET);
    if docker_answers(socket) {
        return Ok(());
    }
    let log = Path::new(STATE_DIR).join("dockerd-primary.log");
    eprintln!("services: starting the primary Docker daemon");
    spawn_detached(&mut Command::new("dockerd"), &log)?;
    wait_until(
        "the primary Docker daemon",
        &log,
        Duration::from_secs(60),
        || docker_answers(socket),
    )
}

fn mariadb_answers(host: &str) -> bool {
    mariadb_answers_on(host, META_PORT)
}

fn mariadb_answers_on(host: &str, port: u16) -> bool {
    TcpStream::connect_timeout(
        &format!("{host}:{port}").parse().expect("a valid address"),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn ensure_mariadb() -> Result<()> {
    if mariadb_answers(META_HOST) {
        return Ok(());
    }
    let datadir = Path::new("/var/lib/mysql");
    if !datadir.join("mysql").is_dir() {
        run_quiet(
            Command::new("mariadb-install-db").args(["--user=mysql", "--datadir=/var/lib/mysql"]),
            "mariadb-install-db",
        )?;
    }
    std::fs::create_dir_all("/run/mysqld")
        .map_err(|e| Error::io("cannot create /run/mysqld".to_owned(), e))?;
    let _ = Command::new("chown")
        .args(["mysql:mysql", "/run/mysqld"])
        .status();
    let log = Path::new(STATE_DIR).join("mariadb.log");
    eprintln!("services: starting MariaDB");
    let pid = spawn_detached(
        Command::new("mariadbd").args(["--user=mysql", "--bind-address=127.0.0.1", "--port=3306"]),
        &log,
    )?;
    let marker = Path::new(STATE_DIR).join(MARIADB_PID_FILE);
    std::fs::write(&marker, format!("{pid}\n"))
        .map_err(|e| Error::io(format!("cannot write {}", marker.display()), e))?;
    wait_until("MariaDB", &log, Duration::from_secs(60), || {
        mariadb_answers(META_HOST)
    })
}

/// Makes MariaDB (on this machine's loopback) reachable at the bridge's address, where the
/// node hosts and omsup reach it, as a meta database on another host would be.
fn ensure_meta_forwarder() -> Result<()> {
    if mariadb_answers(hosts::BRIDGE_ADDRESS) {
        return Ok(());
    }
    let log = Path::new(STATE_DIR).join("meta-forwarder.log");
    eprintln!(
        "services: forwarding {}:{META_PORT} to MariaDB",
        hosts::BRIDGE_ADDRESS
    );
    let pid = spawn_detached(
        Command::new("socat")
            .arg(format!(
                "TCP-LISTEN:{META_PORT},bind={},reuseaddr,fork",
                hosts::BRIDGE_ADDRESS
            ))
            .arg(format!("TCP:{META_HOST}:{META_PORT}")),
        &log,
    )?;
    let pid_file = Path::new(STATE_DIR).join(META_FORWARDER_PID_FILE);
    std::fs::write(&pid_file, format!("{pid}\n"))
        .map_err(|e| Error::io(format!("cannot write {}", pid_file.display()), e))?;
    wait_until("the meta forwarder", &log, Duration::from_secs(20), || {
        mariadb_answers(hosts::BRIDGE_ADDRESS)
    })
}

/// Creates the test administrator (random password, kept in a 0600 file) if it is missing.
/// Runs the local `mariadb` client as the OS root user (unix_socket authentication), with the
/// statements on stdin so that the password never reaches a command line.
fn ensure_meta_user() -> Result<()> {
    create_meta_user(&meta_password_or_new()?, None)
}

/// The test administrator's password, from its 0600 file, made first when missing.
fn meta_password_or_new() -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let password_file = Path::new(STATE_DIR).join("meta.password");
    let password = match std::fs::read_to_string(&password_file) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => {
            let password = random_password()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&password_file)
                .map_err(|e| Error::io(format!("cannot write {}", password_file.display()), e))?;
            writeln!(file, "{password}")
                .map_err(|e| Error::io(format!("cannot write {}", password_file.display()), e))?;
            password
        }
    };
    Ok(password)
}

/// Creates (or resets) the test administrator on the server behind `socket` (the default
/// server's when `None`).
fn create_meta_user(password: &str, socket: Option<&Path>) -> Result<()> {
    let mut sql = String::new();
    for host in ["127.0.0.1", "localhost", "%"] {
        sql.push_str(&format!(
            "CREATE USER IF NOT EXISTS '{META_USER}'@'{host}' IDENTIFIED BY '{password}';\n\
             ALTER USER '{META_USER}'@'{host}' IDENTIFIED BY '{password}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{META_USER}'@'{host}' WITH GRANT OPTION;\n"
        ));
    }
    let mut client = Command::new("mariadb");
    client.args(["--protocol=socket", "-uroot"]);
    if let Some(socket) = socket {
        client.arg(format!("--socket={}", socket.display()));
    }
    let mut child = client
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("cannot run the mariadb client".to_owned(), e))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(sql.as_bytes())
        .map_err(|e| Error::io("cannot talk to the mariadb client".to_owned(), e))?;
    let output = child
        .wait_with_output()
        .map_err(|e| Error::io("cannot wait for the mariadb client".to_owned(), e))?;
    if !output.status.success() {
        return Err(Error::ServiceFailed {
            what: "creating the test administrator".into(),
            log_tail: tail(&String::from_utf8_lossy(&output.stderr), 5),
        });
    }
    Ok(())
}

/// 24 random alphanumerics from the kernel's generator.
fn random_password() -> Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("cannot read /dev/urandom".to_owned(), e))?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    Ok(bytes
        .iter()
        .take(24)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The port of world `number`'s own MariaDB server (see [`start_private_meta`]): 49 worlds'
/// worth, as for private hosts.
pub fn private_meta_port(number: u64) -> u16 {
    13_306 + (number % 49) as u16
}

fn private_meta_dirs(port: u16) -> (PathBuf, PathBuf) {
    (
        Path::new(STATE_DIR).join("meta").join(format!("p{port}")),
        Path::new(RUN_DIR).join("meta").join(format!("p{port}")),
    )
}

/// Starts a MariaDB server of one world's own on the bridge's address at `port` (its own data
/// directory, socket and log; the same test administrator and password as the shared one), for
/// tests that restart the meta database. `fresh`: whatever an earlier world left is removed
/// first. Serialised with the services by their lock.
pub fn start_private_meta(port: u16, fresh: bool) -> Result<()> {
    let _lock = lock()?;
    let (data, run) = private_meta_dirs(port);
    if fresh {
        stop_private_meta(port);
        remove_dir_if_any(&data)?;
    }
    if mariadb_answers_on(hosts::BRIDGE_ADDRESS, port) {
        return Ok(());
    }
    for dir in [&data, &run] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let _ = Command::new("chown").arg("mysql:mysql").arg(dir).status();
    }
    if !data.join("mysql").is_dir() {
        run_quiet(
            Command::new("mariadb-install-db")
                .arg("--user=mysql")
                .arg(format!("--datadir={}", data.display()))
                .arg("--skip-test-db"),
            "mariadb-install-db (a world's own server)",
        )?;
    }
    let log = run.join("mariadb.log");
    let pid = spawn_detached(
        Command::new("mariadbd")
            .arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", run.join("mysqld.sock").display()))
            .arg(format!("--bind-address={}", hosts::BRIDGE_ADDRESS))
            .arg(format!("--port={port}"))
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--skip-log-bin"),
        &log,
    )?;
    std::fs::write(run.join("mariadbd.pid"), format!("{pid}\n"))
        .map_err(|e| Error::io(format!("cannot write {}", run.display()), e))?;
    wait_until(
        "a world's own MariaDB",
        &log,
        Duration::from_secs(60),
        || mariadb_answers_on(hosts::BRIDGE_ADDRESS, port),
    )?;
    create_meta_user(&meta_password_or_new()?, Some(&run.join("mysqld.sock")))
}

/// Stops the world's own MariaDB server at `port` (SIGTERM: a clean shutdown, as a restart by
/// its operator would do); false when it was not running.
pub fn stop_private_meta(port: u16) -> bool {
    stop_by_pid_file(&private_meta_dirs(port).1.join("mariadbd.pid"))
}

/// Stops the world's own MariaDB server and removes its data; idempotent.
pub fn remove_private_meta(port: u16) -> Result<()> {
    stop_private_meta(port);
    let (data, run) = private_meta_dirs(port);
    remove_dir_if_any(&data)?;
    remove_dir_if_any(&run)
}

pub(crate) fn remove_dir_if_any(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("cannot remove {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}
