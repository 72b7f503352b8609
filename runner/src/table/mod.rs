//! Reading numeric tables — whitespace-separated or CSV (cells may be quoted), with or without a
//! header — with errors that name the file, line and column of every problem.

mod cells;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use cells::Separator;
pub use cells::csv_field;

/// Why a dataset could not be used; every variant names the file and, for data, the line and
/// column.
#[derive(Debug)]
pub enum DataError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A cell is not a number.
    NotANumber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name, when the file has a header.
        name: Option<String>,
        /// The text found.
        text: String,
    },
    /// A cell is NaN or infinite.
    NonFinite {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name, when the file has a header.
        name: Option<String>,
    },
    /// A row has another number of columns than the header (or, without one, the first row).
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Columns found.
        found: usize,
        /// Columns of the header or the first row.
        expected: usize,
        /// Whether `expected` is the header's count (else the first data row's).
        against_header: bool,
    },
    /// The file holds no rows.
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A quoted cell that its line does not close.
    UnclosedQuote {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// An index (row or column) out of range.
    Index {
        /// The file it came from.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The index.
        index: usize,
        /// The number of rows or columns it indexes.
        limit: usize,
    },
    /// A column asked for is not in the file.
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The columns there are.
        available: String,
    },
    /// A column asked for by name in a file without a header line.
    NoHeader {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        column: String,
    },
    /// A feature column asked for that is the target, or that was asked for already.
    FeatureClash {
        /// The file.
        path: PathBuf,
        /// The column as asked for (a name or an index).
        column: String,
        /// Whether it is the target (else a repeat).
        is_target: bool,
    },
    /// A row with an empty class label.
    EmptyLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// A label in a file of rows to score that the model was never trained on.
    UnknownLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The label.
        label: String,
        /// The classes the model knows.
        known: String,
    },
    /// Every training row has the same label.
    SingleClass {
        /// The file.
        path: PathBuf,
        /// The one label.
        label: String,
    },
    /// Columns a model needs are not in the file's header.
    MissingFeatures {
        /// The file.
        path: PathBuf,
        /// The model's feature columns that are missing.
        missing: Vec<String>,
        /// The columns there are.
        available: String,
    },
    /// Fewer rows than the task needs.
    TooFewRows {
        /// The file.
        path: PathBuf,
        /// Rows there are.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// The target is constant on the training rows (nothing to learn, no scale).
    ConstantTarget {
        /// The split.
        split: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::NotANumber {
                path,
                line,
                column,
                name,
                text,
            } => write!(
                f,
                "{}:{line}: column {column}{} is {text:?}, not a number",
                path.display(),
                quoted(name)
            ),
            DataError::NonFinite {
                path,
                line,
                column,
                name,
            } => write!(
                f,
                "{}:{line}: column {column}{} is not finite (NaN or infinite)",
                path.display(),
                quoted(name)
            ),
            DataError::Ragged {
                path,
                line,
                found,
                expected,
                against_header,
            } => write!(
                f,
                "{}:{line}: {found} columns, but the {} has {expected}",
                path.display(),
                if *against_header {
                    "header"
                } else {
                    "first row"
                }
            ),
            DataError::Empty { path } => write!(f, "{}: no data rows", path.display()),
            DataError::UnclosedQuote { path, line } => write!(
                f,
                "{}:{line}: a quoted cell is not closed on its line (a quote opens it, none closes it)",
                path.display()
            ),
            DataError::Index {
                path,
                line,
                index,
                limit,
            } => write!(
                f,
                "{}:{line}: index {index} is out of range (there are {limit})",
                path.display()
            ),
            DataError::MissingColumn {
                path,
                column,
                available,
            } => write!(
                f,
                "{}: no column {column:?} (columns: {available})",
                path.display()
            ),
            DataError::NoHeader { path, column } => write!(
                f,
                "{}: no column {column:?}: the file has no header line (its first row is all \
                 numbers); name the column by its 0-based index",
                path.display()
            ),
            DataError::FeatureClash {
                path,
                column,
                is_target,
            } => write!(
                f,
                "{}: feature column {column:?} {}",
                path.display(),
                if *is_target {
                    "is the target: a model cannot take what it predicts as an input"
                } else {
                    "is asked for twice"
                }
            ),
            DataError::EmptyLabel { path, line } => write!(
                f,
                "{}:{line}: the label is empty (every row needs a class)",
                path.display()
            ),
            DataError::UnknownLabel {
                path,
                line,
                label,
                known,
            } => write!(
                f,
                "{}:{line}: label {label:?} was never seen in training (classes: {known})",
                path.display()
            ),
            DataError::SingleClass { path, label } => write!(
                f,
                "{}: every training row is labelled {label:?}: a classifier needs at least two classes",
                path.display()
            ),
            DataError::MissingFeatures {
                path,
                missing,
                available,
            } => write!(
                f,
                "{}: the model's feature column{} {} {} missing (columns: {available})",
                path.display(),
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
            DataError::TooFewRows { path, rows, needed } => write!(
                f,
                "{}: {rows} rows, at least {needed} are needed",
                path.display()
            ),
            DataError::ConstantTarget { split } => {
                write!(
                    f,
                    "split {split}: the target is constant on the training rows"
                )
            }
        }
    }
}

