//! A model file is untrusted input: one that claims huge shapes, member counts, layers or draws
//! is refused with an error before anything of that size is allocated (a recording allocator,
//! this test binary's global one, notes the largest allocation the reading thread makes while
//! each file is read; reading a model runs on the caller's thread only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use flock_runner::{AnyModel, Error, Regressor};
use serde_json::{Value, json};

/// The system allocator, recording the largest single request of a thread while that thread
/// asks it to (the other tests of this binary run on other threads meanwhile).
struct Largest;

thread_local! {
    /// `Some(largest request so far)` while this thread records.
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Notes a request of `size` bytes if this thread records.
fn note(size: usize) {
    // `try_with`: the thread-local may already be gone while a thread exits.
    let _ = LARGEST.try_with(|largest| {
        if let Some(seen) = largest.get() {
            largest.set(Some(seen.max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the recording only
// observes (a const-initialised thread-local of `Copy` values, which allocates nothing).
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The header JSON and data of safetensors bytes.
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    (header, bytes[8 + len..].to_vec())
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    out
}

/// Reads `bytes` as a model; returns the error and the largest allocation made meanwhile.
fn read(bytes: &[u8]) -> (Error, usize) {
    LARGEST.with(|largest| largest.set(Some(0)));
    let result = AnyModel::from_bytes(bytes);
    let largest = LARGEST.with(|largest| largest.take()).unwrap_or(0);
    match result {
        Ok(_) => panic!("a file claiming more than it holds was read as a model"),
        Err(e) => (e, largest),
    }
}

#[test]
fn huge_claims_are_refused_without_a_large_allocation() {
    let x: Vec<[f64; 1]> = (0..20).map(|i| [i as f64]).collect();
    let y: Vec<f64> = x.iter().map(|[v]| v.sin()).collect();
    let model = Regressor::new()
        .members(1)
        .hidden(&[2])
        .epochs(1)
        .fit(&x, &y)
        .unwrap();
    let good = model.to_bytes();
    assert!(good.len() < 2048, "{} bytes", good.len());
    assert!(AnyModel::from_bytes(&good).is_ok());
    let (header, data) = split(&good);
    let spec: Value = serde_json::from_str(header["__metadata__"]["flock_fit"].as_str().unwrap())
        .expect("the model record is JSON");
    let with_spec = |edit: &dyn Fn(&mut Value)| {
        let mut spec = spec.clone();
        edit(&mut spec);
        let mut header = header.clone();
        header["__metadata__"]["flock_fit"] = json!(spec.to_string());
        join(&header, &data)
    };
    let leaf = header
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.as_str() != "__metadata__" && k.as_str() != "losses")
        .unwrap()
        .clone();
    let trillion = 1_000_000_000_000u64;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a tensor of 10¹² elements", {
            let mut h = header.clone();
            h[&leaf]["shape"] = json!([1_000_000, 1_000_000]);
            join(&h, &data)
        }),
        ("10¹² members", {
            let mut h = with_spec(&|s| s["members"] = json!(trillion));
            let (mut h2, d) = split(&h);
            h2["__metadata__"]["members"] = json!(trillion.to_string());
            h = join(&h2, &d);
            h
        }),
        (
            "a hidden layer of 10¹² units",
            with_spec(&|s| s["hidden"] = json!([trillion])),
        ),
        (
            "layers whose product overflows",
            with_spec(&|s| s["hidden"] = json!([1u64 << 40, 1u64 << 40])),
        ),
        (
            "10¹² VI draws",
            with_spec(&|s| {
                s["method"] = json!({"kind": "vi", "kl_weight": 1.0, "init_scale": 0.01,
                                     "samples": trillion, "rank": 0});
                s["prior_weight"] = json!(0.0);
            }),
        ),
        ("a data offset past the end", {
            let mut h = header.clone();
            h[&leaf]["data_offsets"] = json!([0, trillion]);
            join(&h, &data)
        }),
    ];
    for (what, bytes) in cases {
        assert!(bytes.len() < 4096, "{what}: {} bytes", bytes.len());
        let (error, largest) = read(&bytes);
        assert!(
            largest < 64 * 1024,
            "{what}: refused ({error}) but allocated {largest} bytes first"
        );
    }
}
