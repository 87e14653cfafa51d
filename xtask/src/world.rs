//! `cargo xtask world up|down`: deploy (or remove) an OMS world on the test services and print
//! how to reach it (see `omsup_testworld::world`).

use anyhow::{Context, Result, bail};
use omsup_testworld::{RegionSpec, World, WorldSpec, services};

pub fn run(args: &[String]) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.first().map(String::as_str) {
        Some("up") => runtime.block_on(up(&args[1..])),
        Some("down") => runtime.block_on(down(&args[1..])),
        _ => bail!(
            "usage: cargo xtask world up [--nodes N] [--version X.Y.Z] | world down [ID|--all]"
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
            "  node {} {:<14} docker unix://{}  container {}",
            node.index,
            node.ip,
            node.docker_socket.display(),
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
    let services = services::check(services::DEFAULT_NODES)?;
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
    let pool = omsup_testworld::world::meta_pool(&services).await?;
    for id in ids {
        let container = format!("oms_{id}");
        for socket in services::existing_node_sockets() {
            if !socket.exists() {
                continue;
            }
            let docker = omsup_testworld::world::connect_docker(&socket)?;
            if let Err(error) = omsup_testworld::world::remove_named(&docker, &container).await {
                eprintln!(
                    "warning: cannot remove `{container}` via `{}`: {error}",
                    socket.display()
                );
            }
        }
        let databases: Vec<String> = sqlx::query_scalar("SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE ?")
            .bind(format!("{id}\\_%"))
            .fetch_all(&pool)
            .await?;
        for database in &databases {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{database}`"
            )))
            .execute(&pool)
            .await?;
        }
        let _ = std::fs::remove_dir_all(base.join(&id));
        println!("world {id} removed ({} databases)", databases.len());
    }
    Ok(())
}
