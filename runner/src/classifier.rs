//! The classification front door: fit an ensemble of classifiers to rows × features and class
//! labels, predict class probabilities with their uncertainty (predictive entropy, and the
//! members' disagreement as mutual information), score, recalibrate (temperature scaling,
//! conformal prediction sets), save and load.
//!
//! ```
//! use flock_runner::Classifier;
//! // Two noisy blobs.
//! let x: Vec<[f64; 2]> = (0..300).map(|i| {
//!     let (c, t) = ((i % 2) as f64, i as f64 * 0.7);
//!     [2.0 * c + 0.6 * t.sin(), 1.0 - c + 0.6 * t.cos()]
//! }).collect();
//! let y: Vec<usize> = (0..300).map(|i| i % 2).collect();
//! let model = Classifier::new().members(5).epochs(40).seed(0).fit(&x, &y)?;
//! let p = model.predict_proba(&[[0.0, 1.0], [2.0, 0.0]])?;
//! assert_eq!(p.predicted(), vec![0, 1]);
//! println!("{:?}, entropy {:?}", p.probs(), p.entropy());
//! # Ok::<(), flock_runner::Error>(())
//! ```
//!
//! A [`Classifier`] is the [`Regressor`](crate::Regressor)'s builder with a categorical
//! likelihood (`K` logits; or [`Likelihood::Bernoulli`]'s one logit for two classes): the same
//! recipe defaults, the same training loop, point estimates or VI guides, f32 or f64.

use std::path::Path;

use flock_ensemble::{SeedStream, member_rng};
use flock_kernels::Element;
use flock_metrics::{
    ClassPredictive, ClassScores, ConformalClassifier, aps_scores, class_scores,
    conformal_quantile, fit_temperature,
};
use rand::RngExt;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::error::Error;
use crate::map::{Divergence, EnsembleResult};
use crate::regressor::{
    DataOrder, Features, FitHooks, FitMethod, FitOutcome, FitSpec, InputScaling,
    LearningRateSchedule, Likelihood, Matrix, Normalisation, WeightInit,
};
use crate::regressor::{FittedEnsemble, Network, Prepared, Trained, read_model, train_network};
use crate::regressor::{Rows32, check_finite, to_f32};

/// An ensemble classifier to fit: [`FitSpec`]'s recipe (flock's best measured by default) with
/// a categorical likelihood over the classes the labels name. Generic over `f64` and `f32`.
#[derive(Clone, Debug)]
pub struct Classifier<T = f64> {
    spec: FitSpec,
    threads: Option<usize>,
    feature_names: Option<Vec<String>>,
    class_names: Option<Vec<String>>,
    classes: Option<usize>,
    _element: core::marker::PhantomData<T>,
}

impl<T: Element> Default for Classifier<T> {
    fn default() -> Self {
        Classifier::new()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $field:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.spec.$field = value;
                self
            }
        )*
    };
}

impl<T: Element> Classifier<T> {
    /// flock's classification recipe ([`FitSpec::classification`]) with a categorical
    /// likelihood; every core.
    pub fn new() -> Self {
        Classifier::from_spec(FitSpec::classification())
    }

    /// The classifier `spec` describes (its likelihood is made categorical at the fit, over the
    /// classes the labels have, unless it is [`Likelihood::Bernoulli`]).
    pub fn from_spec(spec: FitSpec) -> Self {
        Classifier {
            spec,
            threads: None,
            feature_names: None,
            class_names: None,
            classes: None,
            _element: core::marker::PhantomData,
        }
    }

    /// The settings.
    pub fn spec(&self) -> &FitSpec {
        &self.spec
    }

    setters! {
        /// Members of the ensemble.
        members: usize => members,
        /// The hidden layers' activation.
        activation: flock_autograd::Activation => activation,
        /// Point estimates or VI guides.
        method: FitMethod => method,
        /// Epochs over the training rows.
        epochs: usize => epochs,
        /// Examples per step.
        batch_size: usize => batch_size,
        /// Adam's (initial) learning rate.
        learning_rate: f64 => learning_rate,
        /// How the learning rate moves over the fit.
        schedule: LearningRateSchedule => schedule,
        /// Weight of a standard-normal prior on the standardised weights (point estimates).
        prior_weight: f64 => prior_weight,
        /// Fraction of the training rows held out for per-member early stopping (0 = none).
        validation_fraction: f64 => validation_fraction,
        /// The seed of everything random in the fit.
        seed: u64 => seed,
        /// How the inputs are scaled (standardised by default; as given for pixels).
        input_scaling: InputScaling => input_scaling,
        /// Whether the members share one order of batches or each draws its own.
        data_order: DataOrder => data_order,
        /// How the networks' weights are first drawn.
        weight_init: WeightInit => weight_init,
    }

