//! # flock-optim — optax for Rust
//!
//! Composable gradient transformations with explicit state, acting on a member-major flat
//! parameter buffer (`E` members × `P` parameters) with **per-member semantics**: every member
//! has its own moments, step count, global norm and non-finite counter, exactly as if optax's
//! `update` were `jax.vmap`ped over members (as pyrox does). Names, defaults and numerics follow
//! optax 0.2.8; the tests replay optax's own trajectories.
//!
//! - The contract: [`GradientTransformation`] (`init`, `update`), [`apply_updates`].
//! - Transformations: [`scale_by_adam`], [`scale_by_amsgrad`], [`scale_by_belief`],
//!   [`scale_by_rms`], [`scale_by_stddev`], [`scale_by_rss`], [`scale_by_lion`],
//!   [`scale_by_trust_ratio`], [`trace`], [`add_decayed_weights`], [`clip`],
//!   [`clip_by_global_norm`], [`scale`], [`scale_by_learning_rate`], [`identity`].
//! - Combinators: [`chain!`], [`masked`], [`apply_if_finite`], [`multi_steps`],
//!   [`LearningRate::Injected`] (change the learning rate from the loop), [`PerMember`]
//!   hyperparameters, [`BoxedTransformation`].
//! - Aliases: [`sgd`], [`adam`], [`adamw`], [`nadam`], [`nadamw`], [`amsgrad`], [`adabelief`],
//!   [`rmsprop`], [`adagrad`], [`lion`], [`lamb`].
//! - Schedules: see [`schedule`].

mod adaptive;
mod alias;
mod base;
mod basic;
mod boxed;
mod combine;
mod error;
mod layout;
pub mod schedule;
mod wrappers;

pub use adaptive::{
    AdamConfig, LionSign, RmsConfig, ScaleByAdam, ScaleByAdamState, ScaleByAmsgrad,
    ScaleByAmsgradState, ScaleByBelief, ScaleByLion, ScaleByRms, ScaleByRmsState, ScaleByRss,
    scale_by_adam, scale_by_amsgrad, scale_by_belief, scale_by_lion, scale_by_rms, scale_by_rss,
    scale_by_stddev,
};
pub use alias::{
    Adam, AdamW, Sgd, adabelief, adagrad, adam, adamw, amsgrad, lamb, lion, nadam, nadamw, rmsprop,
    sgd,
};
pub use base::{GradientTransformation, MemberState, Params, PerMember, StateValue, apply_updates};
pub use basic::{
    AddDecayedWeights, Clip, ClipByGlobalNorm, Identity, LeafMask, LearningRate, Scale,
    ScaleByLearningRate, ScaleByLearningRateState, ScaleByTrustRatio, Trace, add_decayed_weights,
    clip, clip_by_global_norm, global_norm, identity, scale, scale_by_learning_rate,
    scale_by_trust_ratio, trace,
};
pub use boxed::{BoxedState, BoxedTransformation};
pub use combine::{Chain, Masked, MaskedState, chain, masked};
pub use error::OptimError;
pub use layout::{Layout, Leaf};
pub use schedule::{
    Schedule, constant_schedule, cosine_decay_schedule, cosine_onecycle_schedule,
    exponential_decay, join_schedules, linear_onecycle_schedule, linear_schedule,
    piecewise_constant_schedule, polynomial_schedule, sgdr_schedule, warmup_constant_schedule,
    warmup_cosine_decay_schedule,
};
pub use wrappers::{
    ApplyIfFinite, ApplyIfFiniteState, MultiSteps, MultiStepsState, apply_if_finite, multi_steps,
};
