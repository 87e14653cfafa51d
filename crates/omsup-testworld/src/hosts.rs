//! The node hosts: each test node is a host of its own on this machine, a network namespace
//! (`omsup-h<k>`) joined to the operator's side by a veth pair on a bridge (`omsup-br0`,
//! `10.77.0.1/16`; nothing is routed off the machine: the namespaces have no default route).
//! In each namespace run, entered with `nsenter --net` (not `ip netns exec`, which remounts
//! /sys and breaks dockerd):
//!
//! - a `dockerd` with its own config file, data and exec roots (`--bridge none
//!   --iptables=false`, the primary daemon's storage driver), answering on a unix socket (for
//!   quick unit-level tests and the harness) and on `tcp://<host address>:2376` with TLS
//!   (`--tlsverify`: only clients with a certificate of the test CA);
//! - an `sshd` on `<host address>` ports 22 and 2222, key authentication only, with `SetEnv
//!   DOCKER_HOST=unix://<node socket>` so `docker system dial-stdio` reaches the node's daemon.
//!
//! The CA, the certificates and the SSH keys are generated here (openssl, ssh-keygen) the first
//! time the services start; nothing secret is in the repository. [`down`] removes it all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::services::{
    RUN_DIR, STATE_DIR, run_quiet, spawn_detached, stop_by_pid_file, wait_until,
};
use crate::{Error, Result};

/// The bridge on the operator's side, and its address (the meta database's forwarder listens
/// there).
pub const BRIDGE: &str = "omsup-br0";
pub const BRIDGE_ADDRESS: &str = "10.77.0.1";
const PREFIX: u8 = 16;
/// The Docker TLS port on every host.
pub const TLS_PORT: u16 = 2376;
/// The SSH ports on every host (22, and another to test endpoints with a port).
pub const SSH_PORTS: [u16; 2] = [22, 2222];
/// The user omsup logs in as.
pub const SSH_USER: &str = "root";

/// One node host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHost {
    /// 1-based.
    pub index: usize,
    /// The host's own address (its SSH and TLS endpoints).
    pub address: String,
    /// The network namespace's name (also the root side's veth).
    pub netns: String,
    /// The daemon's unix socket (reachable from this machine's root namespace).
    pub socket: PathBuf,
}

impl NodeHost {
    pub fn new(index: usize) -> Self {
        Self {
            index,
            address: format!("10.77.0.{}", 10 + index),
            netns: format!("omsup-h{index}"),
            socket: run_dir(index).join("docker.sock"),
        }
    }

    pub fn netns_path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.netns)
    }

    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn tls_url(&self) -> String {
        format!("tcp://{}:{TLS_PORT}", self.address)
    }

    /// `ssh://root@<address>` (port 22) or `ssh://root@<address>:<port>`.
    pub fn ssh_url(&self, port: u16) -> String {
        if port == 22 {
            format!("ssh://{SSH_USER}@{}", self.address)
        } else {
            format!("ssh://{SSH_USER}@{}:{port}", self.address)
        }
    }

    /// `ip -n <netns> ...`: an address or link operation inside the host's namespace.
    pub fn ip(&self) -> Command {
        let mut command = Command::new("ip");
        command.arg("-n").arg(&self.netns);
        command
    }

    /// `nsenter --net=<netns> <program>`: a program on the host.
    fn enter(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.netns_path().display()))
            .arg(program);
        command
    }
}

fn state_dir(index: usize) -> PathBuf {
    Path::new(STATE_DIR).join("hosts").join(format!("h{index}"))
}

fn run_dir(index: usize) -> PathBuf {
    Path::new(RUN_DIR).join("hosts").join(format!("h{index}"))
}

/// The client's files: the CA, its certificate and key for TLS, its SSH key and known hosts.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    pub tls_ca: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub ssh_identity: PathBuf,
    pub ssh_known_hosts: PathBuf,
}

impl ClientFiles {
    pub fn expected() -> Self {
        let pki = pki_dir();
        let ssh = ssh_dir();
        Self {
            tls_ca: pki.join("ca.pem"),
            tls_cert: pki.join("client-cert.pem"),
            tls_key: pki.join("client-key.pem"),
            ssh_identity: ssh.join("id_ed25519"),
            ssh_known_hosts: ssh.join("known_hosts"),
        }
    }
}

