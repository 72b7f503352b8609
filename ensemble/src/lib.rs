//! # flock-ensemble — Layer 1
//!
//! The primitives of deep ensembles, agnostic to the training loop, the optimizer and where the
//! log-joint comes from (pyrox's `ensemble_init` / `ensemble_loss` / `ensemble_step` /
//! `ensemble_predict`):
//!
//! - [`ensemble_init`] builds an [`EnsembleState`] (parameters and optimizer state with a leading
//!   member axis); member `e` draws from [`member_rng`]`(seed, e)` only.
//! - [`ensemble_loss`] turns a [`LogJoint`](flock_autograd::LogJoint) into
//!   `L_e = −scale·ℓ_e − prior_weight·π_e` (`prior_weight` 0 = MLE, 1 = MAP; `scale = N/|B|`).
//! - [`ensemble_step`] does one optimizer update for every member and returns the losses before
//!   it.
//! - [`ensemble_steps_apart`] takes a run of steps for every member, each member on its own
//!   (member after member, on whichever thread is free) — the bits of as many
//!   [`ensemble_step`]s, with each core holding one member's state at a time.
//! - [`ensemble_predict`] evaluates every member on new inputs.
//! - [`model`]: Pattern C — a model written once with `sample` / `observe` sites gives the
//!   parameter layout, the split log-density and a log-joint.
//! - [`ParallelLogJoint`]: members in parallel, bitwise equal to one thread; [`ensemble_step`]
//!   updates each block of members on the thread that evaluated it.
//! - [`MiniBatcher`]: mini-batches with or without replacement and their `scale`;
//!   [`PerMemberBatcher`]: a data order of each member's own.

mod apart;
mod batch;
mod error;
mod held_out;
mod helper;
mod loss;
pub mod model;
mod opt_blocks;
mod parallel;
mod predict;
mod rng;
mod state;
mod step;

pub use apart::{ApartRecord, StepsApart, ensemble_steps_apart, steps_apart_pay};
pub use batch::{Batches, DataOrder, MiniBatcher, PerMemberBatcher, Sampling};
pub use error::EnsembleError;
pub use held_out::MemberHeldOut;
pub use loss::{EnsembleLoss, LossOutput, ensemble_loss};
pub use opt_blocks::OptimizerBlocks;
pub use parallel::{ParallelLogJoint, default_members_per_call};
pub use predict::{Predictions, ensemble_predict, ensemble_predict_in};
pub use rng::{MemberRng, SeedStream, fill_standard_normal, member_rng, shuffle, standard_normal};
pub use state::{EnsembleState, ensemble_init, ensemble_init_members, optim_layout};
pub use step::ensemble_step;
