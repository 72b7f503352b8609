//! Shared test helpers: the fixture folder and a parser from optax expressions to flock objects.

pub mod optax_expr;

use std::path::PathBuf;

/// Every `.json` file in a fixture subfolder (see `flock-fixtures`), sorted.
pub fn fixture_files(sub: &str) -> Vec<PathBuf> {
    flock_fixtures::files(sub).unwrap_or_else(|e| panic!("{e}"))
}

/// Flattens nested JSON arrays of numbers (null → NaN) in row-major order, appending to `out`.
pub fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
    out.extend(flock_fixtures::numbers(v).unwrap_or_else(|e| panic!("{e}")));
}