fn pki_dir() -> PathBuf {
    Path::new(STATE_DIR).join("pki")
}

fn ssh_dir() -> PathBuf {
    Path::new(STATE_DIR).join("ssh")
}

fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

fn run(command: &mut Command) -> Result<()> {
    let what = format!("{command:?}");
    run_quiet(command, &what)
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The bridge, up with its address. Idempotent.
fn ensure_bridge() -> Result<()> {
    if !succeeds(Command::new("ip").args(["link", "show", BRIDGE])) {
        run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
    }
    let cidr = format!("{BRIDGE_ADDRESS}/{PREFIX}");
    if !address_present(None, BRIDGE, BRIDGE_ADDRESS) {
        run(Command::new("ip").args(["addr", "add", &cidr, "dev", BRIDGE]))?;
    }
    run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))
}

fn address_present(host: Option<&NodeHost>, device: &str, address: &str) -> bool {
    let mut command = match host {
        Some(host) => host.ip(),
        None => Command::new("ip"),
    };
    command.args(["-o", "addr", "show", "dev", device]);
    command
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|word| word.split('/').next() == Some(address))
        })
        .unwrap_or(false)
}

/// The host's namespace and its link, with the host's address. Idempotent.
fn ensure_netns(host: &NodeHost) -> Result<()> {
    if !host.netns_path().exists() {
        run(Command::new("ip").args(["netns", "add", &host.netns]))?;
    }
    if !succeeds(Command::new("ip").args(["link", "show", &host.netns])) {
        // The host's MAC address follows from its index, so that a host made again (a world's
        // private host) answers at the MAC the machine's neighbour table already holds for its
        // address: a new random one went unanswered until that entry expired.
        let mac = format!(
            "02:77:00:00:{:02x}:{:02x}",
            (host.index >> 8) & 0xff,
            host.index & 0xff
        );
        run(Command::new("ip").args([
            "link",
            "add",
            &host.netns,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            &mac,
            "netns",
            &host.netns,
        ]))?;
    }
    run(Command::new("ip").args(["link", "set", &host.netns, "master", BRIDGE, "up"]))?;
    if !address_present(Some(host), "eth0", &host.address) {
        run(host.ip().args([
            "addr",
            "add",
            &format!("{}/{PREFIX}", host.address),
            "dev",
            "eth0",
        ]))?;
    }
    run(host.ip().args(["link", "set", "eth0", "up"]))?;
    run(host.ip().args(["link", "set", "lo", "up"]))
}

/// Adds `address` to the host (an OMS node's own address on it; idempotent).
pub fn add_address(host: &NodeHost, address: &str) -> Result<()> {
    if address_present(Some(host), "eth0", address) {
        return Ok(());
    }
    run(host
        .ip()
        .args(["addr", "add", &format!("{address}/32"), "dev", "eth0"]))
}

/// Removes `address` from the host if it is there.
pub fn remove_address(host: &NodeHost, address: &str) {
    if address_present(Some(host), "eth0", address) {
        let _ = succeeds(
            host.ip()
                .args(["addr", "del", &format!("{address}/32"), "dev", "eth0"]),
        );
    }
}

/// Cuts (`up = false`) or restores the host's link to the rest of the machine.
pub fn set_link(host: &NodeHost, up: bool) -> Result<()> {
    run(Command::new("ip").args(["link", "set", &host.netns, if up { "up" } else { "down" }]))
}

/// The CA, one server certificate per host (its address as the subject alternative name), and
/// the client certificate; generated once, kept under the state dir.
fn ensure_pki(hosts: &[NodeHost]) -> Result<()> {
    let dir = pki_dir();
    create_dir(&dir, 0o700)?;
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    if !ca.is_file() || !ca_key.is_file() {
        certificate(
            &dir,
            "ca",
            "omsup-testworld CA",
            "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
            None,
        )?;
    }
    let client = dir.join("client-cert.pem");
    if !client.is_file() {
        certificate(
            &dir,
            "client",
            "omsup",
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n",
            Some((&ca, &ca_key)),
        )?;
    }
    for host in hosts {
        let name = format!("h{}", host.index);
        if !dir.join(format!("{name}-cert.pem")).is_file() {
            certificate(
                &dir,
                &name,
                &host.netns,
                &format!(
                    "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:{}\n",
                    host.address
                ),
                Some((&ca, &ca_key)),
            )?;
        }
    }
    Ok(())
}

