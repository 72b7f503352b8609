//! # flock-runner — Layers 2 and 3
//!
//! Built so far: [`seed`], the seed tutorial's problem (data, MLP, log-joint, fixture loading and
//! its summary table), and [`patterns`], the tutorial's three ways to drive the Layer 1
//! primitives. The examples `pattern_a`, `pattern_b`, `pattern_c` and `seed_tutorial` run them.
//! The runners (`EnsembleMAP`, `EnsembleVI`) and the one-shot sugar come next.

pub mod patterns;
pub mod seed;
