//! What every fitted ensemble holds — spec, normalisation, names, the network and its fitted
//! parameters, VI draws, calibration — and its model file: safetensors with one tensor per
//! parameter leaf `[E, …]` and the loss curves `losses` `[E, steps]`, and the rest as JSON in the
//! metadata entry `flock_fit`. One writer and one reader for regressors and classifiers.

use std::path::Path;

use flock_autograd::{Parameters, Tape};
use flock_kernels::Element;
use serde::{Deserialize, Serialize};

use super::data::{Features, Normalisation, check_finite};
use super::network::Network;
use super::spec::{FitMethod, FitSpec};
use super::variational::{guide_draws, guide_layout};
use crate::checkpoint::{Checkpoint, CheckpointError, result_bytes};
use crate::error::Error;
use crate::files::write_atomically;
use crate::map::EnsembleResult;

/// The metadata entry of a model file that holds [`ModelRecord`]'s JSON.
const METADATA_KEY: &str = "flock_fit";

/// What a model file says besides its tensors. Fields added over time are optional, so older
/// files still read.
#[derive(Serialize, Deserialize)]
struct ModelRecord {
    #[serde(flatten)]
    spec: FitSpec,
    #[serde(flatten)]
    norm: Normalisation,
    /// Written since models record their features' names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feature_names: Option<Vec<String>>,
    /// A classifier's class names (label `k` is `class_names[k]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    class_names: Option<Vec<String>>,
    /// A classifier's fitted temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    /// Split-conformal calibration scores (normalised residuals, or APS scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conformal_scores: Option<Vec<f64>>,
}

/// A fitted ensemble, whatever its task.
#[derive(Clone, Debug)]
pub(crate) struct FittedEnsemble<T> {
    pub(crate) spec: FitSpec,
    pub(crate) norm: Normalisation,
    pub(crate) feature_names: Option<Vec<String>>,
    pub(crate) class_names: Option<Vec<String>>,
    pub(crate) temperature: f64,
    pub(crate) conformal_scores: Option<Vec<f64>>,
    pub(crate) net: Network,
    pub(crate) result: EnsembleResult<T>,
    /// With [`FitMethod::Vi`]: the networks drawn from the guides, which the predictive mixes.
    pub(crate) draws: Option<Parameters<T>>,
}

impl<T: Element> FittedEnsemble<T> {
    pub(crate) fn new(
        spec: FitSpec,
        norm: Normalisation,
        feature_names: Option<Vec<String>>,
        net: Network,
        result: EnsembleResult<T>,
        draws: Option<Parameters<T>>,
    ) -> Self {
        FittedEnsemble {
            spec,
            norm,
            feature_names,
            class_names: None,
            temperature: 1.0,
            conformal_scores: None,
            net,
            result,
            draws,
        }
    }

    /// The networks the predictive mixes: the members', or `S` draws from each member's guide.
    pub(crate) fn networks(&self) -> &Parameters<T> {
        self.draws.as_ref().unwrap_or(&self.result.params)
    }

    /// The rows of `x`, checked against the fit's features and standardised, and their count.
    pub(crate) fn standardised<X: Features<T> + ?Sized>(
        &self,
        x: &X,
    ) -> Result<(Vec<T>, usize), Error> {
        let (values, features) = x.row_major()?;
        if features != self.norm.features() {
            return Err(Error::FeatureCount {
                found: features,
                expected: self.norm.features(),
            });
        }
        check_finite("x", &values, features)?;
        Ok((self.norm.standardise_x(&values), values.len() / features))
    }

    /// A classifier's member probabilities `[M·N·K]` at the rows of `x` (with its temperature).
    pub(crate) fn class_probs<X: Features<T> + ?Sized>(
        &self,
        x: &X,
    ) -> Result<(Vec<f64>, usize), Error> {
        let (xs, n) = self.standardised(x)?;
        let probs =
            self.net
                .class_probs(&mut Tape::new(), self.networks(), &xs, n, self.temperature)?;
        Ok((probs, n))
    }