/// `openssl req -x509`: a P-256 key `<name>-key.pem` and its certificate (`<name>.pem` when
/// self-signed, else `<name>-cert.pem`), self-signed or signed by `issuer`.
pub(crate) fn certificate(
    dir: &Path,
    name: &str,
    common_name: &str,
    extensions: &str,
    issuer: Option<(&Path, &Path)>,
) -> Result<()> {
    let config = dir.join(format!("{name}.cnf"));
    std::fs::write(
        &config,
        format!(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {common_name}\n[ext]\n{extensions}"
        ),
    )
    .map_err(|e| Error::io(format!("cannot write {}", config.display()), e))?;
    let cert = if issuer.is_some() {
        dir.join(format!("{name}-cert.pem"))
    } else {
        dir.join(format!("{name}.pem"))
    };
    let mut command = Command::new("openssl");
    command
        .args(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .args(["-nodes", "-days", "3650", "-extensions", "ext", "-config"])
        .arg(&config)
        .arg("-keyout")
        .arg(dir.join(format!("{name}-key.pem")))
        .arg("-out")
        .arg(&cert);
    if let Some((ca, ca_key)) = issuer {
        command.arg("-CA").arg(ca).arg("-CAkey").arg(ca_key);
    }
    run(&mut command)
}

/// The client's SSH key (authorised on every host) and each host's key, in `known_hosts`.
fn ensure_ssh_keys(hosts: &[NodeHost]) -> Result<()> {
    let dir = ssh_dir();
    create_dir(&dir, 0o700)?;
    let identity = dir.join("id_ed25519");
    if !identity.is_file() {
        keygen(&identity)?;
    }
    let public = read(&dir.join("id_ed25519.pub"))?;
    write(&dir.join("authorized_keys"), &public)?;
    for host in hosts {
        let key = state_dir(host.index).join("ssh_host_ed25519_key");
        if !key.is_file() {
            create_dir(&state_dir(host.index), 0o755)?;
            keygen(&key)?;
        }
    }
    // Every host that has a key, not only these: private hosts come and go beside the shared
    // ones. Written whole and renamed into place, so a reader never sees half a file.
    let mut known_hosts = String::new();
    let mut all: Vec<usize> = std::fs::read_dir(Path::new(STATE_DIR).join("hosts"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_prefix('h')?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    all.sort_unstable();
    for host in all.into_iter().map(NodeHost::new) {
        let key = state_dir(host.index).join("ssh_host_ed25519_key.pub");
        let Ok(public) = std::fs::read_to_string(&key) else {
            continue;
        };
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        for port in SSH_PORTS {
            let name = if port == 22 {
                host.address.clone()
            } else {
                format!("[{}]:{port}", host.address)
            };
            known_hosts.push_str(&format!("{name} {public}\n"));
        }
    }
    let staged = dir.join("known_hosts.new");
    write(&staged, &known_hosts)?;
    std::fs::rename(&staged, dir.join("known_hosts"))
        .map_err(|e| Error::io("cannot replace known_hosts".to_owned(), e))
}

fn keygen(path: &Path) -> Result<()> {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "omsup-testworld",
            "-f",
        ])
        .arg(path))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Does the host's daemon answer on its unix socket?
pub fn docker_answers(host: &NodeHost) -> bool {
    succeeds(Command::new("docker").arg("-H").arg(host.unix_url()).args([
        "version",
        "--format",
        "{{.Server.Version}}",
    ]))
}

/// Does the host's sshd accept a TCP connection on every port?
fn sshd_answers(host: &NodeHost) -> bool {
    SSH_PORTS.iter().all(|port| {
        std::net::TcpStream::connect_timeout(
            &format!("{}:{port}", host.address)
                .parse()
                .expect("a valid address"),
            Duration::from_millis(500),
        )
        .is_ok()
    })
}

/// The storage driver of the primary daemon (the one these machines are known to support).
fn storage_driver() -> String {
    Command::new("docker")
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|driver| !driver.is_empty())
        .unwrap_or_else(|| "vfs".to_owned())
}

