//! Lint one plan file's text: every finding, each with a byte span.
//!
//! Three passes, each reporting everything it finds: TOML syntax (with error recovery), the
//! JSON Schema generated from [`PlanFile`] (types, missing keys, unknown keys with the nearest
//! valid one, formats), then the semantic checks of [`crate::validate`]. A finding knows its
//! [`FieldPath`]; one function turns a path into a span of the source, for every pass.

use std::ops::Range;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::findings::{FieldPath, Finding, PathSegment};
use crate::plan::PlanFile;

/// The outcome of linting one source.
#[derive(Debug)]
pub struct LintedSource {
    /// The plan, when the source parsed and matched the schema.
    pub plan: Option<PlanFile>,
    /// Every finding, with its span, in source order.
    pub findings: Vec<Finding>,
}

static SCHEMA: LazyLock<Value> = LazyLock::new(PlanFile::json_schema);
static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&SCHEMA)
        .expect("the generated schema is a valid JSON Schema (tested)")
});

/// Lints `text` (a whole plan file).
pub fn lint_source(text: &str) -> LintedSource {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let findings = syntax_errors
            .iter()
            .map(|error| {
                let span = error.span().unwrap_or(0..0);
                Finding::error(
                    "syntax",
                    FieldPath::root(),
                    error.message().trim_end().to_owned(),
                )
                .with_span(span)
            })
            .collect();
        return LintedSource {
            plan: None,
            findings: sorted(findings),
        };
    }
    let locate = |finding: Finding| -> Finding {
        if finding.span.is_some() {
            return finding;
        }
        let span = span_of(text, &document, &finding.path, finding.at_key);
        finding.with_span(span)
    };

    let instance: Value = match toml::from_str(text) {
        Ok(instance) => instance,
        Err(error) => {
            let finding = Finding::error("syntax", FieldPath::root(), error.message().to_owned())
                .with_span(error.span().unwrap_or(0..0));
            return LintedSource {
                plan: None,
                findings: vec![finding],
            };
        }
    };
    let schema_findings: Vec<Finding> = VALIDATOR
        .iter_errors(&instance)
        .flat_map(|error| schema_finding(&error))
        .collect();
    // Serde ignores unknown keys, so a plan with only unknown-key mistakes still deserializes
    // and its semantic findings are reported alongside.
    match toml::from_str::<PlanFile>(text) {
        Ok(plan) => {
            // One finding per place: the schema's, when it already objected to that value.
            let semantic: Vec<Finding> = crate::validate::validate(&plan)
                .into_iter()
                .filter(|finding| !schema_findings.iter().any(|s| s.path == finding.path))
                .collect();
            let plan = schema_findings.is_empty().then_some(plan);
            let findings = schema_findings
                .into_iter()
                .chain(semantic)
                .map(locate)
                .collect();
            LintedSource {
                plan,
                findings: sorted(findings),
            }
        }
        Err(_) if !schema_findings.is_empty() => LintedSource {
            plan: None,
            findings: sorted(schema_findings.into_iter().map(locate).collect()),
        },
        Err(error) => {
            let finding = Finding::error(
                "invalid-value",
                FieldPath::root(),
                error.message().to_owned(),
            )
            .with_span(error.span().unwrap_or(0..0));
            LintedSource {
                plan: None,
                findings: vec![finding],
            }
        }
    }
}

fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by_key(|f| (f.span.as_ref().map_or(0, |s| s.start), f.code));
    findings
}

