//! Splitting a line of a data file into cells, and quoting a cell for a CSV: the one place that
//! knows CSV's quoting rules (RFC 4180, as R's `write.csv` and pandas write them).

use std::borrow::Cow;
use std::path::Path;

use super::DataError;

/// How a file's lines split into cells: at every comma (a CSV), at every semicolon (the CSV of
/// spreadsheets in locales that write a decimal comma: Excel's "CSV (semicolon)", R's
/// `write.csv2`) or at runs of whitespace. Either way a cell may be quoted: inside double quotes
/// a separator is text and `""` is one `"`; spaces around a cell are not part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Separator {
    /// `a,b,c`; `a,,c` has an empty middle cell.
    Comma,
    /// `a;b;c`, where an unquoted number may have a decimal comma: `1,5;2` is 1.5 and 2.
    Semicolon,
    /// `a b  c` (spaces or tabs).
    Whitespace,
}

impl Separator {
    /// From the file's first non-blank line: semicolons when it holds one outside quotes,
    /// else commas when it holds one, else whitespace.
    pub(crate) fn of(text: &str) -> Separator {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        // Text outside quotes: every other piece between quote characters.
        let unquoted = || first.split('"').step_by(2);
        if unquoted().any(|piece| piece.contains(';')) {
            Separator::Semicolon
        } else if first.contains(',') {
            Separator::Comma
        } else {
            Separator::Whitespace
        }
    }

    /// The byte that ends a cell, for the separators that are one character (the one place
    /// that knows which).
    fn byte(self) -> Option<u8> {
        match self {
            Separator::Comma => Some(b','),
            Separator::Semicolon => Some(b';'),
            Separator::Whitespace => None,
        }
    }

    /// An unquoted cell as flock reads it: in a semicolon file a number written with a decimal
    /// comma (`-1,5e3`) is given its decimal point; every other cell is as written.
    fn unquoted(self, cell: &str) -> Cow<'_, str> {
        if self == Separator::Semicolon && cell.matches(',').count() == 1 {
            let pointed = cell.replacen(',', ".", 1);
            if pointed.parse::<f64>().is_ok() {
                return Cow::Owned(pointed);
            }
        }
        Cow::Borrowed(cell)
    }

    /// The cells of `line` (line `line_no` of `path`, named in errors); none for a blank line.
    ///
    /// # Errors
    /// [`DataError::UnclosedQuote`] for a quote that the line does not close (flock reads a
    /// cell from one line: a quoted line break is not supported).
    pub(crate) fn cells<'l>(
        self,
        line: &'l str,
        path: &Path,
        line_no: usize,
    ) -> Result<Vec<Cow<'l, str>>, DataError> {
        let mut cells = Vec::new();
        let mut rest = line.trim_start();
        if rest.is_empty() {
            return Ok(cells);
        }
        if let Some(separator) = self.byte()
            && !rest.as_bytes().contains(&b'"')
        {
            // No quotes (most lines of most files): one pass over the bytes. A comma or
            // semicolon byte is a whole character in UTF-8, so every cut is at a character
            // boundary.
            let mut start = 0;
            for (i, &b) in rest.as_bytes().iter().enumerate() {
                if b == separator {
                    cells.push(self.unquoted(rest[start..i].trim()));
                    start = i + 1;
                }
            }
            cells.push(self.unquoted(rest[start..].trim()));
            return Ok(cells);
        }
        loop {
            let (cell, after) = match rest.strip_prefix('"') {
                Some(quoted) => {
                    let (text, after) =
                        unquote(quoted).ok_or_else(|| DataError::UnclosedQuote {
                            path: path.to_owned(),
                            line: line_no,
                        })?;
                    // Text between the closing quote and the separator is kept, as spreadsheet
                    // programs do.
                    let (tail, after) = self.until_separator(after);
                    let tail = tail.trim();
                    if tail.is_empty() {
                        (text, after)
                    } else {
                        (Cow::Owned(format!("{text}{tail}")), after)
                    }
                }
                None => {
                    let (cell, after) = self.until_separator(rest);
                    (self.unquoted(cell.trim()), after)
                }
            };
            cells.push(cell);
            rest = match self.byte() {
                Some(separator) => match after.strip_prefix(char::from(separator)) {
                    Some(next) => next.trim_start(),
                    None => break,
                },
                None => {
                    let next = after.trim_start();
                    if next.is_empty() {
                        break;
                    }
                    next
                }
            };
        }
        Ok(cells)
    }

    /// `text` up to the next separator, and the rest from it.
    fn until_separator(self, text: &str) -> (&str, &str) {
        let end = match self.byte() {
            Some(separator) => text.find(char::from(separator)),
            None => text.find(char::is_whitespace),
        };
        text.split_at(end.unwrap_or(text.len()))
    }
}