impl std::error::Error for DataError {}

/// ` ("name")` for a named column, nothing otherwise.
fn quoted(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!(" ({n:?})"))
        .unwrap_or_default()
}

/// A numeric table read from whitespace-separated text (blank lines skipped).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Values, row-major.
    pub values: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Parses whitespace-separated numbers; the error names the line and column of a bad cell.
///
/// ```
/// use flock_runner::table::parse_table;
/// let t = parse_table("1 2\n\n 3\t\"4\"\n".as_ref(), "inline".as_ref())?;
/// assert_eq!((t.rows, t.cols, t.values), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
/// assert!(parse_table("1 2\n3\n".as_ref(), "inline".as_ref()).is_err());
/// # Ok::<(), flock_runner::table::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::NotANumber`], [`DataError::NonFinite`], [`DataError::Ragged`], [`DataError::Empty`],
/// [`DataError::UnclosedQuote`].
pub fn parse_table(text: &str, path: &Path) -> Result<Table, DataError> {
    parse_rows(cell_lines(text, Separator::Whitespace, path), path, None)
}

/// One line of cells: its 1-based number and its cells.
type CellLine<'t> = (usize, Vec<Cow<'t, str>>);

/// The lines of `text` split at `sep`, with their 1-based numbers; blank lines, and lines of
/// empty cells only (a spreadsheet's `,,,`), left out.
fn cell_lines<'t>(
    text: &'t str,
    sep: Separator,
    path: &'t Path,
) -> impl Iterator<Item = Result<CellLine<'t>, DataError>> + 't {
    text.lines()
        .enumerate()
        .filter_map(move |(i, line)| match sep.cells(line, path, i + 1) {
            Ok(cells) if cells.iter().all(|c| c.is_empty()) => None,
            Ok(cells) => Some(Ok((i + 1, cells))),
            Err(e) => Some(Err(e)),
        })
}

/// The finite number in `cell` (0-based column `column` of line `line` of `path`, called `name`
/// when the file has a header), or the error naming it.
fn parse_cell(
    cell: &str,
    path: &Path,
    line: usize,
    column: usize,
    name: Option<&str>,
) -> Result<f64, DataError> {
    let v: f64 = cell.parse().map_err(|_| DataError::NotANumber {
        path: path.to_owned(),
        line,
        column: column + 1,
        name: name.map(str::to_owned),
        text: cell.chars().take(40).collect(),
    })?;
    if !v.is_finite() {
        return Err(DataError::NonFinite {
            path: path.to_owned(),
            line,
            column: column + 1,
            name: name.map(str::to_owned),
        });
    }
    Ok(v)
}

/// The numbers of `lines` (cells by line, as [`cell_lines`] gives them); with `header_cols`,
/// every row must have that many columns (the header's), else as many as the first row.
fn parse_rows<'t>(
    lines: impl Iterator<Item = Result<CellLine<'t>, DataError>>,
    path: &Path,
    header_cols: Option<usize>,
) -> Result<Table, DataError> {
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0, header_cols.unwrap_or(0));
    for line in lines {
        let (line_no, cells) = line?;
        for (c, cell) in cells.iter().enumerate() {
            values.push(parse_cell(cell, path, line_no, c, None)?);
        }
        let found = cells.len();
        if rows == 0 && header_cols.is_none() {
            cols = found;
        } else if found != cols {
            return Err(DataError::Ragged {
                path: path.to_owned(),
                line: line_no,
                found,
                expected: cols,
                against_header: header_cols.is_some(),
            });
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Table { values, rows, cols })
}

