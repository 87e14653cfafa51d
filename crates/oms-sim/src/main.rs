//! `oms-sim`: a simulator of the OMS Community Edition container, for omsup's test world.
//!
//! No real OMS image can be had on these machines, so the test images run this program. It
//! keeps the OMS container contract of OMS-FACTS.md, close enough that omsup's mistakes show:
//!
//! - `oms-sim serve` (the image's command) reads `/home/admin/conf/config.yaml` (the real keys:
//!   `oms_meta_host`, `oms_meta_port`, `oms_meta_user`, `oms_meta_password`, `drc_rm_db`,
//!   `drc_cm_db`, `drc_cm_heartbeat_db`, `cm_region`, `cm_nodes`, `nginx_server_port`, ...) and
//!   the environment (`OMS_HOST_IP`, `IS_UPGRADE`, and `OMS_SIM_VERSION`, baked into each image).
//!   It takes a while to start, then prints `OMS service start successfully`; registers its host
//!   in cm `host` (ONLINE only while the meta schema is at its own version, else OFFLINE);
//!   every second writes a `heatbeat_sequence` row and its `heart_beat` row in its region's
//!   cm_hb and appends a line to `/home/ds/store/<ip>/store.dat`; answers `GET /oms/health`
//!   on `<OMS_HOST_IP>:<nginx_server_port>` with `{"success":true,"data":{"healthy":...}}`,
//!   healthy only when ready and the schema is at its version. While `ha.config`'s `enable`
//!   is true it acts on every other host of cm `host` found not ONLINE: a row in rm
//!   `oms_ha_event` (see [`ha`]), so nodes stopped with HA on leave a trace. Its supervisor
//!   components (`nginx`, `oms_console`, `oms_drc_cm`, `oms_drc_supervisor`, `sshd`) are
//!   STARTING until a while after the start line, then RUNNING; `supervisorctl status` in the
//!   image prints them (see [`supervisor`]). On SIGTERM it marks its host OFFLINE and exits 0. Once ready it writes nothing more to stdout or stderr (warnings go to
//!   `/home/admin/logs/oms-sim.log`), so the last line of `docker logs` stays the start line.
//! - `oms-sim init` (what `/root/docker_init.sh` runs) logs to
//!   `/home/admin/logs/docker_init.log`. It refuses (exit 1) while a supervisor component is
//!   not RUNNING, as the runbooks wait for them first, and takes its time (steps spread over
//!   `OMS_SIM_INIT_MS` / `sim-init-ms`, default 300; the real one takes 2 to 5 minutes). On an
//!   empty meta DB it installs the schema of its
//!   version. On an existing one without `IS_UPGRADE=true` it WIPES the meta data and installs
//!   afresh (the danger omsup must prevent). With `IS_UPGRADE=true` it refuses with
//!   `Version before 4.1.1 is not allowed to upgrade` when `rm.oms_version` is missing or
//!   older than 4.1.1, refuses a downgrade, and otherwise applies the migrations of the
//!   [`schema::LADDER`] between the recorded version and its own, keeping every row, records
//!   its version and marks its host ONLINE. It ends with `[Completed] All initialization steps
//!   are executed`. Running it twice is harmless. An upgrade refuses data it cannot migrate: an
//!   rm `oms_project` row whose `status` is `UNMIGRATABLE` fails it (exit 1, naming the
//!   project) before any change, whatever the knobs say; the row travels with the data, so a
//!   rehearsal on copies meets the failure an apply would.
//!
//! Fault knobs, each an environment variable or a file in the mounted run directory
//! `/home/ds/run/` (files let tests inject faults into containers that omsup creates):
//! `OMS_SIM_START_DELAY_MS` / `sim-start-delay-ms` (a number: time to become ready, default
//! 1500), `OMS_SIM_CRASH_ON_START=1` / `sim-crash-on-start` (exit 1 before becoming ready),
//! `OMS_SIM_INIT_FAIL_ONCE=1` / `sim-init-fail-once` (init fails before touching the meta DB;
//! the file is deleted when it fires, the environment variable leaves
//! `sim-init-fail-once.fired` in the run directory, so the next init succeeds),
//! `OMS_SIM_INIT_HANG=1` / `sim-init-hang` (init never ends), `OMS_SIM_INIT_INCOMPLETE=1` /
//! `sim-init-incomplete` (init exits 0 but stops before its `[Completed]` line, as an init
//! whose script swallowed a failure), `OMS_SIM_COMPONENTS_DELAY_MS` / `sim-components-delay-ms`
//! (how long after the start line the components turn RUNNING, default 500). An environment
//! knob set to `0` or `false` is off; a knob file is on by existing.
//!
//! config.yaml's scalars may be quoted or not (the docs write `oms_meta_port: 2883`, the
//! OceanBase deployer `oms_meta_port: "2883"`); keys it does not use are ignored.
//!
//! `/oms/health` is served over HTTPS only when a certificate and its key are mounted at
//! `/etc/pki/nginx/oms_server.crt` and `.key` (plain HTTP then gets nginx's 400), and can be made
//! to answer chunked (`OMS_SIM_HEALTH_CHUNKED` / `sim-health-chunked`) or with another status
//! (`OMS_SIM_HEALTH_STATUS` / `sim-health-status`, e.g. `500`, the JSON body unchanged); these
//! two knobs are read on every request (see the `health` module).
//!
//! The health answer is `{"success":true,"data":{"healthy":<bool>,"version":"4.2.9-CE",
//! "schemaVersion":<the newest rm.oms_version row, or null>}}`. Schema ladder (see
//! [`schema::BASE`] and [`schema::LADDER`]): 4.1.0 base tables; 4.2.0 adds rm
//! `oms_sync_project`; 4.2.8 adds rm `oms_project.labels`; 4.2.9 adds rm `oms_alarm_event` and
//! cm `host.agent_version`. Versions compare numerically, the `-CE` suffix ignored.
//!
//! `OMS_SIM_ROOT` (default `/`) moves the fixed paths under another root, for runs outside
//! Docker. Images: `cargo xtask sim-images` builds `oms:feature_<x.y.z>-ce` for 4.1.0, 4.2.0,
//! 4.2.8 and 4.2.9 (`OMS_SIM_VERSION=<x.y.z>-CE`, command `oms-sim serve`, `/bin/bash`,
//! `/root/docker_init.sh` and `supervisorctl` present) and saves each to
//! `<target dir>/oms-sim-images/oms-<x.y.z>-ce.tar` (`docker load` yields the tag).