    /// Units of each hidden layer, input side first.
    #[must_use]
    pub fn hidden(mut self, layers: &[usize]) -> Self {
        self.spec.hidden = layers.to_vec();
        self
    }

    /// Two classes with one logit each row (`Bernoulli(σ(z))`) instead of two.
    #[must_use]
    pub fn binary_logit(mut self) -> Self {
        self.spec.likelihood = Likelihood::Bernoulli;
        self
    }

    /// Threads to split the members over (default: every core). Never changes the results.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The features' names, recorded in the saved model.
    #[must_use]
    pub fn feature_names(mut self, names: Vec<String>) -> Self {
        self.feature_names = Some(names);
        self
    }

    /// The classes' names (label `k` is `names[k]`); their number is the number of classes.
    #[must_use]
    pub fn class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = Some(names);
        self
    }

    /// The number of classes, when the training labels do not show every class.
    #[must_use]
    pub fn classes(mut self, classes: usize) -> Self {
        self.classes = Some(classes);
        self
    }

    /// Fits the ensemble to `x` (rows × features) and `labels` (a class index per row).
    ///
    /// ```
    /// use flock_runner::{Classifier, Error};
    /// let x = vec![[0.0], [1.0], [2.0]];
    /// assert!(matches!(Classifier::new().fit(&x, &[0, 0, 0]), Err(Error::SingleClass { .. })));
    /// let named = Classifier::new().class_names(vec!["a".into(), "b".into()]);
    /// assert!(matches!(named.fit(&x, &[0, 2, 1]), Err(Error::Label { row: 1, .. })));
    /// ```
    ///
    /// # Errors
    /// A typed [`Error`] naming the bad setting, shape, row or label.
    pub fn fit<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        labels: &[usize],
    ) -> Result<FittedClassifier<T>, Error> {
        match self.fit_with(x, labels, FitHooks::default())? {
            FitOutcome::Fitted(model) => Ok(*model),
            FitOutcome::Paused { .. } => unreachable!("no epoch limit was given"),
        }
    }

    /// [`Classifier::fit`] with the hooks of a long fit (state file, resume, progress).
    ///
    /// # Errors
    /// As [`Classifier::fit`]; [`Error::File`] for a state file that cannot be written or read.
    pub fn fit_with<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        labels: &[usize],
        hooks: FitHooks<'_>,
    ) -> Result<FitOutcome<FittedClassifier<T>>, Error> {
        if self.threads == Some(0) {
            return Err(Error::InvalidArgument {
                name: "threads",
                value: "0".into(),
                expected: "at least one thread",
            });
        }
        let (values, features) = x.row_major()?;
        let rows = values.len() / features;
        if labels.len() != rows {
            return Err(Error::RowCount {
                x_rows: rows,
                y_rows: labels.len(),
            });
        }
        check_finite("x", &values, features)?;
        let classes = match (&self.class_names, self.classes) {
            (Some(names), _) => names.len(),
            (None, Some(k)) => k,
            (None, None) => labels.iter().max().map_or(0, |&m| m + 1),
        };
        let mut spec = self.spec.clone();
        if spec.likelihood != Likelihood::Bernoulli {
            spec.likelihood = Likelihood::Categorical {
                classes: classes.max(2),
            };
        }
        let classes = spec.likelihood.classes().unwrap_or(2);
        if let Some((row, &label)) = labels.iter().enumerate().find(|(_, y)| **y >= classes) {
            return Err(Error::Label {
                row,
                label,
                classes,
            });
        }
        if let Some(&first) = labels.first()
            && labels.iter().all(|&y| y == first)
        {
            return Err(Error::SingleClass { label: first });
        }
        spec.validate()?;
        if let Some(names) = &self.feature_names
            && names.len() != features
        {
            return Err(Error::FeatureCount {
                found: names.len(),
                expected: features,
            });
        }
        let (x_mean, x_std) = Normalisation::inputs(&values, features, spec.input_scaling);
        let norm = Normalisation {
            x_mean,
            x_std,
            y_mean: 0.0,
            y_std: 1.0,
        };
        let xs = norm.standardise_x(&values);
        drop(values);
        let ys: Vec<T> = labels.iter().map(|&y| T::from_usize(y)).collect();
        let (layout, network) = Network::new(&spec, features)?;
        match train_network(
            &spec,
            &network,
            &layout,
            Prepared::split(&spec, xs, ys, features, 1.0)?,
            self.threads,
            hooks,
        )? {
            Trained::Paused { steps, of } => Ok(FitOutcome::Paused { steps, of }),
            Trained::Done { result, draws } => {
                let mut fit = FittedEnsemble::new(
                    spec,
                    norm,
                    self.feature_names.clone(),
                    network,
                    result,
                    draws,
                );
                fit.class_names = self.class_names.clone();
                Ok(FitOutcome::Fitted(Box::new(FittedClassifier { fit })))
            }
        }
    }
}

