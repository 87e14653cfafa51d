//! `cargo xtask world up|down`: deploy (or remove) an OMS world on the test services and print
//! how to reach it (see `omsup_testworld::world`).

use anyhow::{Context, Result, bail};
use omsup_testworld::world::{Transports, world_addresses, world_private_hosts};
use omsup_testworld::{RegionSpec, World, WorldSpec, hosts, services};

pub fn run(args: &[String]) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.first().map(String::as_str) {
        Some("up") => runtime.block_on(up(&args[1..])),
        Some("down") => runtime.block_on(down(&args[1..])),
        _ => bail!(
            "usage: cargo xtask world up [--nodes N] [--version X.Y.Z] [--transports mixed|ssh|tls|unix] | world down [ID|--all]"
        ),
    }
}

async fn up(args: &[String]) -> Result<()> {
    let mut spec = WorldSpec::two_nodes();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--nodes" => {
                let nodes = rest
                    .next()
                    .and_then(|n| n.parse().ok())
                    .context("`--nodes` takes a number")?;
                spec.regions = vec![RegionSpec {
                    name: "hz".into(),
                    nodes,
                    shared_cm_nodes: true,
                }];
            }
            "--version" => {
                spec.version = rest
                    .next()
                    .context("`--version` takes a version like 4.2.8")?
                    .clone()
            }
            "--transports" => {
                spec.transports = match rest.next().map(String::as_str) {
                    Some("mixed") => Transports::Mixed,
                    Some("ssh") => Transports::Ssh,
                    Some("tls") => Transports::Tls,
                    Some("unix") => Transports::Unix,
                    _ => bail!("`--transports` takes mixed, ssh, tls or unix"),
                }
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    let nodes: usize = spec.regions.iter().map(|r| r.nodes).sum();
    services::ensure(nodes.max(services::DEFAULT_NODES))?;
    crate::sim_images::run(&[])?;
    let started = std::time::Instant::now();
    let world = World::up(spec).await?;
    println!(
        "world {} is up in {:.1?} (OMS {})",
        world.id,
        started.elapsed(),
        world.spec.version
    );
    for node in &world.nodes {
        println!(
            "  node {} {:<14} on host {} ({}), docker {}  container {}",
            node.index,
            node.ip,
            node.host.index,
            node.host.address,
            node.endpoint(),
            world.container
        );
    }
    println!(
        "  meta db {}:{} databases: {}",
        world.services.meta_host,
        world.services.meta_port,
        world.databases().join(", ")
    );
    println!("  plan    {}", world.plan_path.display());
    println!("remove it with: cargo xtask world down {}", world.id);
    Ok(())
}

async fn down(args: &[String]) -> Result<()> {
    // Safe on half-made services: whatever does not answer is skipped with a warning.
    let services = services::expected(services::DEFAULT_NODES);
    let base = std::env::temp_dir().join("omsup-worlds");
    let ids: Vec<String> = match args.first().map(String::as_str) {
        None => bail!(
            "`world down` needs a world id (as `world up` printed it) or `--all`\nhint: other people's worlds on this machine are removed by `--all` too"
        ),
        Some("--all") => std::fs::read_dir(&base)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        Some(id) => vec![id.to_owned()],
    };
    let pool = match omsup_testworld::world::meta_pool(&services).await {
        Ok(pool) => Some(pool),
        Err(error) => {
            eprintln!("warning: the worlds' databases stay: {error}");
            None
        }
    };
    for id in ids {
        let container = format!("oms_{id}");
        for host in hosts::existing() {
            if hosts::docker_answers(&host) {
                let docker = omsup_testworld::world::connect_docker(&host.socket)?;
                if let Err(error) = omsup_testworld::world::remove_named(&docker, &container).await
                {
                    eprintln!(
                        "warning: cannot remove `{container}` on host {}: {error}",
                        host.index
                    );
                }
            }
            for address in world_addresses(&id) {
                hosts::remove_address(&host, &address);
            }
        }
        // Its private hosts, if it had any: those its plan file names (another world may
        // use the same indices).
        let plan = std::fs::read_to_string(base.join(&id).join("plan.toml")).unwrap_or_default();
        for host in world_private_hosts(&id) {
            if plan.contains(&format!("@{}", host.address))
                || plan.contains(&format!("//{}:", host.address))
            {
                hosts::remove(&host)?;
            }
        }
        // Its own MariaDB server, if it had one.
        if let Some(port) = omsup_testworld::world::world_private_meta_port(&id)
            && plan.contains(&format!("port = {port}\n"))
        {
            omsup_testworld::services::remove_private_meta(port)?;
        }
        let mut databases: Vec<String> = Vec::new();
        if let Some(pool) = &pool {
            databases = sqlx::query_scalar("SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE ?")
                .bind(format!("{id}\\_%"))
                .fetch_all(pool)
                .await?;
            for database in &databases {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{database}`"
                )))
                .execute(pool)
                .await?;
            }
        }
        let _ = std::fs::remove_dir_all(base.join(&id));
        println!("world {id} removed ({} databases)", databases.len());
    }
    Ok(())
}
