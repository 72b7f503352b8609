//! A fitted regressor: predictions, scores, and its model file (safetensors: one tensor per
//! parameter leaf `[E, …]` and the loss curves; the spec, the normalisation and the feature
//! names as JSON in the metadata entry `flock_fit`).

use std::path::Path;

use flock_autograd::{Parameters, Tape};
use flock_kernels::Element;
use flock_metrics::{ExactScores, MixturePredictive, Sigma, exact_scores};
use serde::{Deserialize, Serialize};

use super::data::{Features, Matrix, Normalisation, check_finite};
use super::network::{Network, Readout};
use super::prediction::Prediction;
use super::spec::{FitMethod, FitSpec, Likelihood};
use super::variational::{guide_draws, guide_layout};
use crate::checkpoint::{Checkpoint, CheckpointError, save_result};
use crate::error::Error;
use crate::map::{Divergence, EnsembleResult};

/// The metadata entry of a model file that holds [`ModelRecord`]'s JSON.
const METADATA_KEY: &str = "flock_fit";

/// What a model file says besides its tensors.
#[derive(Serialize, Deserialize)]
struct ModelRecord {
    #[serde(flatten)]
    spec: FitSpec,
    #[serde(flatten)]
    norm: Normalisation,
    /// Written since models record their features' names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feature_names: Option<Vec<String>>,
}

/// An ensemble fitted by [`Regressor::fit`](super::Regressor::fit): its spec, the training
/// rows' normalisation, the networks (one per member, or `S` drawn from each member's guide)
/// and the loss curves.
#[derive(Clone, Debug)]
pub struct FittedRegressor<T> {
    spec: FitSpec,
    norm: Normalisation,
    feature_names: Option<Vec<String>>,
    net: Network,
    pub(super) result: EnsembleResult<T>,
    /// With [`FitMethod::Vi`]: the networks drawn from the guides, which the predictive mixes.
    draws: Option<Parameters<T>>,
}

impl<T: Element> FittedRegressor<T> {
    pub(super) fn new(
        spec: FitSpec,
        norm: Normalisation,
        feature_names: Option<Vec<String>>,
        net: Network,
        result: EnsembleResult<T>,
        draws: Option<Parameters<T>>,
    ) -> Self {
        FittedRegressor {
            spec,
            norm,
            feature_names,
            net,
            result,
            draws,
        }
    }

    /// The spec it was fitted with.
    pub fn spec(&self) -> &FitSpec {
        &self.spec
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        self.norm.features()
    }

    /// The features' names, when the fit was given them.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    /// The training rows' statistics the inputs are standardised with.
    pub fn normalisation(&self) -> &Normalisation {
        &self.norm
    }

    /// The fitted parameters (standardised scale): one network per member, or with
    /// [`FitMethod::Vi`] each member's guide (`{leaf}.loc`, `{leaf}.rho`, scale `softplus(ρ)`).
    pub fn params(&self) -> &Parameters<T> {
        &self.result.params
    }

    /// The networks the predictive mixes, one per component: the members' own, or with
    /// [`FitMethod::Vi`] `S` draws from each member's guide (component `e·S + s`), drawn once
    /// from the fit's seed, so a saved and loaded model predicts the same.
    pub fn networks(&self) -> &Parameters<T> {
        self.draws.as_ref().unwrap_or(&self.result.params)
    }

    /// Member `e`'s training loss at every step.
    pub fn losses(&self, e: usize) -> &[T] {
        self.result.member_losses(e)
    }

    /// Members that diverged during the fit (each kept at its last finite parameters).
    pub fn diverged(&self) -> &[Divergence] {
        &self.result.diverged
    }

