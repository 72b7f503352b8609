//! The table readers on arbitrary text (quotes and semicolons too): a typed error or a well-formed table,
//! never a panic.

use flock_runner::table::{
    parse_columns_named, parse_labelled_table, parse_named_table, parse_table,
};
use proptest::prelude::*;

fn pieces() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("1".to_owned()),
            Just("-2.5e3".to_owned()),
            Just(",".to_owned()),
            Just(";".to_owned()),
            Just("2,5".to_owned()),
            Just("\"a; b\"".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("NaN".to_owned()),
            Just("inf".to_owned()),
            Just("x".to_owned()),
            Just("\"".to_owned()),
            Just("\"\"".to_owned()),
            Just("\"a, b\"".to_owned()),
            Just("名前".to_owned()),
            Just("1e999".to_owned()),
            Just("".to_owned()),
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..60,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn never_panics_and_tables_are_rectangular(text in pieces()) {
        let path = std::path::Path::new("fuzz.csv");
        if let Ok(t) = parse_named_table(&text, path) {
            prop_assert_eq!(t.table.values.len(), t.table.rows * t.table.cols);
            prop_assert_eq!(t.names.len(), t.table.cols);
            prop_assert!(t.table.values.iter().all(|v| v.is_finite()));
        }
        if let Ok(t) = parse_table(&text, path) {
            prop_assert_eq!(t.values.len(), t.rows * t.cols);
        }
        for target in ["x", "0", "1"] {
            if let Ok(t) = parse_labelled_table(&text, path, target) {
                prop_assert_eq!(t.labels.len(), t.table.table.rows);
                prop_assert!(t.labels.iter().all(|l| !l.is_empty()));
            }
        }
        if let Ok(Some(t)) = parse_columns_named(&text, path, &["x".to_owned()]) {
            prop_assert_eq!(t.table.values.len(), t.table.rows);
        }
    }
}
