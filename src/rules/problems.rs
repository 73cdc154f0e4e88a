//! Turning YAML spans and JMESPath error offsets into `file:line:col` problems.

use marked_yaml::{Marker, Node, Span};

use super::Problem;
use crate::render::ExprError;

/// One loaded rule file: its display name and text, for positions.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// As shown in problems (`rules/routes.yaml`).
    pub name: String,
    /// The file's text.
    pub text: String,
}

/// Collects problems across every file of a load.
#[derive(Debug, Default)]
pub struct Problems {
    /// Files, indexed by the `source` number of their markers.
    pub files: Vec<SourceFile>,
    /// What was found so far.
    pub list: Vec<Problem>,
    /// Scalars whose `${NAME}` could not be expanded: problems about their value would only
    /// repeat the missing variable, so they are not reported.
    pub unexpanded: Vec<(usize, usize, usize)>,
    /// Found, but not reasons to reject the set (unset variables under `hookline check`).
    pub warnings: Vec<Problem>,
    /// Scalars checked with a placeholder for these unset variables.
    pub placeholders: Vec<((usize, usize, usize), Vec<String>)>,
}

impl Problems {
    /// A problem at a marker.
    pub fn at_marker(&mut self, m: Option<&Marker>, message: impl Into<String>) {
        let (file, line, col) = match m {
            Some(m) => (self.name(m.source()), m.line(), m.column()),
            None => (String::from("?"), 0, 0),
        };
        self.list.push(Problem {
            file,
            line,
            col,
            message: message.into(),
        });
    }

    /// A problem at the start of a span.
    pub fn at(&mut self, span: &Span, message: impl Into<String>) {
        self.at_marker(span.start(), message)
    }

    /// A warning at the start of a span.
    pub fn warn_at(&mut self, span: &Span, message: impl Into<String>) {
        self.at(span, message);
        let warning = self.list.pop().expect("just pushed");
        self.warnings.push(warning);
    }

    /// Marks a scalar as checked with placeholders for `names`.
    pub fn mark_placeholder(&mut self, span: &Span, names: Vec<String>) {
        if let Some(m) = span.start() {
            self.placeholders
                .push(((m.source(), m.line(), m.column()), names));
        }
    }

    /// For a problem about the value at `span`: a note naming the unset variables whose
    /// placeholders it was checked with, if any.
    pub fn placeholder_note(&self, span: &Span) -> Option<String> {
        let m = span.start()?;
        let at = (m.source(), m.line(), m.column());
        let (_, names) = self.placeholders.iter().find(|(p, _)| *p == at)?;
        Some(format!(
            " (checked with a placeholder for the unset {}; set it to check this value)",
            names.join(", ")
        ))
    }

    /// Marks a scalar as not expanded (its own problem is already reported).
    pub fn mark_unexpanded(&mut self, span: &Span) {
        if let Some(m) = span.start() {
            self.unexpanded.push((m.source(), m.line(), m.column()));
        }
    }

    /// Whether the node at `span` had a variable that could not be expanded.
    pub fn is_unexpanded(&self, span: &Span) -> bool {
        span.start().is_some_and(|m| {
            self.unexpanded
                .contains(&(m.source(), m.line(), m.column()))
        })
    }

    /// A problem at the start of a node.
    pub fn at_node(&mut self, node: &Node, message: impl Into<String>) {
        self.at(node.span(), message)
    }

    /// A problem in a file, without a position.
    pub fn in_file(&mut self, file: &str, message: impl Into<String>) {
        self.list.push(Problem {
            file: file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
        });
    }

    /// A JMESPath error inside the scalar starting at `span`, pointed at the character the
    /// error names. `what` says which expression (`route "x" match.expr`).
    pub fn in_expr(&mut self, span: &Span, what: &str, err: &ExprError) {
        let message = format!("invalid JMESPath in {what}: {}", err.reason);
        let Some(start) = span.start() else {
            return self.at(span, message);
        };
        let (line, col) = self.expr_position(start, err.line, err.column);
        self.list.push(Problem {
            file: self.name(start.source()),
            line,
            col,
            message,
        });
    }

    /// `file:line:col` of a marker, for "also defined at" messages.
    pub fn place(&self, span: &Span) -> String {
        match span.start() {
            Some(m) => format!("{}:{}:{}", self.name(m.source()), m.line(), m.column()),
            None => "?".into(),
        }
    }

    fn name(&self, source: usize) -> String {
        self.files
            .get(source)
            .map_or_else(|| "?".into(), |f| f.name.clone())
    }

    /// Maps a 0-based line/column inside a scalar's value to the file. The marker of a plain
    /// or block scalar (`|`, `>`) is its first content character, and a literal block keeps
    /// its lines, so line and column simply add; a quoted scalar's marker is the quote.
    /// Folded scalars join lines, so positions past their first line are approximate, and
    /// escapes in double-quoted scalars are not accounted for.
    fn expr_position(&self, start: &Marker, line: usize, column: usize) -> (usize, usize) {
        let text = self
            .files
            .get(start.source())
            .map_or("", |f| f.text.as_str());
        let first = text
            .lines()
            .nth(start.line().saturating_sub(1))
            .unwrap_or("");
        let quoted = matches!(
            first.chars().nth(start.column().saturating_sub(1)),
            Some('"') | Some('\'')
        );
        if quoted && line == 0 {
            (start.line(), start.column() + 1 + column)
        } else {
            (start.line() + line, start.column() + column)
        }
    }
}
