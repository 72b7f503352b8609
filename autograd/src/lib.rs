//! # flock-autograd
//!
//! Reverse-mode differentiation for a whole ensemble at once. Every tensor carries a leading
//! member axis `E`; an operation acts on all members in one call (through the member-batched
//! kernels of `flock-kernels`), and members never mix: member `e`'s gradient depends only on
//! member `e`'s parameters. Data shared by all members (a batch `x`) is stored once with member
//! stride 0.
//!
//! - [`Tape`] / [`Graph`]: record operations eagerly (values are computed as you go), then
//!   [`Graph::backward`] from a per-member scalar writes per-member gradients for every
//!   parameter into one flat buffer. The tape's buffers are reused: after the first evaluation
//!   the hot path allocates nothing.
//! - Ops (methods on [`Graph`]): [`dense`](Graph::dense) (matmul + bias + activation, fused),
//!   [`matmul`](Graph::matmul), [`add`](Graph::add)/[`sub`](Graph::sub)/[`mul`](Graph::mul)/
//!   [`div`](Graph::div) with suffix broadcasting, the elementwise functions of
//!   [`UnaryKind`], [`sum`](Graph::sum)/[`mean`](Graph::mean)/[`sum_squares`](Graph::sum_squares),
//!   [`reshape`](Graph::reshape), [`select_column`](Graph::select_column), the fused
//!   [`normal_log_density`](Graph::normal_log_density) and the small-matrix
//!   [`log_det_spd`](Graph::log_det_spd).
//! - [`ParamLayout`] / [`Parameters`]: named leaves in a member-major flat buffer (layout in
//!   [`params`]).
//! - [`nn`]: [`Linear`] and [`Mlp`], equinox's layers and initialisation.
//! - [`LogJoint`]: the contract a log-joint meets — per-member `(ℓ, π)` and the gradient of their
//!   weighted sum. [`TapeLogJoint`] meets it with a closure over the tape; hand-written code can
//!   meet it directly.

mod error;
mod log_joint;
pub mod nn;
mod ops;
pub mod params;
mod shape;
pub mod tape;

pub use error::AutogradError;
pub use flock_kernels::{Activation, Parallelism};
pub use log_joint::{
    Batch, EvaluatedBlock, GraphFn, LogJoint, LogJointOutput, TapeLogJoint, Weights, batch_inputs,
    evaluate_then_one_block, finish_evaluation,
};
pub use nn::{Linear, Mlp, MlpConfig, WeightInit};
pub use ops::{Arg, UnaryKind};
pub use params::{LeafSpec, ParamId, ParamLayout, Parameters};
pub use shape::{MAX_RANK, Shape};
pub use tape::{Graph, Tape, Var};
