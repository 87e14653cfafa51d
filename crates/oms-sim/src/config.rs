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
    /// The supervisor's component states (inside the container, not on a mount).
    pub supervisor_state: PathBuf,
    /// `/etc/pki/nginx`: the HTTPS certificate and key, when mounted.
    pub pki: PathBuf,
}

impl Paths {
    pub fn from_env() -> Self {
        let root = PathBuf::from(std::env::var("OMS_SIM_ROOT").unwrap_or_else(|_| "/".to_owned()));
        Self::under(&root)
    }

    pub fn under(root: &std::path::Path) -> Self {
        Self {
            config: root.join("home/admin/conf/config.yaml"),
            logs: root.join("home/admin/logs"),
            store: root.join("home/ds/store"),
            run: root.join("home/ds/run"),
            supervisor_state: root.join("tmp/oms-sim-supervisor.status"),
            pki: root.join("etc/pki/nginx"),
        }
    }
}

/// The keys of config.yaml the simulator uses; others are accepted and ignored, as OMS does.
/// Every scalar may be quoted or not (`oms_meta_port: 2883` as the docs write it,
/// `oms_meta_port: "2883"` as the OceanBase deployer does).
#[derive(Debug, Clone, Deserialize)]
pub struct SimConfig {
    #[serde(deserialize_with = "text")]
    pub oms_meta_host: String,
    #[serde(deserialize_with = "port")]
    pub oms_meta_port: u16,
    #[serde(deserialize_with = "text")]
    pub oms_meta_user: String,
    #[serde(deserialize_with = "text")]
    pub oms_meta_password: String,
    #[serde(deserialize_with = "text")]
    pub drc_rm_db: String,
    #[serde(deserialize_with = "text")]
    pub drc_cm_db: String,
    #[serde(deserialize_with = "text")]
    pub drc_cm_heartbeat_db: String,
    #[serde(default, deserialize_with = "optional_text")]
    pub cm_region: Option<String>,
    #[serde(default, deserialize_with = "texts")]
    pub cm_nodes: Vec<String>,
    #[serde(default = "default_nginx_port", deserialize_with = "port")]
    pub nginx_server_port: u16,
}

fn default_nginx_port() -> u16 {
    8089
}

/// A scalar's text, quoted or not.
fn scalar(value: serde_yaml_ng::Value) -> Option<String> {
    match value {
        serde_yaml_ng::Value::String(text) => Some(text),
        serde_yaml_ng::Value::Number(number) => Some(number.to_string()),
        serde_yaml_ng::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    scalar(serde_yaml_ng::Value::deserialize(deserializer)?)
        .ok_or_else(|| serde::de::Error::custom("expected a scalar"))
}

fn optional_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(scalar(serde_yaml_ng::Value::deserialize(deserializer)?))
}

fn texts<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Vec::<serde_yaml_ng::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|value| scalar(value).ok_or_else(|| serde::de::Error::custom("expected a scalar")))
        .collect()
}

fn port<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    text(deserializer)?
        .trim()
        .parse()
        .map_err(|_| serde::de::Error::custom("expected a port number"))
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

    #[test]
    fn reads_every_scalar_quoted_as_the_deployer_writes_it() {
        let config = SimConfig::parse(
            "oms_meta_host: \"127.0.0.1\"\noms_meta_port: \"2881\"\noms_meta_user: \"u\"\n\
             oms_meta_password: \"p\"\ndrc_rm_db: \"rm\"\ndrc_cm_db: \"cm\"\ndrc_cm_heartbeat_db: \"hb\"\n\
             cm_location: \"1\"\ncm_is_default: \"true\"\ncm_region: \"hz\"\n\
             cm_nodes:\n  - \"127.0.0.2\"\nnginx_server_port: \"18089\"\n",
        )
        .unwrap();
        assert_eq!(config.oms_meta_port, 2881);
        assert_eq!(config.nginx_server_port, 18089);
        assert_eq!(config.cm_nodes, ["127.0.0.2"]);
        assert_eq!(config.region(), "hz");
        assert!(SimConfig::parse("oms_meta_port: \"x\"\n").is_err());
    }
}
