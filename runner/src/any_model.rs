//! A model file of either task (regression or classification) and either element type, for
//! code that reads files it did not write (`flock predict`).

use std::path::Path;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::classifier::AnyClassifier;
use crate::error::Error;
use crate::regressor::{AnyRegressor, model_from_bytes, read_model, stored_spec};

/// A fitted regressor or classifier, f32 or f64, as its model file holds it.
#[derive(Clone, Debug)]
pub enum AnyModel {
    /// A regressor's file.
    Regressor(AnyRegressor),
    /// A classifier's file.
    Classifier(AnyClassifier),
}

impl AnyModel {
    /// Loads a model file, whichever task and element type it was saved with.
    ///
    /// # Errors
    /// [`Error::File`] for an unreadable, corrupt or foreign file.
    pub fn load(path: impl AsRef<Path>) -> Result<AnyModel, Error> {
        read_model(path.as_ref(), AnyModel::from_checkpoint)
    }

    /// A model from a model file's bytes (as [`AnyModel::to_bytes`] or a file give them).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] for corrupt or foreign bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<AnyModel, Error> {
        model_from_bytes(bytes, AnyModel::from_checkpoint)
    }

    /// The model file's bytes: what `save` writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            AnyModel::Regressor(AnyRegressor::F32(m)) => m.to_bytes(),
            AnyModel::Regressor(AnyRegressor::F64(m)) => m.to_bytes(),
            AnyModel::Classifier(AnyClassifier::F32(m)) => m.to_bytes(),
            AnyModel::Classifier(AnyClassifier::F64(m)) => m.to_bytes(),
        }
    }

    fn from_checkpoint(checkpoint: &Checkpoint) -> Result<AnyModel, CheckpointError> {
        if stored_spec(checkpoint)?.likelihood.is_classification() {
            AnyClassifier::from_checkpoint(checkpoint).map(AnyModel::Classifier)
        } else {
            AnyRegressor::from_checkpoint(checkpoint).map(AnyModel::Regressor)
        }
    }

    /// Features it takes.
    pub fn features(&self) -> usize {
        match self {
            AnyModel::Regressor(m) => m.features(),
            AnyModel::Classifier(m) => m.features(),
        }
    }

    /// The features' names, when the fit was given them.
    pub fn feature_names(&self) -> Option<&[String]> {
        match self {
            AnyModel::Regressor(m) => m.feature_names(),
            AnyModel::Classifier(m) => m.feature_names(),
        }
    }
}
