//! Shared test helpers: the fixture folder and a parser from optax expressions to flock objects.

pub mod optax_expr;

use std::path::PathBuf;

/// `$FLOCK_FIXTURES/<sub>` or `<workspace>/../shared/fixtures/<sub>`.
pub fn fixture_dir(sub: &str) -> PathBuf {
    let root = std::env::var_os("FLOCK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    root.join(sub)
}

/// Every `.json` file in a fixture subfolder, sorted.
pub fn fixture_files(sub: &str) -> Vec<PathBuf> {
    let dir = fixture_dir(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read fixture folder {}: {e} (set FLOCK_FIXTURES)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Flattens nested JSON arrays of numbers (null → NaN) in row-major order.
pub fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
        serde_json::Value::Null => out.push(f64::NAN),
        other => panic!("expected a number or array, found {other}"),
    }
}
