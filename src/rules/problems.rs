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

/// Where an entry of a rule file is, and its text as written (before `${NAME}` expansion, so
/// secrets are not in it), dedented so that it reads as a YAML mapping of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySource {
    /// `file:line` of its first key.
    pub place: String,
    /// Its YAML text.
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

    /// The text of a list entry (`- id: ...`) as written in its file; `None` when its span
    /// is unknown. The entry runs from its first key to where the next one starts; trailing
    /// blank and comment lines (which belong to what follows) are left out.
    /// `lines` are [`Problems::file_lines`], split once for all entries.
    pub fn entry_source(&self, lines: &[Vec<&str>], node: &Node) -> Option<EntrySource> {
        let (start, end) = (node.span().start()?, node.span().end()?);
        let file = self.files.get(start.source())?;
        let file_lines = lines.get(start.source())?;
        let at_start = file_lines
            .get(start.line().saturating_sub(1))
            .and_then(|l| l.chars().nth(start.column().saturating_sub(1)));
        // A flow mapping's span runs from its `{` to its `}`; a block mapping's starts after
        // its first key (the parser only knows it is a mapping at the `:`) and ends where the
        // next token starts.
        let (start, end_col) = if at_start == Some('{') {
            (start, end.column())
        } else {
            let first_key = node.as_mapping()?.keys().next()?.span().start()?;
            (first_key, end.column().saturating_sub(1))
        };
        let indent = start.column().saturating_sub(1);
        let mut lines: Vec<String> = Vec::new();
        let first = start.line().max(1);
        for (n, line) in (first..).zip(file_lines.iter().skip(first - 1)) {
            if n > end.line() {
                break;
            }
            let mut line: String = if n == end.line() {
                line.chars().take(end_col).collect()
            } else {
                line.to_string()
            };
            if n == start.line() {
                line = line.chars().skip(indent).collect();
            } else {
                let spaces = line.chars().take(indent).take_while(|c| *c == ' ').count();
                line = line.chars().skip(spaces).collect();
            }
            lines.push(line);
        }
        while lines
            .last()
            .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            lines.pop();
        }
        let mut text = lines.join("\n");
        text.push('\n');
        Some(EntrySource {
            place: format!("{}:{}", file.name, start.line()),
            text,
        })
    }

    /// The lines of every file, by source number.
    pub fn file_lines(&self) -> Vec<Vec<&str>> {
        self.files
            .iter()
            .map(|f| f.text.lines().collect())
            .collect()
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
