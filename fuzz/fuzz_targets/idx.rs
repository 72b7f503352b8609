//! The IDX reader (raw or gzip): a typed error or an array whose sizes match its data, and an
//! array written back as raw IDX reads as the same array.
#![no_main]

use std::path::Path;

use flock_runner::idx::parse_idx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(array) = parse_idx(data, Path::new("fuzz.idx")) else {
        return;
    };
    assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
    let mut raw = vec![0, 0, 0x08, array.dims.len() as u8];
    for &d in &array.dims {
        raw.extend_from_slice(&(d as u32).to_be_bytes());
    }
    raw.extend_from_slice(&array.data);
    let back = parse_idx(&raw, Path::new("back.idx")).expect("a written array reads");
    assert_eq!(back.dims, array.dims);
    assert_eq!(back.data, array.data);
});
