//! # flock-runner — Layers 2 and 3
//!
//! - [`map`]: `EnsembleMAP` (`init` / `update` / `run`, a fused loop with callbacks, per-member
//!   freezing, best-parameter keeping and divergence handling) and the one-shot `ensemble_map`.
//! - [`seed`]: the seed tutorial's problem (data, MLP, log-joint, fixture loading, its table).
//! - [`patterns`]: the tutorial's three ways to drive the Layer 1 primitives; the examples
//!   `pattern_a`, `pattern_b`, `pattern_c` and `seed_tutorial` run them.
//!
//! - [`vi`]: `EnsembleVI` (mean-field Gaussian guides, tempered ELBO, the same runner loop) and
//!   the one-shot `ensemble_vi`, with a predictive of `S` draws per member.
//!
//! - [`checkpoint`]: saving and loading results as safetensors.
//! - [`uci`]: the UCI regression benchmark protocol, used by `flock uci`.
//! - [`fit`]: quick fits on tabular data (`flock fit` / `flock predict`); [`table`]: reading them.
//! - [`progress`]: the progress bar long runs show on stderr.
//!
//! The `flock` binary (`cargo run --release -p flock-runner -- demo | fit | predict | uci`) drives
//! them.

pub mod checkpoint;
pub mod fit;
pub mod map;
pub mod patterns;
pub mod progress;
pub mod seed;
pub mod table;
pub mod uci;
pub mod vi;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
