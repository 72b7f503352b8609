//! The front door: fit an ensemble to rows × features and a target, predict with calibrated
//! uncertainty, score, save and load.
//!
//! ```
//! use flock_runner::Regressor;
//! let x: Vec<[f64; 1]> = (0..400).map(|i| [i as f64 / 40.0]).collect(); // 0 … 10
//! let y: Vec<f64> = x.iter().map(|[v]| v.sin()).collect();
//! let model = Regressor::new().members(5).epochs(100).seed(0).fit(&x, &y)?;
//! let p = model.predict(&[[2.5], [7.0]])?;
//! println!("mean {:?}, std {:?}", p.mean(), p.std());
//! # assert!((p.mean()[0] - 2.5f64.sin()).abs() < 0.05 && p.std()[0] < 0.1);
//! # Ok::<(), flock_runner::Error>(())
//! ```
//!
//! [`Regressor`] is a builder over a [`FitSpec`] whose defaults are the best recipe measured
//! (see [`FitSpec::default`]); [`Regressor::fit`] standardises with the training rows'
//! statistics, holds out rows for early stopping, and trains every member — a point estimate
//! ([`FitMethod::Map`], through [`EnsembleMAP`](crate::map::EnsembleMAP)) or a Gaussian guide ([`FitMethod::Vi`], through
//! [`EnsembleVI`](crate::vi::EnsembleVI)) — in the one training loop ([`crate::train`]). The [`FittedRegressor`] it
//! returns predicts the ensemble's mixture on the original scale ([`Prediction`]), scores it
//! exactly, and saves itself as the safetensors file `flock fit` writes and `flock predict`
//! reads.

mod data;
mod fitted;
mod model_file;
mod network;
mod prediction;
mod spec;
mod training;
mod variational;

use std::path::PathBuf;

use flock_kernels::Element;

pub(crate) use data::check_finite;
pub use data::{Features, Matrix, Normalisation, column_moments};
pub use fitted::{AnyRegressor, FittedRegressor};
pub(crate) use fitted::{Rows32, to_f32};
pub use flock_autograd::WeightInit;
pub use flock_ensemble::DataOrder;
pub(crate) use model_file::{FittedEnsemble, model_from_bytes, read_model, stored_spec};
pub(crate) use network::Network;
pub use prediction::Prediction;
pub use spec::{FitMethod, FitSpec, InputScaling, LearningRateSchedule, Likelihood, ViFit};
pub(crate) use training::{Prepared, Trained, train_network};

use crate::distributed::Communicator;
use crate::error::Error;
use crate::train::{ProgressHook, StepOrder};

/// An ensemble regressor to fit: a builder over a [`FitSpec`] (its defaults are flock's best
/// measured recipe) and the threads to train on. Generic over the element type, `f64` or `f32`,
/// which `fit` infers from the data.
///
/// ```
/// use flock_runner::{FitMethod, Regressor, ViFit};
/// // 5 VI guides over two hidden layers of 32 tanh units, trained in f32.
/// let x: Vec<[f32; 2]> = (0..300).map(|i| [i as f32 / 100.0, (i % 7) as f32]).collect();
/// let y: Vec<f32> = x.iter().map(|[a, b]| a.sin() + 0.1 * b).collect();
/// let model = Regressor::new()
///     .hidden(&[32, 32])
///     .activation(flock_runner::Activation::Tanh)
///     .method(FitMethod::Vi(ViFit::default()))
///     .epochs(20)
///     .fit(&x, &y)?;
/// assert_eq!(model.networks().members(), 5 * 10); // 10 draws from each guide
/// # Ok::<(), flock_runner::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Regressor<T = f64> {
    spec: FitSpec,
    threads: Option<usize>,
    feature_names: Option<Vec<String>>,
    _element: core::marker::PhantomData<T>,
}

impl<T: Element> Default for Regressor<T> {
    fn default() -> Self {
        Regressor::new()
    }
}

