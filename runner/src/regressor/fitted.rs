//! A fitted regressor: predictions, exact scores, split-conformal intervals, and its model file
//! ([`super::model_file`]).

use std::path::Path;

use flock_autograd::{Parameters, Tape};
use flock_kernels::Element;
use flock_metrics::{
    ConformalRegression, ExactScores, MixturePredictive, Sigma, conformal_quantile, exact_scores,
};

use super::data::{Features, Matrix, Normalisation, check_finite};
use super::model_file::{FittedEnsemble, read_model};
use super::network::Readout;
use super::prediction::Prediction;
use super::spec::{FitSpec, Likelihood};
use crate::checkpoint::CheckpointError;
use crate::error::Error;
use crate::map::{Divergence, EnsembleResult};

/// An ensemble fitted by [`Regressor::fit`](super::Regressor::fit): its spec, the training
/// rows' normalisation, the networks (one per member, or `S` drawn from each member's guide)
/// and the loss curves.
#[derive(Clone, Debug)]
pub struct FittedRegressor<T> {
    pub(crate) fit: FittedEnsemble<T>,
}

impl<T: Element> FittedRegressor<T> {
    /// The spec it was fitted with.
    pub fn spec(&self) -> &FitSpec {
        &self.fit.spec
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        self.fit.norm.features()
    }

    /// The features' names, when the fit was given them.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.fit.feature_names.as_deref()
    }

    /// The training rows' statistics the inputs are standardised with.
    pub fn normalisation(&self) -> &Normalisation {
        &self.fit.norm
    }

    /// The fitted parameters (standardised scale): one network per member, or with
    /// [`FitMethod::Vi`](super::FitMethod::Vi) each member's guide (`{leaf}.loc`, `{leaf}.rho`,
    /// scale `softplus(ρ)`).
    pub fn params(&self) -> &Parameters<T> {
        &self.fit.result.params
    }

    /// The networks the predictive mixes, one per component: the members' own, or with VI `S`
    /// draws from each member's guide (component `e·S + s`), drawn once from the fit's seed, so
    /// a saved and loaded model predicts the same.
    pub fn networks(&self) -> &Parameters<T> {
        self.fit.networks()
    }

    /// The fit's losses and parameters as a runner's result.
    pub fn result(&self) -> &EnsembleResult<T> {
        &self.fit.result
    }

    /// Member `e`'s training loss at every step.
    pub fn losses(&self, e: usize) -> &[T] {
        self.fit.result.member_losses(e)
    }

    /// Members that diverged during the fit (each kept at its last finite parameters).
    pub fn diverged(&self) -> &[Divergence] {
        &self.fit.result.diverged
    }

    /// The predictive mixture on the original target scale for the rows of `x`.
    ///
    /// # Errors
    /// [`Error::FeatureCount`] for rows of another width than the fit's, [`Error::NonFinite`]
    /// for a NaN or infinite input.
    pub fn predict<X: Features<T> + ?Sized>(&self, x: &X) -> Result<Prediction, Error> {
        let (xs, n) = self.fit.standardised(x)?;
        let nets = self.fit.networks();
        let fixed_sigma = match self.fit.spec.likelihood {
            Likelihood::Fixed { sigma } => sigma,
            _ => f64::NAN,
        };
        let norm = &self.fit.norm;
        let (means, sigmas) = self.fit.net.moments(
            &mut Tape::new(),
            nets,
            &xs,
            n,
            Readout::new(norm.y_mean, norm.y_std, fixed_sigma),
        )?;
        Ok(Prediction::new(MixturePredictive::new(
            &means,
            nets.members(),
            n,
            Sigma::PerComponent(sigmas),
        )?))
    }

    /// The exact scores of the predictive on `(x, y)` on the original scale: RMSE, NLL, 95 %
    /// coverage and width, CRPS, calibration error, PIT and the coverage curve.
    ///
    /// # Errors
    /// As [`FittedRegressor::predict`]; [`Error::RowCount`] for a `y` of another length.
    pub fn score<X: Features<T> + ?Sized>(&self, x: &X, y: &[T]) -> Result<ExactScores, Error> {
        let prediction = self.predict(x)?;
        let y = targets(y, prediction.len())?;
        Ok(exact_scores(prediction.mixture(), &y, None)?)
    }

    /// Calibrates split-conformal intervals on held-out rows `(x, y)` the fit never saw: their
    /// scores `|y − μ|/σ` (μ, σ the predictive's mean and std) are kept with the model, so
    /// [`FittedRegressor::conformal_interval`] gives intervals that cover a new row's target
    /// with probability at least `1 − α` for any `α`.
    ///
    /// # Errors
    /// As [`FittedRegressor::score`].
    pub fn calibrate_conformal<X: Features<T> + ?Sized>(
        &mut self,
        x: &X,
        y: &[T],
    ) -> Result<(), Error> {
        let prediction = self.predict(x)?;
        let y = targets(y, prediction.len())?;
        self.fit.conformal_scores = Some(
            prediction
                .mean()
                .iter()
                .zip(prediction.std())
                .zip(&y)
                .map(|((m, s), y)| (y - m).abs() / s)
                .collect(),
        );
        Ok(())
    }

    /// The split-conformal interval `μ ± q·σ` of each row of `x` for miscoverage `alpha`,
    /// `([N], [N])`, `q` the conformal quantile of the calibration scores.
    ///
    /// # Errors
    /// [`Error::NotCalibrated`] before [`FittedRegressor::calibrate_conformal`],
    /// [`Error::InvalidArgument`] for an `alpha` outside `(0, 1)`; as [`FittedRegressor::predict`].
    pub fn conformal_interval<X: Features<T> + ?Sized>(
        &self,
        x: &X,
        alpha: f64,
    ) -> Result<(Vec<f64>, Vec<f64>), Error> {
        let scores = self
            .fit
            .conformal_scores
            .as_deref()
            .ok_or(Error::NotCalibrated)?;
        let q = conformal_quantile(scores, alpha).map_err(|_| Error::InvalidArgument {
            name: "alpha",
            value: alpha.to_string(),
            expected: "a miscoverage strictly between 0 and 1",
        })?;
        let prediction = self.predict(x)?;
        Ok(
            ConformalRegression { quantile: q, alpha }
                .interval(prediction.mean(), prediction.std()),
        )
    }

    /// Saves the model (atomically) as the safetensors file `flock fit` writes: parameters
    /// `[E, …]` per leaf and the loss curves `losses` `[E, steps]`, with the spec, the
    /// normalisation, the feature names and any conformal calibration in the metadata.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        self.fit.save(path.as_ref())
    }

    /// The bytes [`save`](FittedRegressor::save) writes (for pickling, or storage that is not
    /// a file).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.fit.to_bytes()
    }

    /// Loads a model saved by [`FittedRegressor::save`] or `flock fit` (also files written by
    /// earlier versions), in this element type.
    ///
    /// # Errors
    /// [`Error::File`] for an unreadable, corrupt or foreign file, a classifier's, or one of the
    /// other element type ([`AnyRegressor::load`] takes either).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_model(path.as_ref(), FittedRegressor::from_checkpoint)
    }

    pub(crate) fn from_checkpoint(
        checkpoint: &crate::checkpoint::Checkpoint,
    ) -> Result<Self, CheckpointError> {
        let fit = FittedEnsemble::from_checkpoint(checkpoint)?;
        if fit.spec.likelihood.is_classification() {
            return Err(CheckpointError::Mismatch {
                reason: "a classifier's model: load it with FittedClassifier".into(),
            });
        }
        Ok(FittedRegressor { fit })
    }
}

