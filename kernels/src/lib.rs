//! # flock-kernels
//!
//! The numerical floor of flock: member-batched GEMM and SIMD elementwise kernels, in `f32` and
//! `f64` through one generic code path. An ensemble of `E` small networks is `E` independent
//! problems of the same shape; these kernels take the member axis as a first-class argument so a
//! whole ensemble's layer is one call, and a data batch shared by every member is read in place
//! (member stride 0).
//!
//! - [`gemm()`]: `C_e = α·op(A_e)·op(B_e) + β·C_e`, with [`gemm_naive`] as its reference.
//! - [`elementwise`]: `exp`, `ln`, `ln_1p`, `tanh`, `sigmoid`, `softplus`, `relu`, activation
//!   derivatives from the output, the fused bias + activation forward and backward, per-member
//!   sums, sums of squares and dot products, `axpy` and `scale`.
//! - [`Parallelism`]: the explicit threading argument.
//! - [`AlignedBuf`]: a reusable buffer starting on a 64-byte boundary.
//! - [`peak`]: one core's FMA peak, the loop the benchmarks measure every figure against.
//!
//! The SIMD width is fixed when the crate is compiled (see [`SIMD_LEVEL`]): build with
//! `-C target-cpu=native` to get AVX-512 or AVX2 + FMA.

mod aligned;
mod element;
pub mod elementwise;
mod f64_math;
mod frame;
pub mod gemm;
mod parallelism;
pub mod peak;
mod simd;
mod tanh;
mod transpose;

pub use aligned::{ALIGN_BYTES, AlignedBuf};
pub use element::Element;
pub use elementwise::{Activation, UnknownActivation};
pub use gemm::{GemmError, MatMut, MatRef, Operand, gemm, gemm_naive};
pub use parallelism::Parallelism;
pub use simd::{F32Vector, F64Vector, SIMD_LEVEL, SimdVector, exp_f64, exp_m1_f64, pow2_f64};
