//! config.yaml as read from a container: the tar stream Docker's archive API returns, reduced
//! to the keys the engine needs and a sha256 of the whole file. The text itself (which holds
//! `oms_meta_password`) is dropped as soon as it is parsed, and never logged.

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

const TAR_BLOCK: usize = 512;

/// The content of the first regular file in a tar archive (Docker's archive API answers with a
/// tar of the one path asked for). Skips PAX and GNU extension headers.
pub fn single_file_from_tar(archive: &[u8]) -> Result<&[u8], ConfigYamlError> {
    let mut offset = 0;
    while offset + TAR_BLOCK <= archive.len() {
        let header = &archive[offset..offset + TAR_BLOCK];
        if header.iter().all(|&byte| byte == 0) {
            break;
        }
        let size = octal(&header[124..136]).ok_or(ConfigYamlError::NotATar)?;
        let type_flag = header[156];
        let data_start = offset + TAR_BLOCK;
        let data_end = data_start
            .checked_add(size)
            .filter(|&end| end <= archive.len())
            .ok_or(ConfigYamlError::NotATar)?;
        if type_flag == b'0' || type_flag == 0 {
            return Ok(&archive[data_start..data_end]);
        }
        offset = data_start + size.div_ceil(TAR_BLOCK) * TAR_BLOCK;
    }
    Err(ConfigYamlError::NotATar)
}

fn octal(field: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(text, 8).ok()
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
        let mut header = [0u8; TAR_BLOCK];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{:011o}\0", content.len());
        header[124..136].copy_from_slice(size.as_bytes());
        header[156] = b'0';
        let mut archive = header.to_vec();
        archive.extend_from_slice(content);
        archive.resize(TAR_BLOCK + content.len().div_ceil(TAR_BLOCK) * TAR_BLOCK, 0);
        archive.extend_from_slice(&[0u8; 2 * TAR_BLOCK]);
        archive
    }

    const CONFIG: &str = "oms_meta_host: 127.0.0.1\noms_meta_password: s3cret\ndrc_rm_db: rm\n\
        drc_cm_db: cm\ndrc_cm_heartbeat_db: hb\ncm_region: hz\ncm_nodes:\n  - 127.0.0.2\n  - 127.0.0.3\n\
        nginx_server_port: 8089\n";

    #[test]
    fn reads_the_keys_from_the_tar_docker_returns() {
        let archive = tar_of("config.yaml", CONFIG.as_bytes());
        let file = single_file_from_tar(&archive).unwrap();
        assert_eq!(file, CONFIG.as_bytes());
        let config = parse_config_yaml(file).unwrap();
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
    fn garbage_is_not_a_tar() {
        assert!(single_file_from_tar(b"not a tar").is_err());
        assert!(single_file_from_tar(&[0u8; 1024]).is_err());
    }
}