/// `y` in f64, checked: one finite value per predicted row.
fn targets<T: Element>(y: &[T], rows: usize) -> Result<Vec<f64>, Error> {
    if y.len() != rows {
        return Err(Error::RowCount {
            x_rows: rows,
            y_rows: y.len(),
        });
    }
    check_finite("y", y, 1)?;
    Ok(y.iter().map(|v| v.to_f64()).collect())
}

/// A fitted regressor of either element type, as a model file holds it: for code (such as
/// `flock predict`) that reads files it did not write.
#[derive(Clone, Debug)]
pub enum AnyRegressor {
    /// Fitted in f32.
    F32(FittedRegressor<f32>),
    /// Fitted in f64.
    F64(FittedRegressor<f64>),
}

macro_rules! either {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            AnyRegressor::F32($m) => $body,
            AnyRegressor::F64($m) => $body,
        }
    };
}

impl AnyRegressor {
    /// Loads a model file in the element type it was saved in.
    ///
    /// # Errors
    /// As [`FittedRegressor::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_model(path.as_ref(), AnyRegressor::from_checkpoint)
    }

    pub(crate) fn from_checkpoint(
        checkpoint: &crate::checkpoint::Checkpoint,
    ) -> Result<Self, CheckpointError> {
        match checkpoint.dtype("losses") {
            Some("F32") => FittedRegressor::from_checkpoint(checkpoint).map(AnyRegressor::F32),
            _ => FittedRegressor::from_checkpoint(checkpoint).map(AnyRegressor::F64),
        }
    }

    /// The spec it was fitted with.
    pub fn spec(&self) -> &FitSpec {
        either!(self, m => m.spec())
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        either!(self, m => m.features())
    }

    /// The features' names, when the fit was given them.
    pub fn feature_names(&self) -> Option<&[String]> {
        either!(self, m => m.feature_names())
    }

    /// [`FittedRegressor::predict`] on f64 rows (rounded to f32 for an f32 model).
    ///
    /// # Errors
    /// As [`FittedRegressor::predict`].
    pub fn predict(&self, x: Matrix<'_, f64>) -> Result<Prediction, Error> {
        match self {
            AnyRegressor::F32(m) => m.predict(&to_f32(x)?.as_matrix()?),
            AnyRegressor::F64(m) => m.predict(&x),
        }
    }

    /// [`FittedRegressor::conformal_interval`] on f64 rows.
    ///
    /// # Errors
    /// As [`FittedRegressor::conformal_interval`].
    pub fn conformal_interval(
        &self,
        x: Matrix<'_, f64>,
        alpha: f64,
    ) -> Result<(Vec<f64>, Vec<f64>), Error> {
        match self {
            AnyRegressor::F32(m) => m.conformal_interval(&to_f32(x)?.as_matrix()?, alpha),
            AnyRegressor::F64(m) => m.conformal_interval(&x, alpha),
        }
    }
}

/// f64 rows rounded to f32, with their width.
pub(crate) struct Rows32 {
    values: Vec<f32>,
    features: usize,
}

impl Rows32 {
    pub(crate) fn as_matrix(&self) -> Result<Matrix<'_, f32>, Error> {
        Matrix::new(&self.values, self.features)
    }
}

pub(crate) fn to_f32(x: Matrix<'_, f64>) -> Result<Rows32, Error> {
    let (values, features) = x.row_major()?;
    Ok(Rows32 {
        values: values.iter().map(|&v| v as f32).collect(),
        features,
    })
}
