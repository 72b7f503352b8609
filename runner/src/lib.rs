//! # flock-runner — Layers 2 and 3
//!
//! Built so far: [`seed`], the seed tutorial's problem (data, MLP, log-joint, fixture loading and
//! its summary table), used by the examples `pattern_a`, `pattern_b` and `pattern_c`, which drive
//! the Layer 1 primitives exactly as the tutorial's three patterns do. The runners
//! (`EnsembleMAP`, `EnsembleVI`) and the one-shot sugar come next.

pub mod seed;