/// Where and how a long fit keeps its state, and what it shows
/// ([`Regressor::fit_with`]).
#[derive(Default)]
pub struct FitHooks<'h> {
    /// Save the training state to this file after every epoch (atomically; read back with
    /// `resume`). The file stays after the fit; the caller removes it when done.
    pub state_file: Option<PathBuf>,
    /// Continue from `state_file` if it exists, to the bits of an uninterrupted fit.
    pub resume: bool,
    /// Stop after this many epochs in this call (the state file stays, for `resume`).
    pub max_epochs_this_call: Option<usize>,
    /// Told the step and the members' mean loss after every step.
    pub progress: Option<Box<dyn ProgressHook + 'h>>,
    /// The processes sharing the members (`mpirun`'s, [`crate::distributed`]): each trains a
    /// contiguous block ([`block`](crate::distributed::block)) and every one ends with the whole
    /// ensemble — the bits of a one-process fit. `None` (or one rank): every member here. Needs
    /// at least as many members as ranks. Rank 0 reads and writes `state_file` (the whole
    /// ensemble's state, gathered from every rank), so a fit resumes on any number of ranks.
    pub ranks: Option<&'h dyn Communicator>,
    /// Row sharding instead: each batch's gradient is summed over chunks of this many rows (by
    /// position in the batch) in chunk order, the chunks shared by `ranks` and every member
    /// trained on every rank. The bits depend on the chunk size but not on the number of ranks
    /// (one process with the same chunks gives them too); they differ from a fit without
    /// chunks. MAP fits only.
    pub row_chunks: Option<usize>,
    /// With `row_chunks`: how many ranks share each member group's rows (a divisor of the
    /// ranks; default every rank). `R / row_ranks` groups share the members — a 2-D layout.
    pub row_ranks: Option<usize>,
    /// Members stepped together or apart: the same bits either way ([`StepOrder::Auto`], the
    /// default, picks the faster).
    pub step_order: StepOrder,
}

impl std::fmt::Debug for FitHooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitHooks")
            .field("state_file", &self.state_file)
            .field("resume", &self.resume)
            .field("max_epochs_this_call", &self.max_epochs_this_call)
            .field("progress", &self.progress.is_some())
            .field("ranks", &self.ranks.map(|r| r.size()))
            .field("row_chunks", &self.row_chunks)
            .field("row_ranks", &self.row_ranks)
            .field("step_order", &self.step_order)
            .finish()
    }
}

/// What [`Regressor::fit_with`] and [`Classifier::fit_with`](crate::classifier::Classifier::fit_with)
/// end with: the fitted model `M` ([`FittedRegressor`] or
/// [`FittedClassifier`](crate::classifier::FittedClassifier)), or where a fit that was asked to
/// pause stopped.
#[derive(Debug)]
pub enum FitOutcome<M> {
    /// Every epoch trained.
    Fitted(Box<M>),
    /// Stopped after [`FitHooks::max_epochs_this_call`] with the state in the state file.
    Paused {
        /// Steps trained so far.
        steps: usize,
        /// Steps of the whole fit.
        of: usize,
    },
}

impl<T: Element> Regressor<T> {
    /// flock's best recipe ([`FitSpec::default`]), every core.
    pub fn new() -> Self {
        Regressor::from_spec(FitSpec::default())
    }

    /// The regressor `spec` describes.
    pub fn from_spec(spec: FitSpec) -> Self {
        Regressor {
            spec,
            threads: None,
            feature_names: None,
            _element: core::marker::PhantomData,
        }
    }

    /// The settings.
    pub fn spec(&self) -> &FitSpec {
        &self.spec
    }

    /// Members of the ensemble.
    #[must_use]
    pub fn members(mut self, members: usize) -> Self {
        self.spec.members = members;
        self
    }

    /// Units of each hidden layer, input side first (`&[50]`: one layer of 50).
    #[must_use]
    pub fn hidden(mut self, layers: &[usize]) -> Self {
        self.spec.hidden = layers.to_vec();
        self
    }

    /// The hidden layers' activation.
    #[must_use]
    pub fn activation(mut self, activation: flock_autograd::Activation) -> Self {
        self.spec.activation = activation;
        self
    }

    /// The noise model.
    #[must_use]
    pub fn likelihood(mut self, likelihood: Likelihood) -> Self {
        self.spec.likelihood = likelihood;
        self
    }

    /// Point estimates or VI guides.
    #[must_use]
    pub fn method(mut self, method: FitMethod) -> Self {
        self.spec.method = method;
        self
    }

