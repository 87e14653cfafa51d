//! config.yaml as read from a container: the tar stream Docker's archive API returns, reduced
//! to the keys the engine needs and a sha256 of the whole file. The text itself (which holds
//! `oms_meta_password`) is dropped as soon as it is parsed, and never logged.
//!
//! Every scalar is read quoted or not: the docs write `oms_meta_port: 2883`, the OceanBase
//! deployer writes `oms_meta_port: "2883"` (every scalar a quoted string), and OMS takes both.
//! Keys omsup does not read are accepted and ignored.

use std::io::Read as _;

use omsup_engine::observed::ObservedOmsConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why config.yaml could not be read. Never quotes the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigYamlError {
    #[error("the archive Docker returned is not a tar holding one file")]
    NotATar,
    #[error("config.yaml is not valid YAML with the documented keys (line {line})")]
    Yaml { line: usize },
    #[error("config.yaml is larger than {0} bytes")]
    TooLarge(usize),
    #[error("config.yaml's `{key}` is not {expected}")]
    BadValue {
        key: &'static str,
        expected: &'static str,
    },
}

/// The largest config.yaml accepted (real ones are a few KiB).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// The content of the first regular file in a tar archive (Docker's archive API answers with a
/// tar of the one path asked for), read with the `tar` crate (PAX and GNU extension headers
/// included). At most [`MAX_CONFIG_BYTES`] are read.
pub fn single_file_from_tar(archive: &[u8]) -> Result<Vec<u8>, ConfigYamlError> {
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().map_err(|_| ConfigYamlError::NotATar)? {
        let entry = entry.map_err(|_| ConfigYamlError::NotATar)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if entry.size() > MAX_CONFIG_BYTES as u64 {
            return Err(ConfigYamlError::TooLarge(MAX_CONFIG_BYTES));
        }
        let mut content = Vec::new();
        entry
            .take(MAX_CONFIG_BYTES as u64)
            .read_to_end(&mut content)
            .map_err(|_| ConfigYamlError::NotATar)?;
        return Ok(content);
    }
    Err(ConfigYamlError::NotATar)
}

/// Only the keys the engine needs, each scalar as YAML gave it; serde ignores the rest (the
/// password among them).
#[derive(Deserialize)]
struct ConfigKeys {
    #[serde(default)]
    cm_nodes: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    cm_region: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    drc_rm_db: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    drc_cm_db: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    drc_cm_heartbeat_db: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    oms_meta_host: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    oms_meta_port: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    oms_meta_user: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    nginx_server_port: Option<serde_yaml_ng::Value>,
}