/// Turns one schema violation into findings (one per unknown key).
fn schema_finding(error: &jsonschema::ValidationError<'_>) -> Vec<Finding> {
    let path = FieldPath::from_json_pointer(error.instance_path().as_str());
    let table = describe_table(&path);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .filter(|key| !(key.as_str() == "password" && path == FieldPath::root().key("meta_db")))
            .map(|key| {
                let known = schema_properties(&path);
                let mut finding = Finding::error(
                    "unknown-key",
                    path.clone().key(key),
                    format!("unknown key `{key}` in {table}"),
                )
                .at_key();
                if let Some(nearest) = nearest(key, &known) {
                    finding = finding.with_hint(format!("did you mean `{nearest}`?"));
                } else if !known.is_empty() {
                    finding = finding.with_hint(format!(
                        "{table} takes: {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                finding
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            let message =
                if path.is_root() && matches!(key, "deployment" | "image" | "meta_db" | "backup") {
                    format!("missing table `[{key}]`")
                } else if path.is_root() && key == "region" {
                    "missing `[[region]]`: a plan needs at least one region".to_owned()
                } else {
                    format!("missing key `{key}` in {table}")
                };
            vec![Finding::error("missing-key", path, message)]
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(single) => article(&single.to_string()),
                TypeKind::Multiple(_) => "another type".to_owned(),
            };
            let found = article(json_type(error.instance()));
            let what = path.to_string();
            vec![Finding::error(
                "wrong-type",
                path,
                format!("`{what}` must be {expected}, found {found}"),
            )]
        }
        ValidationErrorKind::Enum { options } => {
            let choices: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| format!("`{}`", o.as_str().unwrap_or_default()))
                .collect();
            let what = path.to_string();
            vec![Finding::error(
                "invalid-value",
                path,
                format!("`{what}` must be one of {}", choices.join(", ")),
            )]
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. }
            if !schema_choices(&path).is_empty() =>
        {
            let choices: Vec<String> = schema_choices(&path)
                .iter()
                .map(|c| format!("`{c}`"))
                .collect();
            let what = path.to_string();
            vec![Finding::error(
                "invalid-value",
                path,
                format!("`{what}` must be one of {}", choices.join(", ")),
            )]
        }
        ValidationErrorKind::MinItems { .. } if path == FieldPath::root().key("region") => {
            vec![Finding::error(
                "missing-key",
                path,
                "a plan needs at least one `[[region]]`",
            )]
        }
        ValidationErrorKind::MinItems { .. } => {
            let what = path.to_string();
            vec![Finding::error(
                "missing-key",
                path,
                format!("`{what}` needs at least one entry"),
            )]
        }
        ValidationErrorKind::Pattern { .. } => {
            let what = path.to_string();
            let value = error.instance().as_str().unwrap_or_default().to_owned();
            let hint = pattern_hint(&path);
            let mut finding = Finding::error(
                "invalid-value",
                path,
                format!("`{value}` is not a valid `{what}`"),
            );
            if let Some(hint) = hint {
                finding = finding.with_hint(hint);
            }
            vec![finding]
        }
        _ => {
            let what = path.to_string();
            vec![Finding::error(
                "invalid-value",
                path,
                format!("`{what}`: {error}"),
            )]
        }
    }
}

fn pattern_hint(path: &FieldPath) -> Option<&'static str> {
    match path.0.last() {
        Some(PathSegment::Key(key)) if key.ends_with("_version") => {
            Some("write versions like `4.2.9-CE`")
        }
        Some(PathSegment::Key(key))
            if matches!(key.as_str(), "readiness" | "init" | "stop" | "online") =>
        {
            Some("write durations like `90s`, `15m` or `2h`")
        }
        Some(PathSegment::Key(key)) if key == "name" => {
            Some("use letters, digits, `.`, `_` and `-`, starting with a letter or digit")
        }
        Some(PathSegment::Key(key)) if key == "container" => {
            Some("Docker container names use letters, digits, `.`, `_` and `-`")
        }
        _ => None,
    }
}

fn article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "table",
    }
}

/// `[meta_db]`, `[[region]]` number 2, or "the plan file", for messages.
fn describe_table(path: &FieldPath) -> String {
    if path.is_root() {
        "the plan file".to_owned()
    } else {
        format!("`{path}`")
    }
}

/// The nearest known key, when it is near enough to be a typo.
fn nearest(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(key, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 3.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.clone())
}

