//! `cargo xtask services [up|down] [--nodes N]`: the test services (see `omsup_testworld::services`).

use anyhow::{Result, bail};
use omsup_testworld::services;

/// Installs what is missing (`(command, Debian package)` pairs).
pub fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
    Ok(services::ensure_debian_packages(wanted)?)
}

pub fn run(args: &[String]) -> Result<()> {
    let mut nodes = services::DEFAULT_NODES;
    let mut action = "up";
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "up" | "down" => action = if arg == "up" { "up" } else { "down" },
            "--nodes" => match rest.next().and_then(|n| n.parse().ok()) {
                Some(n) if n >= 1 => nodes = n,
                _ => bail!("`--nodes` takes a number of nodes, 1 or more"),
            },
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask services [up|down] [--nodes N]"
            ),
        }
    }
    if action == "down" {
        let stopped = services::down()?;
        eprintln!(
            "services: stopped {} service(s): {}",
            stopped.len(),
            stopped.join(", ")
        );
        return Ok(());
    }
    let started = std::time::Instant::now();
    let up = services::ensure(nodes)?;
    for host in &up.hosts {
        eprintln!(
            "services: node host {} {}: {} | {} | {} (TLS) | {}",
            host.index,
            host.address,
            host.ssh_url(22),
            host.ssh_url(2222),
            host.tls_url(),
            host.unix_url()
        );
    }
    eprintln!(
        "services: ssh key `{}`, known hosts `{}`; TLS CA `{}`, client cert `{}`",
        up.client.ssh_identity.display(),
        up.client.ssh_known_hosts.display(),
        up.client.tls_ca.display(),
        up.client.tls_cert.display()
    );
    eprintln!(
        "services: meta database {}:{} user `{}`, password in `{}`",
        up.meta_host,
        up.meta_port,
        up.meta_user,
        up.meta_password_file.display()
    );
    eprintln!("services: ready in {:.1?}", started.elapsed());
    Ok(())
}
