//! config.yaml as read from a container: the tar stream Docker's archive API returns, reduced
//! to the keys the engine needs and a sha256 of the whole file. The text itself (which holds
//! `oms_meta_password`) is dropped as soon as it is parsed, and never logged.

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

/// Only the keys the engine needs; serde ignores the rest (the password among them).
#[derive(Deserialize)]
struct ConfigKeys {
    #[serde(default)]
    cm_nodes: Vec<String>,
    #[serde(default)]
    cm_region: Option<String>,
    #[serde(default)]
    drc_rm_db: Option<String>,
    #[serde(default)]
    drc_cm_db: Option<String>,
    #[serde(default)]
    drc_cm_heartbeat_db: Option<String>,
    #[serde(default)]
    nginx_server_port: Option<u16>,
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
    Ok(ObservedOmsConfig {
        cm_nodes: keys.cm_nodes,
        cm_region: keys.cm_region,
        drc_rm_db: keys.drc_rm_db,
        drc_cm_db: keys.drc_cm_db,
        drc_cm_heartbeat_db: keys.drc_cm_heartbeat_db,
        nginx_server_port: keys.nginx_server_port,
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
