//! Problems found in a lab file, with where they are: byte spans turned into `file:line:col`
//! and rendered with the offending line and a caret, the way compilers do.
//!
//! Loading collects every problem before giving up, so a user fixes a file in one pass.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a lab file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Byte range in the source; empty ranges point between characters.
    pub span: Range<usize>,
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A lab file's text and the name to show for it.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub text: String,
}

/// A diagnostic resolved to a position, for `--json` and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Source {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    pub fn locate(&self, d: &Diagnostic) -> Located {
        let (line, column) = self.line_col(d.span.start);
        Located {
            severity: d.severity,
            file: self.path.clone(),
            line,
            column,
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }

    /// `file:line:col: error: message`, the source line with a caret under the span, and the help.
    pub fn render(&self, d: &Diagnostic) -> String {
        let (line, col) = self.line_col(d.span.start);
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{}:{line}:{col}: {kind}: {}\n", self.path, d.message);
        if let Some(text) = self.text.lines().nth(line - 1) {
            let gutter = line.to_string().len();
            let start = floor_char_boundary(&self.text, d.span.start.min(self.text.len()));
            let end = floor_char_boundary(&self.text, d.span.end.min(self.text.len())).max(start);
            // Underline only the part of the span on its first line.
            let on_line = self.text[start..end].split('\n').next().unwrap_or("");
            let width = on_line.chars().count().max(1);
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{line} | {text}");
            let _ = writeln!(
                out,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(col - 1),
                "^".repeat(width)
            );
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let s = Source::new("x.toml", "a = 1\nbb = \"é\"\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(11), (2, 6));
        // Past the é (2 bytes) counts one column.
        assert_eq!(s.line_col(13), (2, 7));
    }

    #[test]
    fn render_points_at_the_span() {
        let s = Source::new("x.toml", "name = \"a\"\nadress = 1\n");
        let d =
            Diagnostic::error(11..17, "unknown key `adress`").with_help("did you mean `address`?");
        let r = s.render(&d);
        assert!(
            r.starts_with("x.toml:2:1: error: unknown key `adress`\n"),
            "{r}"
        );
        assert!(r.contains("2 | adress = 1\n  | ^^^^^^\n"), "{r}");
        assert!(r.contains("= help: did you mean `address`?"), "{r}");
    }

    #[test]
    fn suggestions() {
        let keys = ["addresses", "lan", "sysctls", "docker"];
        assert_eq!(did_you_mean("adresses", keys), Some("addresses"));
        assert_eq!(did_you_mean("lam", keys), Some("lan"));
        assert_eq!(did_you_mean("zzzzzz", keys), None);
    }
}