    /// The predictive mixture on the original target scale for the rows of `x`.
    ///
    /// # Errors
    /// [`Error::FeatureCount`] for rows of another width than the fit's, [`Error::NonFinite`]
    /// for a NaN or infinite input.
    pub fn predict<X: Features<T> + ?Sized>(&self, x: &X) -> Result<Prediction, Error> {
        let (values, features) = x.row_major()?;
        if features != self.features() {
            return Err(Error::FeatureCount {
                found: features,
                expected: self.features(),
            });
        }
        check_finite("x", &values, features)?;
        let n = values.len() / features;
        let xs = self.norm.standardise_x(&values);
        let nets = self.networks();
        let fixed_sigma = match self.spec.likelihood {
            Likelihood::Fixed { sigma } => sigma,
            _ => f64::NAN,
        };
        let (means, sigmas) = self.net.moments(
            &mut Tape::new(),
            nets,
            &xs,
            n,
            Readout::new(self.norm.y_mean, self.norm.y_std, fixed_sigma),
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
        if y.len() != prediction.len() {
            return Err(Error::RowCount {
                x_rows: prediction.len(),
                y_rows: y.len(),
            });
        }
        check_finite("y", y, 1)?;
        let y: Vec<f64> = y.iter().map(|v| v.to_f64()).collect();
        Ok(exact_scores(prediction.mixture(), &y, None)?)
    }

    /// Saves the model (atomically) as the safetensors file `flock fit` writes: parameters
    /// `[E, …]` per leaf and the loss curves `losses` `[E, steps]`, with the spec, the
    /// normalisation and the feature names in the metadata.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let record = ModelRecord {
            spec: self.spec.clone(),
            norm: self.norm.clone(),
            feature_names: self.feature_names.clone(),
        };
        let text = serde_json::to_string(&record).expect("a model record is plain JSON");
        save_result(path, &self.result, &[(METADATA_KEY, &text)]).map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        })
    }

    /// Loads a model saved by [`FittedRegressor::save`] or `flock fit` (also files written by
    /// earlier versions), in this element type.
    ///
    /// # Errors
    /// [`Error::File`] for an unreadable, corrupt or foreign file, or one of the other element
    /// type ([`AnyRegressor::load`] takes either).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_model(path.as_ref(), FittedRegressor::from_checkpoint)
    }

    fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self, CheckpointError> {
        let bad = |what: String| CheckpointError::Mismatch {
            reason: format!("not a `flock fit` model ({what})"),
        };
        let text = checkpoint
            .metadata(METADATA_KEY)
            .ok_or_else(|| bad("no fit metadata".into()))?;
        let record: ModelRecord = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let ModelRecord {
            spec,
            norm,
            feature_names,
        } = record;
        let features = norm.features();
        if features == 0 || norm.x_std.len() != features {
            return Err(bad("normalisation".into()));
        }
        if feature_names.as_ref().is_some_and(|n| n.len() != features) {
            return Err(bad("feature names".into()));
        }
        let (layout, net) = Network::new(&spec, features).map_err(|e| bad(e.to_string()))?;
        let (result, draws) = match spec.method {
            FitMethod::Map => (checkpoint.result::<T>(&layout)?, None),
            FitMethod::Vi(vi) => {
                let (guide, _) =
                    guide_layout(&layout, vi.guide()).map_err(|e| bad(e.to_string()))?;
                let result = checkpoint.result::<T>(&guide)?;
                let draws =
                    guide_draws(&result.params, &layout, vi.guide(), vi.samples, spec.seed)?;
                (result, Some(draws))
            }
        };
        if result.params.members() != spec.members {
            return Err(bad(format!(
                "{} members saved, the spec says {}",
                result.params.members(),
                spec.members
            )));
        }
        Ok(FittedRegressor {
            spec,
            norm,
            feature_names,
            net,
            result,
            draws,
        })
    }
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

impl AnyRegressor {
    /// Loads a model file in the element type it was saved in.
    ///
    /// # Errors
    /// As [`FittedRegressor::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_model(path.as_ref(), |checkpoint| {
            match checkpoint.dtype("losses") {
                Some("F32") => FittedRegressor::from_checkpoint(checkpoint).map(AnyRegressor::F32),
                _ => FittedRegressor::from_checkpoint(checkpoint).map(AnyRegressor::F64),
            }
        })
    }

    /// The spec it was fitted with.
    pub fn spec(&self) -> &FitSpec {
        match self {
            AnyRegressor::F32(m) => m.spec(),
            AnyRegressor::F64(m) => m.spec(),
        }
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        match self {
            AnyRegressor::F32(m) => m.features(),
            AnyRegressor::F64(m) => m.features(),
        }
    }

    /// The features' names, when the fit was given them.
    pub fn feature_names(&self) -> Option<&[String]> {
        match self {
            AnyRegressor::F32(m) => m.feature_names(),
            AnyRegressor::F64(m) => m.feature_names(),
        }
    }

    /// [`FittedRegressor::predict`] on f64 rows (rounded to f32 for an f32 model).
    ///
    /// # Errors
    /// As [`FittedRegressor::predict`].
    pub fn predict(&self, x: Matrix<'_, f64>) -> Result<Prediction, Error> {
        match self {
            AnyRegressor::F32(m) => {
                let (values, features) = x.row_major()?;
                let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                m.predict(&Matrix::new(&values, features)?)
            }
            AnyRegressor::F64(m) => m.predict(&x),
        }
    }
}

/// Reads the model file `path` and makes a model of it with `make`, either error naming the file.
fn read_model<M>(
    path: &Path,
    make: impl FnOnce(&Checkpoint) -> Result<M, CheckpointError>,
) -> Result<M, Error> {
    let file_error = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    make(&Checkpoint::read(path).map_err(file_error)?).map_err(file_error)
}
