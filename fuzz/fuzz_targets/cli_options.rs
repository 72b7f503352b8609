//! The command line's option parsing for `flock fit` and `flock uci` (numbers, ranges, lists
//! such as `--splits 0,1,2` or `--hidden 100,50`, enums, and the checks of the settings): a
//! message, or settings that pass `FitSpec::validate` and round-trip through the model file's
//! JSON form.
//!
//! The input is the command's arguments, one per line; a first line other than `uci` runs
//! `fit data.csv --target y` with the rest.
#![no_main]

use flock_runner::app::cli::training_settings;
use flock_runner::regressor::FitSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n').map(str::to_owned);
    let mut args: Vec<String> = match lines.next().as_deref() {
        Some("uci") => vec!["uci".into(), "datasets".into()],
        _ => vec!["fit".into(), "data.csv".into(), "--target".into(), "y".into()],
    };
    args.extend(lines);
    match training_settings(&args) {
        Err(message) => assert!(!message.is_empty(), "an empty message for {args:?}"),
        Ok(spec) => {
            spec.validate().expect("settings that passed the command's checks validate");
            let json = serde_json::to_string(&spec).expect("settings serialise");
            let back: FitSpec = serde_json::from_str(&json).expect("serialised settings read");
            assert_eq!(back, spec, "{json}");
        }
    }
});
