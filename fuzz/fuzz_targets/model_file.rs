//! The model file reader (safetensors header and tensors, the stored spec): a typed error or a
//! model, and a model's bytes read back as the same bytes.
#![no_main]

use flock_runner::AnyModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = AnyModel::from_bytes(data) else {
        return;
    };
    let bytes = model.to_bytes();
    let back = AnyModel::from_bytes(&bytes).expect("a model's own bytes read");
    assert_eq!(back.to_bytes(), bytes);
});