/// The keys the schema allows in the table at `path`.
pub fn schema_properties(path: &FieldPath) -> Vec<String> {
    schema_at(path)
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The constant values the schema allows at `path` (an enum written as `oneOf` constants).
fn schema_choices(path: &FieldPath) -> Vec<String> {
    let Some(node) = schema_at(path) else {
        return Vec::new();
    };
    let branches = node
        .get("oneOf")
        .or_else(|| node.get("enum"))
        .and_then(Value::as_array);
    branches
        .into_iter()
        .flatten()
        .filter_map(|branch| {
            branch
                .get("const")
                .or(Some(branch))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// The schema node describing the value at `path`, `$ref`s resolved.
fn schema_at(path: &FieldPath) -> Option<&'static Value> {
    let mut node = resolve(&SCHEMA);
    for segment in &path.0 {
        node = match segment {
            PathSegment::Key(key) => resolve(node.get("properties")?.get(key)?),
            PathSegment::Index(_) => resolve(node.get("items")?),
        };
    }
    Some(node)
}

/// Follows `$ref` and the `anyOf: [X, null]` schemars writes for optional fields.
fn resolve(mut node: &'static Value) -> &'static Value {
    loop {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/$defs/");
            match SCHEMA.get("$defs").and_then(|defs| defs.get(name)) {
                Some(next) => node = next,
                None => return node,
            }
        } else if let Some(branch) =
            node.get("anyOf")
                .and_then(Value::as_array)
                .and_then(|branches| {
                    branches
                        .iter()
                        .find(|b| b.get("type") != Some(&Value::from("null")))
                })
        {
            node = branch;
        } else {
            return node;
        }
    }
}

/// The span of the value (or key) at `path`; the nearest enclosing item when it is absent. A
/// table's span is cut to its first line, so a caret marks its header, not the whole table.
fn span_of(
    text: &str,
    document: &Spanned<DeTable<'_>>,
    path: &FieldPath,
    at_key: bool,
) -> Range<usize> {
    let mut span = 0..0;
    let mut table = Some(document.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    let last = path.0.len().saturating_sub(1);
    for (position, segment) in path.0.iter().enumerate() {
        let value = match segment {
            PathSegment::Key(key) => {
                let Some((found_key, value)) = table
                    .and_then(|t| t.iter().find(|(k, _)| k.get_ref().as_ref() == key.as_str()))
                else {
                    break;
                };
                if position == last && at_key {
                    span = found_key.span();
                    break;
                }
                value
            }
            PathSegment::Index(index) => match array.and_then(|items| items.get(*index)) {
                Some(value) => value,
                None => break,
            },
        };
        span = value.span();
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(inner) => table = Some(inner),
            DeValue::Array(items) => array = Some(items),
            _ => {}
        }
    }
    first_line(text, span)
}

fn first_line(text: &str, span: Range<usize>) -> Range<usize> {
    let end = span.end.min(text.len());
    let start = span.start.min(end);
    match text[start..end].find('\n') {
        Some(newline) => start..start + newline,
        None => start..end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_lints_clean() {
        let linted = lint_source(include_str!("../../../plans/two-nodes-ha.toml"));
        let errors: Vec<_> = linted
            .findings
            .iter()
            .filter(|f| f.severity == crate::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(linted.plan.is_some());
    }

    #[test]
    fn unknown_keys_point_at_the_key_and_suggest_the_nearest() {
        let text = include_str!("../../../plans/two-nodes-ha.toml")
            .replace("password_env =", "pasword_env =");
        let linted = lint_source(&text);
        let finding = linted
            .findings
            .iter()
            .find(|f| f.code == "unknown-key")
            .expect("an unknown-key finding");
        assert_eq!(&text[finding.span.clone().unwrap()], "pasword_env");
        assert_eq!(
            finding.hint.as_deref(),
            Some("did you mean `password_env`?")
        );
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let linted = lint_source("[deployment\nname = \"x\"\n[image]\ntag = \n");
        assert!(linted.findings.len() >= 2, "{:#?}", linted.findings);
        assert!(linted.findings.iter().all(|f| f.code == "syntax"));
    }
}
