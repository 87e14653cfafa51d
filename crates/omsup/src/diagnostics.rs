//! Rendering findings in user files: snippets with a caret under the span (annotate-snippets),
//! GitHub workflow commands, and line/column arithmetic shared by every format.

use std::ops::Range;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
use omsup_model::{Finding, Severity};

use crate::style::Style;

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The span made safe to slice and to show: inside the source, never empty when it can grow.
fn visible_span(source: &str, span: &Range<usize>) -> Range<usize> {
    let start = span.start.min(source.len());
    let end = span.end.clamp(start, source.len());
    if start < end || start == source.len() || source[start..].starts_with(['\n', '\r']) {
        return start..end;
    }
    let width = source[start..].chars().next().map_or(0, char::len_utf8);
    start..start + width
}

/// `file:line:col` + message + snippet + caret + hint, the way rustc and cargo show them.
pub fn render_human(path: &str, source: &str, finding: &Finding, style: &Style) -> String {
    let span = visible_span(source, finding.span.as_ref().unwrap_or(&(0..0)));
    let level = match finding.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut group = level
        .primary_title(finding.message.as_str())
        .id(finding.code)
        .element(
            Snippet::source(source)
                .path(path)
                .annotation(AnnotationKind::Primary.span(span)),
        );
    if let Some(hint) = &finding.hint {
        group = group.element(Level::HELP.message(hint.as_str()));
    }
    let renderer = if style.color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    format!("{}\n\n", renderer.render(&[group]))
}

/// `::error file=F,line=L,col=C,endLine=..,endColumn=..,title=omsup lint (code)::message`
pub fn render_github(path: &str, source: &str, finding: &Finding) -> String {
    let span = visible_span(source, finding.span.as_ref().unwrap_or(&(0..0)));
    let (line, col) = line_column(source, span.start);
    let (end_line, end_col) = line_column(source, span.end);
    let mut message = finding.message.clone();
    if let Some(hint) = &finding.hint {
        message.push_str(&format!("\nhint: {hint}"));
    }
    format!(
        "::{} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}\n",
        finding.severity.as_str(),
        escape_property(path),
        escape_property(&format!("omsup lint ({})", finding.code)),
        escape_data(&message)
    )
}

/// GitHub's escaping of a workflow command's message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping of a workflow command's property value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let source = "a = 1\nnamé = \"x\"\n";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 6), (2, 1));
        let quote = source.find('"').unwrap();
        assert_eq!(line_column(source, quote), (2, 8));
    }

    #[test]
    fn github_output_escapes_what_github_documents() {
        let finding = Finding::error("code", omsup_model::FieldPath::root(), "50% wrong\nnext")
            .with_span(0..1);
        let line = render_github("dir,a:b.toml", "x", &finding);
        assert_eq!(
            line,
            "::error file=dir%2Ca%3Ab.toml,line=1,col=1,endLine=1,endColumn=2,title=omsup lint (code)::50%25 wrong%0Anext\n"
        );
    }
}