/// What a fitted classifier predicts at `N` rows: each network's class probabilities and their
/// mixture, with the uncertainty decomposition ([`ClassPredictive`]).
#[derive(Clone, Debug)]
pub struct ClassPrediction {
    predictive: ClassPredictive,
    class_names: Option<Vec<String>>,
}

impl ClassPrediction {
    /// Rows predicted.
    pub fn len(&self) -> usize {
        self.predictive.points()
    }

    /// Whether no row was predicted (never, for a prediction made by a model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Classes `K`.
    pub fn classes(&self) -> usize {
        self.predictive.classes()
    }

    /// The mixture's class probabilities `[N, K]`, row-major.
    pub fn probs(&self) -> &[f64] {
        self.predictive.probs()
    }

    /// The most probable class of each row.
    pub fn predicted(&self) -> Vec<usize> {
        self.predictive.predicted()
    }

    /// The most probable class of each row by name (its index when the model has no names).
    pub fn predicted_names(&self) -> Vec<String> {
        self.predicted()
            .into_iter()
            .map(|k| match &self.class_names {
                Some(names) => names[k].clone(),
                None => k.to_string(),
            })
            .collect()
    }

    /// The predictive entropy of each row (nats): total uncertainty.
    pub fn entropy(&self) -> Vec<f64> {
        self.predictive.entropy()
    }

    /// The networks' mean entropy: the aleatoric part.
    pub fn expected_entropy(&self) -> Vec<f64> {
        self.predictive.expected_entropy()
    }

    /// The mutual information (entropy − expected entropy): the members' disagreement, the
    /// epistemic part — what rises on inputs unlike the training data.
    pub fn mutual_information(&self) -> Vec<f64> {
        self.predictive.mutual_information()
    }

    /// The predictive itself (member probabilities, subsets of members, scores).
    pub fn predictive(&self) -> &ClassPredictive {
        &self.predictive
    }
}

/// An ensemble fitted by [`Classifier::fit`].
#[derive(Clone, Debug)]
pub struct FittedClassifier<T> {
    fit: FittedEnsemble<T>,
}

impl<T: Element> FittedClassifier<T> {
    /// The spec it was fitted with (its likelihood names the classes).
    pub fn spec(&self) -> &FitSpec {
        &self.fit.spec
    }

    /// Classes `K`.
    pub fn classes(&self) -> usize {
        self.fit.spec.likelihood.classes().unwrap_or(2)
    }

    /// The classes' names, when the fit was given them.
    pub fn class_names(&self) -> Option<&[String]> {
        self.fit.class_names.as_deref()
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        self.fit.norm.features()
    }