fn ensure_dockerd(host: &NodeHost) -> Result<()> {
    if docker_answers(host) {
        return Ok(());
    }
    let state = state_dir(host.index);
    let run_at = run_dir(host.index);
    create_dir(&state, 0o755)?;
    create_dir(&run_at, 0o755)?;
    // Its own config file, so the primary daemon's /etc/docker/daemon.json does not clash.
    let config = state.join("daemon.json");
    write(&config, "{}\n")?;
    let _ = std::fs::remove_file(&host.socket);
    let pki = pki_dir();
    let log = state.join("dockerd.log");
    let driver = storage_driver();
    eprintln!(
        "services: starting dockerd on host {} ({}, {driver})",
        host.index, host.address
    );
    spawn_detached(
        host.enter("dockerd")
            .arg("--config-file")
            .arg(&config)
            .arg("--host")
            .arg(host.unix_url())
            .arg("--host")
            .arg(host.tls_url())
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(pki.join("ca.pem"))
            .arg("--tlscert")
            .arg(pki.join(format!("h{}-cert.pem", host.index)))
            .arg("--tlskey")
            .arg(pki.join(format!("h{}-key.pem", host.index)))
            .arg("--data-root")
            .arg(state.join("docker"))
            .arg("--exec-root")
            .arg(run_at.join("exec"))
            .arg("--pidfile")
            .arg(run_at.join("docker.pid"))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver",
                &driver,
            ]),
        &log,
    )?;
    wait_until(
        &format!("dockerd on host {}", host.index),
        &log,
        Duration::from_secs(60),
        || docker_answers(host),
    )
}

