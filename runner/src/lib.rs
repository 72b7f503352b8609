//! # flock-runner — Layers 2 and 3
//!
//! Fit an ensemble and predict with uncertainty in a few lines — the front door,
//! [`Regressor`]:
//!
//! ```
//! use flock_runner::Regressor;
//! let x: Vec<[f64; 1]> = (0..400).map(|i| [i as f64 / 40.0]).collect(); // 0 … 10
//! let y: Vec<f64> = x.iter().map(|[v]| v.sin()).collect();
//! let model = Regressor::new().members(5).epochs(100).seed(0).fit(&x, &y)?;
//! let p = model.predict(&[[2.5], [7.0]])?;
//! println!("mean {:?}, std {:?}", p.mean(), p.std());
//! # Ok::<(), flock_runner::Error>(())
//! ```
//!
//! Below it, the layers it is built from:
//!
//! - [`regressor`]: [`Regressor`] (a builder with the best measured recipe as its defaults,
//!   generic over f32 and f64), [`FittedRegressor`] (predict, score, save, load) and
//!   [`Prediction`].
//! - [`map`]: `EnsembleMAP` (`init` / `update` / `run` / `train`) and the one-shot
//!   [`ensemble_map`](map::ensemble_map).
//! - [`vi`]: `EnsembleVI` (Gaussian guides per member, tempered ELBO) and
//!   [`ensemble_vi`](vi::ensemble_vi).
//! - [`train`]: the one training loop both runners go through, and its hooks (held-out scoring,
//!   checkpoints, progress, callbacks).
//! - [`classifier`]: [`Classifier`] / [`FittedClassifier`] — the same front door for class
//!   labels: probabilities, entropy and mutual information, calibration, conformal sets.
//! - [`checkpoint`]: safetensors files of results and training states; [`files`]: the one
//!   atomic file writer; [`table`]: reading numeric tables with file:line:column errors;
//!   [`idx`]: IDX image files (MNIST's format), raw or gzip.
//!
//! With the `cli` feature (on by default), [`app`] holds what only the `flock` command needs:
//! its command-line interface, progress bars, the UCI benchmark driver and the seed tutorial.
//! A library that depends on flock-runner with `default-features = false` compiles none of it
//! (no clap, no PNG renderer).

mod any_model;
pub mod checkpoint;
pub mod classifier;
pub mod distributed;
pub mod error;
mod feed;
pub mod files;
pub mod idx;
pub mod map;
pub mod regressor;
mod sharded;
pub mod table;
pub mod train;
pub mod vi;

#[cfg(feature = "cli")]
pub mod app;

pub use any_model::AnyModel;
pub use classifier::{AnyClassifier, ClassPrediction, Classifier, FittedClassifier};
pub use error::{Error, RunError};
pub use flock_autograd::Activation;
pub use regressor::{
    AnyRegressor, DataOrder, Features, FitMethod, FitSpec, FittedRegressor, InputScaling,
    LearningRateSchedule, Likelihood, Matrix, Prediction, Regressor, ViFit, WeightInit,
};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