    /// Epochs over the training rows.
    #[must_use]
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.spec.epochs = epochs;
        self
    }

    /// Examples per step.
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.spec.batch_size = batch_size;
        self
    }

    /// Adam's (initial) learning rate.
    #[must_use]
    pub fn learning_rate(mut self, learning_rate: f64) -> Self {
        self.spec.learning_rate = learning_rate;
        self
    }

    /// How the learning rate moves over the fit.
    #[must_use]
    pub fn schedule(mut self, schedule: LearningRateSchedule) -> Self {
        self.spec.schedule = schedule;
        self
    }

    /// Weight of a standard-normal prior on the standardised weights (point estimates only).
    #[must_use]
    pub fn prior_weight(mut self, prior_weight: f64) -> Self {
        self.spec.prior_weight = prior_weight;
        self
    }

    /// Fraction of the training rows held out for per-member early stopping (0 = none).
    #[must_use]
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.spec.validation_fraction = fraction;
        self
    }

    /// How the inputs are scaled (standardised by default).
    #[must_use]
    pub fn input_scaling(mut self, scaling: InputScaling) -> Self {
        self.spec.input_scaling = scaling;
        self
    }

    /// Whether the members share one order of batches or each draws its own.
    #[must_use]
    pub fn data_order(mut self, order: DataOrder) -> Self {
        self.spec.data_order = order;
        self
    }

    /// How the networks' weights are first drawn.
    #[must_use]
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.spec.weight_init = init;
        self
    }

    /// The seed of everything random in the fit.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.spec.seed = seed;
        self
    }

    /// Threads to split the members over (default: every core). Never changes the results.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The features' names, recorded in the saved model (so `flock predict` can pick the
    /// columns by name).
    #[must_use]
    pub fn feature_names(mut self, names: Vec<String>) -> Self {
        self.feature_names = Some(names);
        self
    }

    /// Fits the ensemble to `x` (rows × features) and `y` (one target per row).
    ///
    /// ```
    /// use flock_runner::{Error, Regressor};
    /// let x = vec![[0.0], [1.0], [2.0]];
    /// assert!(matches!(Regressor::new().fit(&x, &[1.0, 2.0]), Err(Error::RowCount { .. })));
    /// assert!(matches!(
    ///     Regressor::new().fit(&x, &[1.0, f64::NAN, 0.0]),
    ///     Err(Error::NonFinite { what: "y", row: 1, .. })
    /// ));
    /// assert!(matches!(
    ///     Regressor::new().members(0).fit(&x, &[1.0, 2.0, 0.0]),
    ///     Err(Error::InvalidArgument { name: "members", .. })
    /// ));
    /// ```
    ///
    /// # Errors
    /// A typed [`Error`] naming the bad setting, shape or value.
    pub fn fit<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        y: &[T],
    ) -> Result<FittedRegressor<T>, Error> {
        match self.fit_with(x, y, FitHooks::default())? {
            FitOutcome::Fitted(model) => Ok(*model),
            FitOutcome::Paused { .. } => unreachable!("no epoch limit was given"),
        }
    }

    /// [`Regressor::fit`] with the hooks of a long fit: a training state saved after every epoch
    /// and resumed from, a limit on this call's epochs, and a progress display.
    ///
    /// # Errors
    /// As [`Regressor::fit`]; [`Error::File`] for a state file that cannot be written or read.
    pub fn fit_with<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        y: &[T],
        hooks: FitHooks<'_>,
    ) -> Result<FitOutcome<FittedRegressor<T>>, Error> {
        let spec = &self.spec;
        spec.validate()?;
        if self.threads == Some(0) {
            return Err(Error::InvalidArgument {
                name: "threads",
                value: "0".into(),
                expected: "at least one thread",
            });
        }
        let (values, features) = x.row_major()?;
        let rows = values.len() / features;
        if y.len() != rows {
            return Err(Error::RowCount {
                x_rows: rows,
                y_rows: y.len(),
            });
        }
        check_finite("x", &values, features)?;
        check_finite("y", y, 1)?;
        if rows < 2 {
            return Err(Error::TooFewRows {
                rows,
                needed: 2,
                why: "standardising the target",
            });
        }
        if y.iter().all(|&v| v == y[0]) {
            return Err(Error::ConstantTarget);
        }
        if let Some(names) = &self.feature_names
            && names.len() != features
        {
            return Err(Error::FeatureCount {
                found: names.len(),
                expected: features,
            });
        }
        if spec.likelihood.is_classification() {
            return Err(Error::InvalidArgument {
                name: "likelihood",
                value: format!("{:?}", spec.likelihood),
                expected: "a Gaussian likelihood for a regressor (a Classifier fits classes)",
            });
        }
        let norm = Normalisation::from_training(&values, features, y, spec.input_scaling);
        let largest = y.iter().map(|v| v.to_f64().abs()).fold(0.0, f64::max);
        if largest > Error::LARGEST_TARGET {
            return Err(Error::TargetScale { largest });
        }
        let (xs, ys) = (norm.standardise_x(&values), norm.standardise_y(y));
        drop(values);
        let sigma_std = match spec.likelihood {
            Likelihood::Fixed { sigma } => sigma / norm.y_std,
            _ => 1.0,
        };
        let (layout, network) = Network::new(spec, features)?;
        match train_network(
            spec,
            &network,
            &layout,
            Prepared::split(spec, xs, ys, features, sigma_std)?,
            self.threads,
            hooks,
        )? {
            Trained::Paused { steps, of } => Ok(FitOutcome::Paused { steps, of }),
            Trained::Done { result, draws } => Ok(FitOutcome::Fitted(Box::new(FittedRegressor {
                fit: FittedEnsemble::new(
                    spec.clone(),
                    norm,
                    self.feature_names.clone(),
                    network,
                    result,
                    draws,
                ),
            }))),
        }
    }
}