mod config;
mod ha;
mod health;
mod init;
mod schema;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sqlx::MySqlPool;

pub use config::{Paths, SimConfig};

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let result = match command.as_str() {
        "serve" => runtime.block_on(serve()),
        // init logs its own error (to its log file and stdout, as docker_init.sh does).
        "init" => runtime.block_on(init::run()).map_err(|_| String::new()),
        "version" => {
            println!("{}", own_version_text());
            Ok(())
        }
        // supervisorctl exits 3 when a component is not RUNNING, having said which.
        "supervisorctl" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            match supervisor::supervisorctl(&args) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(3),
                Err(message) => Err(message),
            }
        }
        _ => Err("usage: oms-sim serve|init|supervisorctl status|version".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("[ERROR] {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The version this image simulates (`OMS_SIM_VERSION`, e.g. `4.2.9-CE`).
pub fn own_version_text() -> String {
    std::env::var("OMS_SIM_VERSION").unwrap_or_else(|_| "4.2.9-CE".to_owned())
}

/// An on/off knob: the environment variable set to anything but `0`/`false`/empty, else the
/// file present in the run directory.
pub fn knob_on(paths: &Paths, env: &str, file: &str) -> bool {
    knob(paths, env, file).is_some_and(|value| knob_value_is_on(&value, std::env::var(env).is_ok()))
}

/// A value read from the environment switches a knob on unless it is `0`, `false` or empty; a
/// knob file switches it on by existing, whatever it holds.
fn knob_value_is_on(value: &str, from_env: bool) -> bool {
    !from_env || !matches!(value.trim(), "" | "0" | "false")
}

/// A knob: the environment variable, else the file in the run directory.
pub fn knob(paths: &Paths, env: &str, file: &str) -> Option<String> {
    if let Ok(value) = std::env::var(env) {
        return Some(value);
    }
    std::fs::read_to_string(paths.run.join(file))
        .ok()
        .map(|text| text.trim().to_owned())
}

/// Connects to the meta DB, retrying for a while: OMS keeps trying when its DB blips.
pub async fn connect(config: &SimConfig, patience: Duration) -> Result<MySqlPool, String> {
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&config.oms_meta_host)
        .port(config.oms_meta_port)
        .username(&config.oms_meta_user)
        .password(&config.oms_meta_password);
    let started = std::time::Instant::now();
    loop {
        match sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(error) if started.elapsed() < patience => {
                eprintln!("[WARN] meta DB not reachable yet: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(format!("cannot connect to the meta DB: {error}")),
        }
    }
}

async fn serve() -> Result<(), String> {
    let paths = Paths::from_env();
    let config = SimConfig::load(&paths)?;
    let host_ip = std::env::var("OMS_HOST_IP").map_err(|_| "OMS_HOST_IP is not set".to_owned())?;
    let version =
        schema::parse_version(&own_version_text()).ok_or("OMS_SIM_VERSION is not a version")?;
    println!("[INFO] OMS {} starting on {host_ip}", own_version_text());
    supervisor::record(&paths, "STARTING");

    let delay_ms: u64 = knob(&paths, "OMS_SIM_START_DELAY_MS", "sim-start-delay-ms")
        .and_then(|text| text.parse().ok())
        .unwrap_or(1500);
    // Watched from the start: a container stopped while it is still starting stops at once,
    // as OMS's supervisor does, instead of ignoring SIGTERM until docker kills it.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
        _ = terminate.recv() => {
            println!("[INFO] stopped while starting");
            return Ok(());
        }
    }
    if knob_on(&paths, "OMS_SIM_CRASH_ON_START", "sim-crash-on-start") {
        return Err("simulated crash on start (fault knob)".to_owned());
    }

    let pool = connect(&config, Duration::from_secs(60)).await?;
    let store_dir: PathBuf = paths.store.join(&host_ip);
    std::fs::create_dir_all(&store_dir)
        .map_err(|e| format!("cannot create {}: {e}", store_dir.display()))?;

    let state = health::SharedHealth::default();
    let healthy = schema::is_at_version(&pool, &config, version).await;
    state.set(
        true,
        healthy,
        schema::recorded_version(&pool, &config).await,
    );
    schema::register_host(&pool, &config, &host_ip, healthy).await;
    let tls = health::tls_acceptor(&paths)?;
    if tls.is_some() {
        println!("[INFO] certificate mounted: the console serves HTTPS only");
    }
    println!("OMS service start successfully");
    let components_delay: u64 = knob(
        &paths,
        "OMS_SIM_COMPONENTS_DELAY_MS",
        "sim-components-delay-ms",
    )
    .and_then(|text| text.parse().ok())
    .unwrap_or(500);
    let supervised = paths.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(components_delay)).await;
        supervisor::record(&supervised, "RUNNING");
    });

    let address = format!("{host_ip}:{}", config.nginx_server_port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    tokio::spawn(health::serve_health(
        listener,
        state.clone(),
        own_version_text(),
        paths.clone(),
        tls,
    ));

    let mut ha_watch = ha::HaWatch::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let healthy = schema::is_at_version(&pool, &config, version).await;
                state.set(true, healthy, schema::recorded_version(&pool, &config).await);
                schema::register_host(&pool, &config, &host_ip, healthy).await;
                schema::heartbeat(&pool, &config, &host_ip).await;
                ha_watch.tick(&pool, &config, &host_ip).await;
                append_store(&store_dir, &host_ip);
            }
        }
    }
    // docker stop waits 10 s before SIGKILL: never let an unreachable DB hold the exit up.
    let _ = tokio::time::timeout(
        Duration::from_millis(1500),
        schema::mark_offline(&pool, &config, &host_ip),
    )
    .await;
    Ok(())
}

/// A warning of the running service: appended to `/home/admin/logs/oms-sim.log`, never to
/// stdout or stderr, so the last line of `docker logs` stays `OMS service start successfully`
/// (what obd waits for) while the service runs.
pub fn service_warning(text: &str) {
    use std::io::Write as _;
    let paths = Paths::from_env();
    let _ = std::fs::create_dir_all(&paths.logs);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.logs.join("oms-sim.log"))
    {
        let _ = writeln!(file, "[WARN] {text}");
    }
}

fn append_store(dir: &std::path::Path, host_ip: &str) {
    use std::io::Write as _;
    let path = dir.join("store.dat");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(file, "{stamp} store record from {host_ip}");
    }
}

#[cfg(test)]
mod tests {
    use super::knob_value_is_on;

    #[test]
    fn environment_knobs_can_be_switched_off_and_files_switch_on_by_existing() {
        assert!(knob_value_is_on("1", true));
        assert!(!knob_value_is_on("0", true));
        assert!(!knob_value_is_on("false", true));
        assert!(knob_value_is_on("", false));
    }
}