/// A quoted cell's text (`""` read as `"`) and what follows its closing quote, from the text
/// after the opening quote; `None` when no quote closes it.
fn unquote(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut out: Option<String> = None;
    let mut start = 0;
    loop {
        let quote = start + text[start..].find('"')?;
        if text[quote + 1..].starts_with('"') {
            out.get_or_insert_with(String::new)
                .push_str(&text[start..=quote]);
            start = quote + 2;
        } else {
            let cell = match out {
                None => Cow::Borrowed(&text[..quote]),
                Some(mut s) => {
                    s.push_str(&text[start..quote]);
                    Cow::Owned(s)
                }
            };
            return Some((cell, &text[quote + 1..]));
        }
    }
}

/// `cell` as a CSV field: as it is, or in double quotes (its quotes doubled) when it holds a
/// comma, a semicolon, a quote, a line break or spaces at either end — so that flock's table
/// readers (and any RFC 4180 reader) read it back as it was, and never take a written file for
/// a semicolon-separated one.
///
/// ```
/// use flock_runner::table::csv_field;
/// assert_eq!(csv_field("dog"), "dog");
/// assert_eq!(csv_field("cat, big"), "\"cat, big\"");
/// assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
/// ```
pub fn csv_field(cell: &str) -> Cow<'_, str> {
    let needs_quotes = cell.contains([',', ';', '"', '\n', '\r']) || cell.trim() != cell;
    if needs_quotes {
        Cow::Owned(format!("\"{}\"", cell.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(sep: Separator, line: &str) -> Vec<String> {
        sep.cells(line, Path::new("t.csv"), 1)
            .unwrap()
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn commas_and_quotes() {
        let c = Separator::Comma;
        assert_eq!(cells(c, "a, b ,c"), ["a", "b", "c"]);
        assert_eq!(cells(c, "a,,c,"), ["a", "", "c", ""]);
        assert_eq!(cells(c, r#""","a","kind""#), ["", "a", "kind"]);
        assert_eq!(
            cells(c, r#""cat, big",1, "say ""hi""" "#),
            ["cat, big", "1", r#"say "hi""#]
        );
        assert_eq!(cells(c, r#""1"x,2"#), ["1x", "2"]);
        assert_eq!(cells(c, "   "), Vec::<String>::new());
        let err = Separator::Comma
            .cells(r#"1,"open"#, Path::new("t.csv"), 7)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv:7: a quoted cell is not closed on its line (a quote opens it, none closes it)"
        );
    }

    /// Semicolons split cells; an unquoted number's decimal comma is a decimal point, and any
    /// other cell — a quoted one, text, a number with two commas — is kept as written.
    #[test]
    fn semicolons_and_decimal_commas() {
        let s = Separator::Semicolon;
        assert_eq!(
            cells(s, "1,5; -2,25e1 ;3;;x,y"),
            ["1.5", "-2.25e1", "3", "", "x,y"]
        );
        assert_eq!(
            cells(s, r#""1,5";"a; b";1.234,5;7"#),
            ["1,5", "a; b", "1.234,5", "7"]
        );
        assert_eq!(cells(s, r#""q"x;2,0"#), ["qx", "2.0"]);
        assert_eq!(Separator::of("a;b;y\n1,5;2;3"), Separator::Semicolon);
        assert_eq!(Separator::of("1,5;2,5\n"), Separator::Semicolon);
        assert_eq!(Separator::of(r#""a;b",c"#), Separator::Comma);
        assert_eq!(Separator::of("a b\n1;2"), Separator::Whitespace);
    }

    #[test]
    fn whitespace_and_quotes() {
        let w = Separator::Whitespace;
        assert_eq!(cells(w, " 1\t2  3 "), ["1", "2", "3"]);
        assert_eq!(
            cells(w, r#""petal length" 2 "a""b""#),
            ["petal length", "2", r#"a"b"#]
        );
        assert_eq!(Separator::of("\n a b\n1,2"), Separator::Whitespace);
        assert_eq!(Separator::of("\na,b\n1 2"), Separator::Comma);
    }

    #[test]
    fn a_written_field_reads_back() {
        for cell in [
            "plain",
            "cat, big",
            r#"say "hi""#,
            " padded ",
            "",
            "a\"b,c",
            "big; round",
        ] {
            let line = format!("{},x", csv_field(cell));
            assert_eq!(Separator::of(&line), Separator::Comma, "{line}");
            assert_eq!(cells(Separator::Comma, &line), [cell, "x"], "{line}");
        }
    }
}
