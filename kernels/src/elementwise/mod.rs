//! Elementwise kernels: transcendental functions, activations with their derivatives, the fused
//! bias + activation layer epilogue, per-member reductions and BLAS-1 updates.
//!
//! Every kernel processes whole vectors and runs its tail through the same vector code, so an
//! element's result never depends on its position. Each has a naive scalar reference beside it
//! (`naive` submodules), and the tests compare the two over random shapes.
//!
//! # Accuracy
//! The error of the transcendental functions against `std` is measured by `tests/suite/accuracy.rs` over a dense grid of 200,001
//! points in [−300, 300], tiny magnitudes down to f32's subnormals, ±0, ±∞, NaN and the extremes
//! of the type; the test asserts the
//! bounds below (relative error where the reference is a normal number; a subnormal result may be
//! flushed to 0, so there the error is counted relative to the smallest normal):
//!
//! | function | f32 max rel error (measured) | f64 max rel error (measured) | special values |
//! |---|---|---|---|
//! | `exp` | 0.7 ulp | 1.0 ulp | exp(−∞)=0, exp(+∞)=+∞, overflow → +∞, NaN → NaN |
//! | `ln` | 0.9 ulp | 1.0 ulp | ln(0)=−∞, ln(x<0)=NaN, ln(+∞)=+∞, subnormal x to full accuracy |
//! | `ln_1p` | 1.4 ulp | 1.9 ulp | ln_1p(−1)=−∞, ln_1p(x<−1)=NaN |
//! | `tanh` | 2.5 ulp (2.6 in the SSE2 build) | 2.2 ulp (2.8 in the SSE2 build) | tanh(±∞)=±1, tanh(±0)=±0, NaN → NaN |
//! | `sigmoid` | 1.2 ulp | 1.7 ulp | σ(−∞)=0, σ(+∞)=1 |
//! | `softplus` | 1.7 ulp | 1.9 ulp | softplus(−∞)=0, softplus(+∞)=+∞ |
//! | σ of `softplus_sigmoid` | 1.4 ulp | 2.7 ulp | as `sigmoid` (bitwise it for x > 0) |
//! | `relu` | exact | exact | relu(NaN)=NaN |
//!
//! (f32 is measured against the exact value computed in f64, f64 against `std`; ulp = the type's
//! machine epsilon, 1.19e-7 for f32 and 2.22e-16 for f64; the maximum absolute
//! error of each is at most 4e-6 (f32, `ln_1p` near −1) and 8e-15 (f64); the test asserts ≤ 4 ulp
//! for exp/ln/ln_1p/tanh and ≤ 8 ulp for sigmoid/softplus in both the native and SSE2 builds.)
//! `tanh` is flock's own branch-free code (see `tanh.rs`); the others come from `wide`
//! (Cephes/VCL-style polynomials).
//!
//! The table's bounds are the asserted ones; the measured maxima are printed by
//! `cargo test -p flock-kernels --release --test accuracy -- --nocapture`.

mod activation;
pub mod adam;
pub mod blas1;
mod map;
pub mod math;
pub mod reduce;

pub use activation::{
    Activation, Store, UnknownActivation, activate_in_place, activation_backward,
    bias_activation_backward, bias_activation_backward_outer, bias_activation_forward,
    naive as activation_naive, outer_bias_activation_backward, outer_bias_activation_forward,
};
pub use adam::{AdamCoefficients, adam_update, adam_update_apply};
pub use blas1::{add_assign, add_scaled, axpy, scale};
pub use math::{exp, exp_in_place, ln, ln_1p, relu, sigmoid, softplus, softplus_sigmoid, tanh};
pub use reduce::{
    add_column_sums, add_sums_per_member, all_finite, dot_per_member, sum_ln_per_member,
    sum_per_member, sum_squares_per_member,
};
