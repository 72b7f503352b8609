//! The table loader (CSV or whitespace, header detected): a typed error or a table, and a table
//! written back as CSV reads as the same table.
#![no_main]

use std::path::Path;

use flock_runner::table::parse_named_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = parse_named_table(text, Path::new("fuzz.csv")) else {
        return;
    };
    let t = &table.table;
    assert_eq!(t.values.len(), t.rows * t.cols);
    assert!(t.values.iter().all(|v| v.is_finite()));
    assert_eq!(table.names.len(), t.cols);
    // Written back (values in Rust's shortest round-trip form), it reads as the same numbers.
    let mut csv = String::new();
    for row in t.values.chunks_exact(t.cols.max(1)) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    if t.rows > 0 {
        let back = parse_named_table(&csv, Path::new("back.csv")).expect("a written table reads");
        assert_eq!(back.table.values, t.values);
        assert_eq!((back.table.rows, back.table.cols), (t.rows, t.cols));
    }
});
