//! Findings about a plan file, as data: what is wrong, where (a [`FieldPath`] and, once a
//! source is attached, a byte span), how bad, and what to do about it.

use std::fmt;
use std::ops::Range;

/// How bad a finding is: errors block `plan` and fail `lint`; warnings do neither.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One step of a path into the plan file: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Where in the plan file, like `region[1].node[0].ip`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn key(mut self, key: &str) -> Self {
        self.0.push(PathSegment::Key(key.to_owned()));
        self
    }

    pub fn index(mut self, index: usize) -> Self {
        self.0.push(PathSegment::Index(index));
        self
    }

    /// From a JSON pointer (`/region/1/node/0/ip`); numeric segments are indices.
    pub fn from_json_pointer(pointer: &str) -> Self {
        let segments = pointer
            .split('/')
            .skip(1)
            .filter(|s| !s.is_empty())
            .map(|raw| {
                let key = raw.replace("~1", "/").replace("~0", "~");
                match key.parse::<usize>() {
                    Ok(index) => PathSegment::Index(index),
                    Err(_) => PathSegment::Key(key),
                }
            })
            .collect();
        Self(segments)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if position == 0 => f.write_str(key)?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Stable and documented, e.g. `duplicate-node-ip`; JSON and GitHub output carry it.
    pub code: &'static str,
    pub message: String,
    pub path: FieldPath,
    /// Point at the key rather than its value (unknown keys).
    pub at_key: bool,
    /// Byte range in the source, once known.
    pub span: Option<Range<usize>>,
    pub hint: Option<String>,
}

impl Finding {
    pub fn error(code: &'static str, path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            path,
            at_key: false,
            span: None,
            hint: None,
        }
    }

    pub fn warning(code: &'static str, path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, path, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }

    pub fn with_span(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_toml_and_come_from_json_pointers() {
        let path = FieldPath::from_json_pointer("/region/1/node/0/ip");
        assert_eq!(path.to_string(), "region[1].node[0].ip");
        assert_eq!(
            path,
            FieldPath::root()
                .key("region")
                .index(1)
                .key("node")
                .index(0)
                .key("ip")
        );
        assert_eq!(FieldPath::from_json_pointer("").to_string(), "");
    }
}