    /// The features' names, when the fit was given them.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.fit.feature_names.as_deref()
    }

    /// The networks the predictive mixes.
    pub fn networks(&self) -> &flock_autograd::Parameters<T> {
        self.fit.networks()
    }

    /// The fit's losses and parameters as a runner's result.
    pub fn result(&self) -> &EnsembleResult<T> {
        &self.fit.result
    }

    /// Members that diverged during the fit.
    pub fn diverged(&self) -> &[Divergence] {
        &self.fit.result.diverged
    }

    /// The temperature its logits are divided by (1 until [`FittedClassifier::calibrate_temperature`]).
    pub fn temperature(&self) -> f64 {
        self.fit.temperature
    }

    /// Class probabilities at the rows of `x`: every network's and their mixture.
    ///
    /// # Errors
    /// [`Error::FeatureCount`] for rows of another width, [`Error::NonFinite`] for a NaN input.
    pub fn predict_proba<X: Features<T> + ?Sized>(&self, x: &X) -> Result<ClassPrediction, Error> {
        let (probs, n) = self.fit.class_probs(x)?;
        Ok(ClassPrediction {
            predictive: ClassPredictive::new(
                &probs,
                self.fit.networks().members(),
                n,
                self.classes(),
            )?,
            class_names: self.fit.class_names.clone(),
        })
    }

    /// The most probable class of each row of `x`.
    ///
    /// # Errors
    /// As [`FittedClassifier::predict_proba`].
    pub fn predict<X: Features<T> + ?Sized>(&self, x: &X) -> Result<Vec<usize>, Error> {
        Ok(self.predict_proba(x)?.predicted())
    }

    /// Accuracy, NLL, Brier score and the calibration errors (ECE, adaptive, classwise) on
    /// `(x, labels)`.
    ///
    /// # Errors
    /// As [`FittedClassifier::predict_proba`]; [`Error::Label`] for a label past the classes.
    pub fn score<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        labels: &[usize],
    ) -> Result<ClassScores, Error> {
        let p = self.predict_proba(x)?;
        self.check_labels(labels, p.len())?;
        Ok(class_scores(&p.predictive, labels)?)
    }

    fn check_labels(&self, labels: &[usize], rows: usize) -> Result<(), Error> {
        if labels.len() != rows {
            return Err(Error::RowCount {
                x_rows: rows,
                y_rows: labels.len(),
            });
        }
        let classes = self.classes();
        match labels.iter().enumerate().find(|(_, y)| **y >= classes) {
            Some((row, &label)) => Err(Error::Label {
                row,
                label,
                classes,
            }),
            None => Ok(()),
        }
    }

    /// Temperature scaling on held-out rows the fit never saw: the `T` (in `[0.05, 20]`) that
    /// minimises the NLL of the mixture of the members' `softmax(z/T)`; kept with the model and
    /// used by every later prediction. Returns it.
    ///
    /// # Errors
    /// As [`FittedClassifier::score`].
    pub fn calibrate_temperature<X: Features<T> + ?Sized>(
        &mut self,
        x: &X,
        labels: &[usize],
    ) -> Result<f64, Error> {
        let saved = self.fit.temperature;
        self.fit.temperature = 1.0;
        let probs = self.fit.class_probs(x);
        self.fit.temperature = saved;
        let (probs, n) = probs?;
        self.check_labels(labels, n)?;
        // Log-probabilities at T = 1 are the logits up to a per-row constant, which the softmax
        // ignores.
        let logits: Vec<f64> = probs
            .iter()
            .map(|p| p.max(f64::MIN_POSITIVE).ln())
            .collect();
        let t = fit_temperature(
            &logits,
            self.fit.networks().members(),
            n,
            self.classes(),
            labels,
        )?;
        self.fit.temperature = t;
        Ok(t)
    }

    /// Calibrates conformal prediction sets on held-out rows the fit never saw: their
    /// randomised APS scores are kept with the model, so [`FittedClassifier::prediction_sets`]
    /// holds the true class with probability at least `1 − α` for any `α`.
    ///
    /// # Errors
    /// As [`FittedClassifier::score`].
    pub fn calibrate_conformal<X: Features<T> + ?Sized>(
        &mut self,
        x: &X,
        labels: &[usize],
    ) -> Result<(), Error> {
        let p = self.predict_proba(x)?;
        self.check_labels(labels, p.len())?;
        let uniforms = uniforms(
            SeedStream::ConformalCalibration,
            self.fit.spec.seed,
            p.len(),
        );
        // The scores themselves are what the threshold is a quantile of: keep them all.
        self.fit.conformal_scores = Some(aps_scores(p.probs(), self.classes(), labels, &uniforms)?);
        Ok(())
    }

    /// The conformal prediction set of each row of `x` for miscoverage `alpha`: classes in
    /// order of decreasing probability.
    ///
    /// # Errors
    /// [`Error::NotCalibrated`] before [`FittedClassifier::calibrate_conformal`],
    /// [`Error::InvalidArgument`] for an `alpha` outside `(0, 1)`; as [`FittedClassifier::predict_proba`].
    pub fn prediction_sets<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        alpha: f64,
    ) -> Result<Vec<Vec<usize>>, Error> {
        let scores = self
            .fit
            .conformal_scores
            .as_deref()
            .ok_or(Error::NotCalibrated)?;
        let quantile = conformal_quantile(scores, alpha).map_err(|_| Error::InvalidArgument {
            name: "alpha",
            value: alpha.to_string(),
            expected: "a miscoverage strictly between 0 and 1",
        })?;
        let p = self.predict_proba(x)?;
        let uniforms = uniforms(SeedStream::ConformalSets, self.fit.spec.seed, p.len());
        Ok(ConformalClassifier { quantile, alpha }.sets(p.probs(), self.classes(), &uniforms)?)
    }

    /// Saves the model (atomically): the file `flock fit --task classify` writes, with the class
    /// names, temperature and conformal calibration.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        self.fit.save(path.as_ref())
    }

    /// The bytes [`save`](FittedClassifier::save) writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.fit.to_bytes()
    }

    /// Loads a classifier saved by [`FittedClassifier::save`], in this element type.
    ///
    /// # Errors
    /// [`Error::File`] for an unreadable, corrupt or foreign file, a regressor's, or one of the
    /// other element type ([`AnyClassifier::load`] takes either).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_model(path.as_ref(), FittedClassifier::from_checkpoint)
    }

    pub(crate) fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self, CheckpointError> {
        let fit = FittedEnsemble::from_checkpoint(checkpoint)?;
        if !fit.spec.likelihood.is_classification() {
            return Err(CheckpointError::Mismatch {
                reason: "a regressor's model: load it with FittedRegressor".into(),
            });
        }
        Ok(FittedClassifier { fit })
    }
}