fn ensure_sshd(host: &NodeHost) -> Result<()> {
    if sshd_answers(host) {
        return Ok(());
    }
    create_dir(Path::new("/run/sshd"), 0o755)?;
    let state = state_dir(host.index);
    let run_at = run_dir(host.index);
    create_dir(&run_at, 0o755)?;
    let config = state.join("sshd_config");
    let listen: String = SSH_PORTS
        .iter()
        .map(|port| format!("ListenAddress {}:{port}\n", host.address))
        .collect();
    write(
        &config,
        &format!(
            "{listen}HostKey {key}\nPidFile {pid}\nAuthorizedKeysFile {authorized}\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nPrintMotd no\n\
             SetEnv DOCKER_HOST={docker}\n",
            key = state.join("ssh_host_ed25519_key").display(),
            pid = run_at.join("sshd.pid").display(),
            authorized = ssh_dir().join("authorized_keys").display(),
            docker = host.unix_url(),
        ),
    )?;
    let log = state.join("sshd.log");
    eprintln!(
        "services: starting sshd on host {} ({})",
        host.index, host.address
    );
    spawn_detached(
        host.enter("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log),
        &log.with_extension("out"),
    )?;
    wait_until(
        &format!("sshd on host {}", host.index),
        &log,
        Duration::from_secs(20),
        || sshd_answers(host),
    )
}

/// Everything of hosts `1..=count`: bridge, namespaces, keys and certificates, daemons, sshds.
pub fn ensure(count: usize) -> Result<Vec<NodeHost>> {
    let hosts: Vec<NodeHost> = (1..=count).map(NodeHost::new).collect();
    ensure_hosts(&hosts)?;
    Ok(hosts)
}

/// The first index of the private hosts (one world's own, for tests that cut links or restart
/// daemons); below it, the shared hosts.
pub const FIRST_PRIVATE_HOST: usize = 50;
/// Private hosts per world.
pub const PRIVATE_HOSTS_PER_WORLD: usize = 4;

/// The private host of node `k` (1-based) of world `number`: 49 worlds' worth of hosts
/// (`10.77.0.60` to `10.77.0.255`) before an index comes back.
pub fn private_host(number: u64, k: usize) -> NodeHost {
    let slot = (number % 49) as usize;
    NodeHost::new(FIRST_PRIVATE_HOST + slot * PRIVATE_HOSTS_PER_WORLD + (k - 1))
}

/// Starts `hosts` (a world's private ones) from nothing, serialised with the services by their
/// lock: whatever an earlier world left on them (containers, images, a cut link) is removed
/// first, so a private host starts as an empty machine would.
pub fn ensure_private(hosts: &[NodeHost]) -> Result<()> {
    let _lock = crate::services::lock()?;
    for host in hosts {
        remove(host)?;
    }
    ensure_hosts(hosts)
}

/// Stops and removes one host (a world's private one) with its daemon's data; idempotent.
pub fn remove(host: &NodeHost) -> Result<()> {
    let run_at = run_dir(host.index);
    stop_by_pid_file(&run_at.join("sshd.pid"));
    stop_by_pid_file(&run_at.join("docker.pid"));
    let _ = succeeds(Command::new("ip").args(["link", "del", &host.netns]));
    let _ = succeeds(Command::new("ip").args(["netns", "del", &host.netns]));
    let _ = succeeds(Command::new("ip").args(["neigh", "flush", "to", &host.address]));
    // The data root holds the images and containers: without it the host starts empty. (The
    // exec root stays: dockerd leaves an nsfs mount in it, and it holds nothing that lasts.)
    let data_root = state_dir(host.index).join("docker");
    if crate::services::remove_dir_if_any(&data_root).is_err() {
        // A mount dockerd left behind (it bind-mounts its data root): detach it, then again.
        let _ = succeeds(
            Command::new("umount")
                .arg("--recursive")
                .arg("--lazy")
                .arg(&data_root),
        );
        crate::services::remove_dir_if_any(&data_root)?;
    }
    Ok(())
}

/// Stops the host's dockerd (SIGTERM, waits) and starts it again; its containers stop with it
/// (as on a real host without live restore).
pub fn restart_dockerd(host: &NodeHost) -> Result<()> {
    stop_by_pid_file(&run_dir(host.index).join("docker.pid"));
    ensure_dockerd(host)
}

fn ensure_hosts(hosts: &[NodeHost]) -> Result<()> {
    ensure_bridge()?;
    ensure_pki(hosts)?;
    ensure_ssh_keys(hosts)?;
    for host in hosts {
        ensure_netns(host)?;
        ensure_dockerd(host)?;
        ensure_sshd(host)?;
    }
    Ok(())
}

/// Checks that hosts `1..=count` answer (daemon on its socket, sshd on its ports).
pub fn check(count: usize) -> Result<Vec<NodeHost>> {
    let hosts: Vec<NodeHost> = (1..=count).map(NodeHost::new).collect();
    for host in &hosts {
        if !docker_answers(host) {
            return Err(Error::ServicesMissing(format!(
                "no Docker daemon answers on node host {} (`{}`)",
                host.index,
                host.unix_url()
            )));
        }
        if !sshd_answers(host) {
            return Err(Error::ServicesMissing(format!(
                "no sshd answers on node host {} ({})",
                host.index, host.address
            )));
        }
    }
    let client = ClientFiles::expected();
    for file in [
        &client.tls_cert,
        &client.ssh_identity,
        &client.ssh_known_hosts,
    ] {
        if !file.is_file() {
            return Err(Error::ServicesMissing(format!(
                "the client file `{}` is missing",
                file.display()
            )));
        }
    }
    Ok(hosts)
}

/// Every host that exists (its namespace), by index.
pub fn existing() -> Vec<NodeHost> {
    let mut hosts: Vec<NodeHost> = std::fs::read_dir("/var/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("omsup-h")?
                        .parse()
                        .ok()
                        .map(NodeHost::new)
                })
                .collect()
        })
        .unwrap_or_default();
    hosts.sort_by_key(|host| host.index);
    hosts
}

/// Stops every host's sshd and dockerd and removes namespaces, links and the bridge;
/// idempotent and safe on a half-made set-up. Keys and certificates stay (the next start
/// reuses them). Returns what it stopped.
pub fn down() -> Vec<String> {
    let mut stopped = Vec::new();
    for host in existing() {
        let run_at = run_dir(host.index);
        if stop_by_pid_file(&run_at.join("sshd.pid")) {
            stopped.push(format!("sshd on host {}", host.index));
        }
        if stop_by_pid_file(&run_at.join("docker.pid")) {
            stopped.push(format!("dockerd on host {}", host.index));
        }
        let _ = succeeds(Command::new("ip").args(["link", "del", &host.netns]));
        let _ = succeeds(Command::new("ip").args(["netns", "del", &host.netns]));
    }
    let _ = succeeds(Command::new("ip").args(["link", "del", BRIDGE]));
    stopped
}
