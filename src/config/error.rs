//! What a config that cannot be used says: [`ConfigError`], and [`Site`], the one way every
//! stage turns a span of the config text into `file:line:column: field: message`.
//!
//! Owns: the wording of a message's place (path, 1-based line and column, dotted field).
//! Must not: decide what is wrong with a value; the stages that find a problem word it.

use std::ops::Range;

/// A configuration that cannot be used, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {}", io_reason(error))]
    Read { path: String, error: std::io::Error },
    #[error("{}", render_invalid(path, *location, field, message))]
    Invalid {
        path: String,
        /// 1-based line and column, where the problem has a place in the file.
        location: Option<(usize, usize)>,
        /// The dotted field path, e.g. `registry[0].region`; empty at top level.
        field: String,
        message: String,
    },
}

/// Config errors quote the OS's reason as it words it (`No such file or directory`).
use crate::reason::io_reason;

fn render_invalid(
    path: &str,
    location: Option<(usize, usize)>,
    field: &str,
    message: &str,
) -> String {
    let place = match location {
        Some((line, column)) => format!("{path}:{line}:{column}"),
        None => path.to_owned(),
    };
    if field.is_empty() {
        format!("{place}: {message}")
    } else {
        format!("{place}: {field}: {message}")
    }
}

/// Where a message points: the config text and the name it is known by.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub text: &'a str,
    pub path: &'a str,
}

impl Site<'_> {
    /// A message about `field`, placed at `span` of the text. A span of `0..0` is serde's
    /// default for a value that was not written, so it has no place in the file.
    pub fn error(&self, span: Option<Range<usize>>, field: &str, message: String) -> ConfigError {
        let location = span
            .filter(|span| !(span.start == 0 && span.end == 0))
            .map(|span| line_and_column(self.text, span.start));
        ConfigError::Invalid {
            path: self.path.to_owned(),
            location,
            field: field.to_owned(),
            message,
        }
    }

    /// The same, for a value that has a span (the common case).
    pub fn at(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        self.error(Some(span), field, message)
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 9), (2, 4));
    }
}