/// A scalar's text, quoted or not (`"2883"`, `2883`, `true`); `None` for null or empty.
pub fn scalar_text(value: Option<&serde_yaml_ng::Value>) -> Option<String> {
    match value? {
        serde_yaml_ng::Value::String(text) => Some(text.trim().to_owned()),
        serde_yaml_ng::Value::Number(number) => Some(number.to_string()),
        serde_yaml_ng::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
    .filter(|text| !text.is_empty())
}

fn port(
    key: &'static str,
    value: Option<&serde_yaml_ng::Value>,
) -> Result<Option<u16>, ConfigYamlError> {
    scalar_text(value)
        .map(|text| {
            text.parse().map_err(|_| ConfigYamlError::BadValue {
                key,
                expected: "a port number",
            })
        })
        .transpose()
}

/// Parses config.yaml's text into the observed keys and its sha256.
pub fn parse_config_yaml(bytes: &[u8]) -> Result<ObservedOmsConfig, ConfigYamlError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigYamlError::TooLarge(MAX_CONFIG_BYTES));
    }
    let keys: ConfigKeys = serde_yaml_ng::from_slice(bytes).map_err(|error| {
        // The error's own message may quote the file; keep only the line number.
        ConfigYamlError::Yaml {
            line: error.location().map_or(0, |location| location.line()),
        }
    })?;
    let cm_nodes = keys
        .cm_nodes
        .iter()
        .map(|node| {
            scalar_text(Some(node)).ok_or(ConfigYamlError::BadValue {
                key: "cm_nodes",
                expected: "a list of IP addresses",
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ObservedOmsConfig {
        cm_nodes,
        cm_region: scalar_text(keys.cm_region.as_ref()),
        drc_rm_db: scalar_text(keys.drc_rm_db.as_ref()),
        drc_cm_db: scalar_text(keys.drc_cm_db.as_ref()),
        drc_cm_heartbeat_db: scalar_text(keys.drc_cm_heartbeat_db.as_ref()),
        oms_meta_host: scalar_text(keys.oms_meta_host.as_ref()),
        oms_meta_port: port("oms_meta_port", keys.oms_meta_port.as_ref())?,
        oms_meta_user: scalar_text(keys.oms_meta_user.as_ref()),
        nginx_server_port: port("nginx_server_port", keys.nginx_server_port.as_ref())?,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, content).unwrap();
        builder.into_inner().unwrap()
    }

    const CONFIG: &str = "oms_meta_host: 127.0.0.1\noms_meta_password: s3cret\ndrc_rm_db: rm\n\
        drc_cm_db: cm\ndrc_cm_heartbeat_db: hb\ncm_region: hz\ncm_nodes:\n  - 127.0.0.2\n  - 127.0.0.3\n\
        nginx_server_port: 8089\n";

    #[test]
    fn reads_the_keys_from_the_tar_docker_returns() {
        let archive = tar_of("config.yaml", CONFIG.as_bytes());
        let file = single_file_from_tar(&archive).unwrap();
        assert_eq!(file, CONFIG.as_bytes());
        let config = parse_config_yaml(&file).unwrap();
        assert_eq!(config.cm_nodes, ["127.0.0.2", "127.0.0.3"]);
        assert_eq!(config.cm_region.as_deref(), Some("hz"));
        assert_eq!(config.drc_cm_heartbeat_db.as_deref(), Some("hb"));
        assert_eq!(config.nginx_server_port, Some(8089));
        assert_eq!(config.sha256.len(), 64);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    /// config.yaml as the OceanBase deployer writes it: every scalar a double-quoted string,
    /// keys omsup does not know among them.
    pub const OBD_CONFIG: &str = "oms_meta_host: \"127.0.0.1\"\noms_meta_port: \"2881\"\n\
        oms_meta_user: \"oms@tenant\"\noms_meta_password: \"s3cret\"\ndrc_rm_db: \"rm\"\n\
        drc_cm_db: \"cm\"\ndrc_cm_heartbeat_db: \"hb\"\ncm_url: \"http://127.0.0.2:8088\"\n\
        cm_location: \"1\"\ncm_region: \"hz\"\ncm_is_default: \"true\"\n\
        cm_nodes:\n  - \"127.0.0.2\"\n  - \"127.0.0.3\"\ntsdb_enabled: \"false\"\n\
        nginx_server_port: \"18089\"\nsome_future_key: {nested: [1, 2]}\n";

    #[test]
    fn quoted_scalars_and_unknown_keys_read_as_the_plain_ones() {
        let quoted = parse_config_yaml(OBD_CONFIG.as_bytes()).unwrap();
        assert_eq!(quoted.cm_nodes, ["127.0.0.2", "127.0.0.3"]);
        assert_eq!(quoted.cm_region.as_deref(), Some("hz"));
        assert_eq!(quoted.drc_rm_db.as_deref(), Some("rm"));
        assert_eq!(quoted.drc_cm_db.as_deref(), Some("cm"));
        assert_eq!(quoted.drc_cm_heartbeat_db.as_deref(), Some("hb"));
        assert_eq!(quoted.oms_meta_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(quoted.oms_meta_port, Some(2881));
        assert_eq!(quoted.oms_meta_user.as_deref(), Some("oms@tenant"));
        assert_eq!(quoted.nginx_server_port, Some(18089));
        assert!(!format!("{quoted:?}").contains("s3cret"));
        let plain = parse_config_yaml(CONFIG.as_bytes()).unwrap();
        assert_eq!(plain.oms_meta_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(plain.nginx_server_port, Some(8089));
    }

    #[test]
    fn a_port_that_is_not_a_number_names_its_key() {
        let error = parse_config_yaml(b"nginx_server_port: \"http\"\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "config.yaml's `nginx_server_port` is not a port number"
        );
    }

    #[test]
    fn a_yaml_error_does_not_quote_the_file() {
        let error = parse_config_yaml(b"oms_meta_password: s3cret\ncm_nodes: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn a_long_name_extension_header_before_the_file_is_skipped() {
        let long_name = format!("{}/config.yaml", "d".repeat(150));
        let archive = tar_of(&long_name, CONFIG.as_bytes());
        assert_eq!(single_file_from_tar(&archive).unwrap(), CONFIG.as_bytes());
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let big = vec![b'#'; MAX_CONFIG_BYTES + 1];
        assert!(matches!(
            single_file_from_tar(&tar_of("config.yaml", &big)),
            Err(ConfigYamlError::TooLarge(_))
        ));
    }

    #[test]
    fn garbage_is_not_a_tar() {
        assert!(single_file_from_tar(b"not a tar").is_err());
        assert!(single_file_from_tar(&[0u8; 1024]).is_err());
    }
}
