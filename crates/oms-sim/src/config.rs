//! The container's fixed paths and its config.yaml (the real OMS keys).

use std::path::PathBuf;

use serde::Deserialize;

/// The fixed paths inside the container, under `OMS_SIM_ROOT` (default `/`).
#[derive(Debug, Clone)]
pub struct Paths {
    pub config: PathBuf,
    pub logs: PathBuf,
    pub store: PathBuf,
    pub run: PathBuf,
    /// `/etc/pki/nginx`: the HTTPS certificate and key, when mounted.
    pub pki: PathBuf,
}

impl Paths {
    pub fn from_env() -> Self {
        let root = PathBuf::from(std::env::var("OMS_SIM_ROOT").unwrap_or_else(|_| "/".to_owned()));
        Self {
            config: root.join("home/admin/conf/config.yaml"),
            logs: root.join("home/admin/logs"),
            store: root.join("home/ds/store"),
            run: root.join("home/ds/run"),
            pki: root.join("etc/pki/nginx"),
        }
    }
}

/// The keys of config.yaml the simulator uses; others are accepted and ignored, as OMS does.
#[derive(Debug, Clone, Deserialize)]
pub struct SimConfig {
    pub oms_meta_host: String,
    pub oms_meta_port: u16,
    pub oms_meta_user: String,
    pub oms_meta_password: String,
    pub drc_rm_db: String,
    pub drc_cm_db: String,
    pub drc_cm_heartbeat_db: String,
    #[serde(default)]
    pub cm_region: Option<String>,
    #[serde(default)]
    pub cm_nodes: Vec<String>,
    #[serde(default = "default_nginx_port")]
    pub nginx_server_port: u16,
}

fn default_nginx_port() -> u16 {
    8089
}

impl SimConfig {
    pub fn load(paths: &Paths) -> Result<Self, String> {
        let text = std::fs::read_to_string(&paths.config)
            .map_err(|e| format!("cannot read {}: {e}", paths.config.display()))?;
        Self::parse(&text).map_err(|e| format!("invalid {}: {e}", paths.config.display()))
    }

    pub fn parse(text: &str) -> Result<Self, serde_yaml_ng::Error> {
        let config: Self = serde_yaml_ng::from_str(text)?;
        Ok(config)
    }

    /// The region name (`cm_region`), `default` when unset.
    pub fn region(&self) -> &str {
        self.cm_region.as_deref().unwrap_or("default")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_keys_and_ignores_the_rest() {
        let config = SimConfig::parse(
            "oms_meta_host: 127.0.0.1\noms_meta_port: 3306\noms_meta_user: u\noms_meta_password: p\n\
             drc_rm_db: rm\ndrc_cm_db: cm\ndrc_cm_heartbeat_db: hb\ncm_url: http://127.0.0.2:8088\n\
             cm_location: 1\ncm_region: hz\ncm_nodes:\n  - 127.0.0.2\n  - 127.0.0.3\ntsdb_enabled: false\n",
        )
        .unwrap();
        assert_eq!(config.cm_nodes, ["127.0.0.2", "127.0.0.3"]);
        assert_eq!(config.nginx_server_port, 8089);
        assert_eq!(config.region(), "hz");
    }
}
