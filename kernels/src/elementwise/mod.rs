//! Elementwise kernels: transcendental functions, activations with their derivatives, the fused
//! bias + activation layer epilogue, per-member reductions and BLAS-1 updates.
//!
//! Every kernel processes whole vectors and runs its tail through the same vector code, so an
//! element's result never depends on its position. Each has a naive scalar reference beside it
//! (`naive` submodules), and the tests compare the two over random shapes.
//!
//! # Accuracy
//! The transcendental functions come from `wide` (Cephes/VCL-style polynomial approximations).
//! Their error against `std` is measured by `tests/accuracy.rs` over a dense grid of 200,001
//! points in [−300, 300] plus ±0, ±∞, NaN and the extremes of the type; the test asserts the
//! bounds below (relative error where |reference| ≥ 1e-300, else absolute):
//!
//! | function | f32 max rel error | f64 max rel error | special values |
//! |---|---|---|---|
//! | `exp` | ≤ 4 ulp (5e-7) | ≤ 4 ulp (9e-16) | exp(−∞)=0, exp(+∞)=+∞, overflow → +∞, NaN → NaN |
//! | `ln` (x > 0) | ≤ 4 ulp | ≤ 4 ulp | ln(0)=−∞, ln(x<0)=NaN, ln(+∞)=+∞ |
//! | `ln_1p` (x > −1) | ≤ 4 ulp | ≤ 4 ulp | ln_1p(−1)=−∞ |
//! | `tanh` | ≤ 4 ulp | ≤ 4 ulp | tanh(±∞)=±1, NaN → NaN |
//! | `sigmoid` | ≤ 8 ulp | ≤ 8 ulp | σ(−∞)=0, σ(+∞)=1 |
//! | `softplus` | ≤ 8 ulp | ≤ 8 ulp | softplus(−∞)=0, softplus(+∞)=+∞ |
//! | `relu` | exact | exact | relu(NaN)=NaN |
//!
//! The table's bounds are the asserted ones; the measured maxima are printed by
//! `cargo test -p flock-kernels --release --test accuracy -- --nocapture`.

mod activation;
pub mod blas1;
mod map;
pub mod math;
pub mod reduce;

pub use activation::{
    Activation, Store, activate_in_place, activation_backward, bias_activation_backward,
    bias_activation_forward, naive as activation_naive,
};
pub use blas1::{add_assign, axpy, scale};
pub use math::{exp, ln, ln_1p, relu, sigmoid, softplus, tanh};
pub use reduce::{dot_per_member, sum_per_member, sum_squares_per_member};