/// `n` uniforms on `[0, 1)` from the stream `stream` of `seed`.
fn uniforms(stream: SeedStream, seed: u64, n: usize) -> Vec<f64> {
    let mut rng = member_rng(stream.seed(seed), 0);
    (0..n).map(|_| rng.random_range(0.0..1.0)).collect()
}

/// A fitted classifier of either element type, as a model file holds it.
#[derive(Clone, Debug)]
pub enum AnyClassifier {
    /// Fitted in f32.
    F32(FittedClassifier<f32>),
    /// Fitted in f64.
    F64(FittedClassifier<f64>),
}

macro_rules! either {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            AnyClassifier::F32($m) => $body,
            AnyClassifier::F64($m) => $body,
        }
    };
}

impl AnyClassifier {
    /// Loads a classifier's model file in the element type it was saved in.
    ///
    /// # Errors
    /// As [`FittedClassifier::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_model(path.as_ref(), AnyClassifier::from_checkpoint)
    }

    pub(crate) fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self, CheckpointError> {
        match checkpoint.dtype("losses") {
            Some("F32") => FittedClassifier::from_checkpoint(checkpoint).map(AnyClassifier::F32),
            _ => FittedClassifier::from_checkpoint(checkpoint).map(AnyClassifier::F64),
        }
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        either!(self, m => m.features())
    }

    /// The features' names.
    pub fn feature_names(&self) -> Option<&[String]> {
        either!(self, m => m.feature_names())
    }

    /// Classes `K`.
    pub fn classes(&self) -> usize {
        either!(self, m => m.classes())
    }

    /// The classes' names.
    pub fn class_names(&self) -> Option<&[String]> {
        either!(self, m => m.class_names())
    }

    /// [`FittedClassifier::predict_proba`] on f64 rows.
    ///
    /// # Errors
    /// As [`FittedClassifier::predict_proba`].
    pub fn predict_proba(&self, x: Matrix<'_, f64>) -> Result<ClassPrediction, Error> {
        match self {
            AnyClassifier::F32(m) => m.predict_proba(&rows32(x)?.as_matrix()?),
            AnyClassifier::F64(m) => m.predict_proba(&x),
        }
    }

    /// [`FittedClassifier::prediction_sets`] on f64 rows.
    ///
    /// # Errors
    /// As [`FittedClassifier::prediction_sets`].
    pub fn prediction_sets(
        &self,
        x: Matrix<'_, f64>,
        alpha: f64,
    ) -> Result<Vec<Vec<usize>>, Error> {
        match self {
            AnyClassifier::F32(m) => m.prediction_sets(&rows32(x)?.as_matrix()?, alpha),
            AnyClassifier::F64(m) => m.prediction_sets(&x, alpha),
        }
    }
}

fn rows32(x: Matrix<'_, f64>) -> Result<Rows32, Error> {
    to_f32(x)
}