    /// Saves the ensemble (atomically) as a model file.
    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        write_atomically(path, &self.to_bytes()).map_err(|source| Error::File {
            path: path.to_owned(),
            source: CheckpointError::Io(source),
        })
    }

    /// The model file's bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let record = ModelRecord {
            spec: self.spec.clone(),
            norm: self.norm.clone(),
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
            temperature: (self.temperature != 1.0).then_some(self.temperature),
            conformal_scores: self.conformal_scores.clone(),
        };
        let text = serde_json::to_string(&record).expect("a model record is plain JSON");
        result_bytes(&self.result, &[(METADATA_KEY, &text)])
    }

    /// The ensemble a model file holds, in this element type.
    pub(crate) fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self, CheckpointError> {
        let ModelRecord {
            spec,
            norm,
            feature_names,
            class_names,
            temperature,
            conformal_scores,
        } = record(checkpoint)?;
        spec.validate().map_err(|e| not_a_model(e.to_string()))?;
        let features = norm.features();
        if features == 0 || norm.x_std.len() != features {
            return Err(not_a_model("normalisation".into()));
        }
        if feature_names.as_ref().is_some_and(|n| n.len() != features) {
            return Err(not_a_model("feature names".into()));
        }
        if let Some(names) = &class_names
            && Some(names.len()) != spec.likelihood.classes()
        {
            return Err(not_a_model("class names".into()));
        }
        let (layout, net) =
            Network::new(&spec, features).map_err(|e| not_a_model(e.to_string()))?;
        let (result, draws) = match spec.method {
            FitMethod::Map => (checkpoint.result::<T>(&layout)?, None),
            FitMethod::Vi(vi) => {
                let (guide, _) =
                    guide_layout(&layout, vi.guide()).map_err(|e| not_a_model(e.to_string()))?;
                let result = checkpoint.result::<T>(&guide)?;
                let draws =
                    guide_draws(&result.params, &layout, vi.guide(), vi.samples, spec.seed)?;
                (result, Some(draws))
            }
        };
        if result.params.members() != spec.members {
            return Err(not_a_model(format!(
                "{} members saved, the spec says {}",
                result.params.members(),
                spec.members
            )));
        }
        Ok(FittedEnsemble {
            spec,
            norm,
            feature_names,
            class_names,
            temperature: temperature.unwrap_or(1.0),
            conformal_scores,
            net,
            result,
            draws,
        })
    }
}

fn not_a_model(what: String) -> CheckpointError {
    CheckpointError::Mismatch {
        reason: format!("not a `flock fit` model ({what})"),
    }
}

/// The record of a model file.
fn record(checkpoint: &Checkpoint) -> Result<ModelRecord, CheckpointError> {
    let text = checkpoint
        .metadata(METADATA_KEY)
        .ok_or_else(|| not_a_model("no fit metadata".into()))?;
    serde_json::from_str(text).map_err(|e| not_a_model(e.to_string()))
}

/// The spec a model file was fitted with (to tell a classifier from a regressor before loading).
pub(crate) fn stored_spec(checkpoint: &Checkpoint) -> Result<FitSpec, CheckpointError> {
    Ok(record(checkpoint)?.spec)
}

/// Makes a model of a model file's bytes (as [`FittedEnsemble::to_bytes`] gives them) with
/// `make`.
pub(crate) fn model_from_bytes<M>(
    bytes: &[u8],
    make: impl FnOnce(&Checkpoint) -> Result<M, CheckpointError>,
) -> Result<M, Error> {
    make(&Checkpoint::from_bytes(bytes)?).map_err(Error::Checkpoint)
}

/// Reads the model file `path` and makes a model of it with `make`, either error naming the file.
pub(crate) fn read_model<M>(
    path: &Path,
    make: impl FnOnce(&Checkpoint) -> Result<M, CheckpointError>,
) -> Result<M, Error> {
    let file_error = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    make(&Checkpoint::read(path).map_err(file_error)?).map_err(file_error)
}