/// A file's text, or [`DataError::Io`] naming it.
///
/// # Errors
/// [`DataError::Io`].
pub fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file of non-negative integer indices, one per line, each below `limit`.
pub fn read_indices(path: &Path, limit: usize) -> Result<Vec<usize>, DataError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let cell = line.trim();
        if cell.is_empty() {
            continue;
        }
        let index: usize = cell.parse().map_err(|_| DataError::NotANumber {
            path: path.to_owned(),
            line: number + 1,
            column: 1,
            name: None,
            text: cell.chars().take(40).collect(),
        })?;
        if index >= limit {
            return Err(DataError::Index {
                path: path.to_owned(),
                line: number + 1,
                index,
                limit,
            });
        }
        out.push(index);
    }
    Ok(out)
}

/// A table with column names (from a header line, or `0`, `1`, … when there is none).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTable {
    /// Column names.
    pub names: Vec<String>,
    /// Whether the names come from a header line (not numbered).
    pub has_header: bool,
    /// The numbers.
    pub table: Table,
}

impl NamedTable {
    /// The indices of the columns called `names`, in that order (for picking a model's features
    /// out of a file by name; other columns, such as the target, are ignored).
    ///
    /// ```
    /// use flock_runner::table::parse_named_table;
    /// let t = parse_named_table("y,b,a\n1,2,3\n", "data.csv".as_ref())?;
    /// assert_eq!(t.columns_named(&["a".into(), "b".into()], "data.csv".as_ref())?, [2, 1]);
    /// let err = t.columns_named(&["a".into(), "c".into()], "data.csv".as_ref()).unwrap_err();
    /// assert_eq!(err.to_string(), "data.csv: the model's feature column \"c\" is missing (columns: y, b, a)");
    /// # Ok::<(), flock_runner::table::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::MissingFeatures`] naming every name the header lacks.
    pub fn columns_named(&self, names: &[String], path: &Path) -> Result<Vec<usize>, DataError> {
        let found: Vec<Option<usize>> = names
            .iter()
            .map(|n| self.names.iter().position(|c| c == n))
            .collect();
        let missing: Vec<String> = names
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        if !missing.is_empty() {
            return Err(DataError::MissingFeatures {
                path: path.to_owned(),
                missing,
                available: self.names.join(", "),
            });
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// The index of column `key`: a header name, or a 0-based index.
    ///
    /// # Errors
    /// [`DataError::MissingColumn`] naming the key and the columns there are;
    /// [`DataError::NoHeader`] for a name in a file without a header.
    pub fn column(&self, key: &str, path: &Path) -> Result<usize, DataError> {
        if let Some(i) = self.names.iter().position(|n| n == key) {
            return Ok(i);
        }
        match key.parse::<usize>() {
            Ok(i) if i < self.table.cols => Ok(i),
            Err(_) if !self.has_header => Err(DataError::NoHeader {
                path: path.to_owned(),
                column: key.to_owned(),
            }),
            _ => Err(DataError::MissingColumn {
                path: path.to_owned(),
                column: key.to_owned(),
                available: self.names.join(", "),
            }),
        }
    }

    /// Column `c` as a vector.
    pub fn column_values(&self, c: usize) -> Vec<f64> {
        (0..self.table.rows)
            .map(|r| self.table.values[r * self.table.cols + c])
            .collect()
    }
}

/// Reads a CSV (commas), a semicolon-separated file with decimal commas (the CSV of locales
/// whose decimal mark is a comma: chosen when the first line holds a semicolon outside quotes)
/// or a whitespace-separated file; a first line with a non-numeric cell is a header.
///
/// ```
/// use flock_runner::table::read_named_table;
/// let path = std::env::temp_dir().join("flock-doc-table.csv");
/// std::fs::write(&path, "x,y\n1,2\n3,4\n")?;
/// let t = read_named_table(&path)?;
/// assert_eq!(t.names, ["x", "y"]);
/// assert_eq!(t.column_values(t.column("y", &path)?), [2.0, 4.0]);
/// std::fs::write(&path, "x;y\n1;2,5\n3;-0,5\n")?;
/// let t = read_named_table(&path)?;
/// assert_eq!(t.column_values(1), [2.5, -0.5]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`DataError`]s naming the file, line and column.
pub fn read_named_table(path: &Path) -> Result<NamedTable, DataError> {
    parse_named_table(&read(path)?, path)
}

/// [`read_named_table`] on text already in memory (`path` names it in errors).
///
/// ```
/// use flock_runner::table::parse_named_table;
/// let err = parse_named_table("a,b,y\n1,2,3\n4,nan,6\n", "data.csv".as_ref()).unwrap_err();
/// assert_eq!(err.to_string(), "data.csv:3: column 2 (\"b\") is not finite (NaN or infinite)");
/// ```
///
/// # Errors
/// [`DataError`]s naming the file, line and column.
pub fn parse_named_table(text: &str, path: &Path) -> Result<NamedTable, DataError> {
    let mut lines = cell_lines(text, Separator::of(text), path);
    let (first_line, first) = lines.next().ok_or_else(|| DataError::Empty {
        path: path.to_owned(),
    })??;
    let header = first.iter().any(|cell| cell.parse::<f64>().is_err());
    if !header {
        let table = parse_rows(
            std::iter::once(Ok((first_line, first))).chain(lines),
            path,
            None,
        )?;
        let names = (0..table.cols).map(|i| i.to_string()).collect();
        return Ok(NamedTable {
            names,
            has_header: false,
            table,
        });
    }
    let names: Vec<String> = first.iter().map(|cell| cell.to_string()).collect();
    // A bad cell's error names its column's header.
    let name_of = |column: usize| names.get(column - 1).cloned();
    let table =
        parse_rows(lines, path, Some(names.len())).map_err(|e| with_column_name(e, name_of))?;
    Ok(NamedTable {
        names,
        has_header: true,
        table,
    })
}

/// `e` with the name of its bad cell's column (from `name_of`, by 1-based column), when it is
/// an error about one cell.
fn with_column_name(e: DataError, name_of: impl Fn(usize) -> Option<String>) -> DataError {
    match e {
        DataError::NotANumber {
            path,
            line,
            column,
            text,
            ..
        } => DataError::NotANumber {
            path,
            line,
            column,
            name: name_of(column),
            text,
        },
        DataError::NonFinite {
            path, line, column, ..
        } => DataError::NonFinite {
            path,
            line,
            column,
            name: name_of(column),
        },
        other => other,
    }
}

/// A table whose target column holds class labels (text or numbers) and the rest numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledTable {
    /// The numbers (the target column holds zeros).
    pub table: NamedTable,
    /// The target column.
    pub target: usize,
    /// Each row's label, as written.
    pub labels: Vec<String>,
    /// Each row's 1-based line in the file.
    pub lines: Vec<usize>,
}

/// Reads a CSV (commas, or semicolons with decimal commas) or whitespace-separated file whose
/// column `target` (a header name or a 0-based index) holds class labels — words or numbers —
/// and whose other columns hold numbers. The first line is a header when a cell outside the
/// target column is not a number, or when the target is given by a name that is not an index.
///
/// ```
/// use flock_runner::table::parse_labelled_table;
/// let t = parse_labelled_table("x,kind\n1.5,cat\n2,dog\n", "pets.csv".as_ref(), "kind")?;
/// assert_eq!((t.target, t.labels.clone()), (1, vec!["cat".to_owned(), "dog".to_owned()]));
/// assert_eq!(t.table.column_values(0), [1.5, 2.0]);
/// let err = parse_labelled_table("x,kind\n1.5,cat\n2,\n", "pets.csv".as_ref(), "kind").unwrap_err();
/// assert_eq!(err.to_string(), "pets.csv:3: the label is empty (every row needs a class)");
/// # Ok::<(), flock_runner::table::DataError>(())
/// ```
///
/// # Errors
/// [`DataError`]s naming the file, line and column; [`DataError::EmptyLabel`] for a row
/// without a label.
pub fn parse_labelled_table(
    text: &str,
    path: &Path,
    target: &str,
) -> Result<LabelledTable, DataError> {
    let mut lines = cell_lines(text, Separator::of(text), path);
    let (first_line, first) = lines.next().ok_or_else(|| DataError::Empty {
        path: path.to_owned(),
    })??;
    let by_index = target.parse::<usize>().ok();
    if by_index.is_none() && first.iter().all(|cell| cell.parse::<f64>().is_ok()) {
        return Err(DataError::NoHeader {
            path: path.to_owned(),
            column: target.to_owned(),
        });
    }
    let header = match by_index {
        None => true,
        Some(t) => first
            .iter()
            .enumerate()
            .any(|(c, cell)| c != t && cell.parse::<f64>().is_err()),
    };
    let names: Vec<String> = if header {
        first.iter().map(|cell| cell.to_string()).collect()
    } else {
        (0..first.len()).map(|i| i.to_string()).collect()
    };
    let column = names
        .iter()
        .position(|n| n == target)
        .or(by_index.filter(|&t| t < names.len()))
        .ok_or_else(|| DataError::MissingColumn {
            path: path.to_owned(),
            column: target.to_owned(),
            available: names.join(", "),
        })?;
    let (mut labels, mut numbers) = (Vec::new(), Vec::new());
    let expected = names.len();
    // The numeric rows, read as they stream by: each line's cells with its label taken out
    // (and read as 0).
    let rows = (!header)
        .then_some(Ok((first_line, first)))
        .into_iter()
        .chain(lines)
        .map(|line| {
            let (line_no, mut cells) = line?;
            if cells.len() != expected {
                return Err(DataError::Ragged {
                    path: path.to_owned(),
                    line: line_no,
                    found: cells.len(),
                    expected,
                    against_header: header,
                });
            }
            let label = core::mem::replace(&mut cells[column], Cow::Borrowed("0"));
            if label.is_empty() {
                return Err(DataError::EmptyLabel {
                    path: path.to_owned(),
                    line: line_no,
                });
            }
            labels.push(label.into_owned());
            numbers.push(line_no);
            Ok((line_no, cells))
        });
    let name_of = |c: usize| header.then(|| names.get(c - 1).cloned()).flatten();
    let header_cols = header.then_some(names.len());
    let table = parse_rows(rows, path, header_cols).map_err(|e| with_column_name(e, name_of))?;
    Ok(LabelledTable {
        table: NamedTable {
            names,
            has_header: header,
            table,
        },
        target: column,
        labels,
        lines: numbers,
    })
}

/// [`parse_labelled_table`] of a file.
///
/// # Errors
/// As [`parse_labelled_table`]; [`DataError::Io`].
pub fn read_labelled_table(path: &Path, target: &str) -> Result<LabelledTable, DataError> {
    parse_labelled_table(&read(path)?, path, target)
}

/// The sorted distinct labels — numerically when every label is a number, else as text — and
/// each label's index among them.
///
/// ```
/// use flock_runner::table::class_names;
/// let (names, idx) = class_names(&["10".into(), "9".into(), "10".into()]);
/// assert_eq!((names, idx), (vec!["9".to_owned(), "10".to_owned()], vec![1, 0, 1]));
/// ```
pub fn class_names(labels: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut names: Vec<String> = labels.to_vec();
    if names.iter().all(|l| l.parse::<f64>().is_ok()) {
        names.sort_by(|a, b| {
            let (x, y): (f64, f64) = (a.parse().unwrap_or(0.0), b.parse().unwrap_or(0.0));
            x.total_cmp(&y).then_with(|| a.cmp(b))
        });
    } else {
        names.sort();
    }
    names.dedup();
    let index = labels
        .iter()
        .map(|l| names.iter().position(|n| n == l).unwrap_or(0))
        .collect();
    (names, index)
}

/// The columns called `names` (in that order) of a file with a header line — other columns are
/// ignored and may hold anything (a target, text labels) — or `None` when the file has no
/// header (its first line is all numbers).
///
/// ```
/// use flock_runner::table::parse_columns_named;
/// let t = parse_columns_named("kind,b,a\ncat,2,1\ndog,4,3\n", "x.csv".as_ref(),
///                             &["a".into(), "b".into()])?.unwrap();
/// assert_eq!(t.table.values, [1.0, 2.0, 3.0, 4.0]);
/// assert!(parse_columns_named("1,2\n", "x.csv".as_ref(), &["a".into()])?.is_none());
/// # Ok::<(), flock_runner::table::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::MissingFeatures`] naming every name the header lacks; number errors naming
/// the line and column.
pub fn parse_columns_named(
    text: &str,
    path: &Path,
    names: &[String],
) -> Result<Option<NamedTable>, DataError> {
    let mut lines = cell_lines(text, Separator::of(text), path);
    let Some(first) = lines.next() else {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    };
    let header: Vec<String> = first?.1.iter().map(|cell| cell.to_string()).collect();
    if header.iter().all(|c| c.parse::<f64>().is_ok()) {
        return Ok(None);
    }
    let named = NamedTable {
        names: header.clone(),
        has_header: true,
        table: Table {
            values: Vec::new(),
            rows: 0,
            cols: header.len(),
        },
    };
    let picks = named.columns_named(names, path)?;
    let mut values = Vec::new();
    let mut rows = 0;
    for line in lines {
        let (line_no, cells) = line?;
        for &c in &picks {
            let cell = cells.get(c).map_or("", |cell| cell.as_ref());
            values.push(parse_cell(cell, path, line_no, c, Some(&header[c]))?);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Some(NamedTable {
        names: names.to_vec(),
        has_header: true,
        table: Table {
            values,
            rows,
            cols: names.len(),
        },
    }))
}
