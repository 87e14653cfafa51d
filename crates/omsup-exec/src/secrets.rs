//! Secrets read for a run: the meta database password, from the environment variable or the
//! file the plan names. Never printed: `Debug` and `Display` show `***`, and no error message
//! carries the value.

use std::fmt;
use std::path::PathBuf;

use omsup_model::PlanFile;

/// The meta database password. Only [`MetaPassword::expose`] reveals it, to the SQL driver.
#[derive(Clone, PartialEq, Eq)]
pub struct MetaPassword(String);

impl MetaPassword {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The password itself; hand it to a driver, never to a log or a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MetaPassword {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

impl fmt::Display for MetaPassword {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// Every secret a run needs.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub meta_password: MetaPassword,
}

/// Why the password could not be read. Names where it was looked for, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the plan names no meta database password source")]
    NoSource,
    #[error("the plan holds a literal meta database password (`[meta_db] password`)")]
    Literal,
    #[error("the environment variable `{name}` (`[meta_db] password_env`) is not set")]
    EnvMissing { name: String },
    #[error("cannot read the password file `{path}` (`[meta_db] password_file`)")]
    FileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the password file `{path}` (`[meta_db] password_file`) is empty")]
    FileEmpty { path: PathBuf },
}

impl SecretError {
    pub fn hint(&self) -> &'static str {
        match self {
            Self::NoSource | Self::Literal => {
                "set `[meta_db] password_env` or `[meta_db] password_file`; run `omsup lint` on the plan file"
            }
            Self::EnvMissing { .. } => "export the variable in the shell that runs omsup",
            Self::FileUnreadable { .. } | Self::FileEmpty { .. } => {
                "the first line of the file is the password; check the path and its permissions"
            }
        }
    }
}

impl Secrets {
    /// Reads the password from `password_env` (the variable) or `password_file` (its first
    /// line, trimmed). A literal `password` is refused.
    pub fn from_plan(plan: &PlanFile) -> Result<Self, SecretError> {
        let meta = &plan.meta_db;
        if meta.password.is_some() {
            return Err(SecretError::Literal);
        }
        if let Some(name) = &meta.password_env {
            return match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Self {
                    meta_password: MetaPassword::new(value),
                }),
                _ => Err(SecretError::EnvMissing { name: name.clone() }),
            };
        }
        if let Some(path) = &meta.password_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| SecretError::FileUnreadable {
                    path: path.clone(),
                    source,
                })?;
            let first = text.lines().next().unwrap_or("").trim();
            if first.is_empty() {
                return Err(SecretError::FileEmpty { path: path.clone() });
            }
            return Ok(Self {
                meta_password: MetaPassword::new(first),
            });
        }
        Err(SecretError::NoSource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shows_in_debug_or_display() {
        let secrets = Secrets {
            meta_password: MetaPassword::new("hunter2"),
        };
        assert_eq!(format!("{}", secrets.meta_password), "***");
        assert!(!format!("{secrets:?}").contains("hunter2"));
        assert_eq!(secrets.meta_password.expose(), "hunter2");
    }
}
