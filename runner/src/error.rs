//! The errors of the runners ([`RunError`]) and of the front door ([`Error`]).

use std::fmt;

use flock_ensemble::EnsembleError;
use flock_optim::OptimError;

use crate::checkpoint::CheckpointError;
use crate::map::{Divergence, EnsembleResult};

/// Why a runner failed.
#[derive(Debug)]
pub enum RunError<T> {
    /// A Layer 1 error (bad data, shapes, arguments).
    Ensemble(EnsembleError),
    /// A bad optimizer hyperparameter.
    Optim(OptimError),
    /// A checkpoint could not be written or read (a [`Checkpointing`](crate::train::Checkpointing)
    /// hook, or a restore).
    Checkpoint(CheckpointError),
    /// A member diverged and [`OnDivergence::Stop`](crate::train::OnDivergence::Stop) was asked
    /// for; nothing is lost: `partial` holds the parameters and losses up to that step.
    Diverged {
        /// The member and step.
        divergence: Divergence,
        /// The result so far.
        partial: Box<EnsembleResult<T>>,
    },
    /// The [`ProgressHook`](crate::train::ProgressHook) asked the run to stop (e.g. on Ctrl-C)
    /// after `step` steps.
    Interrupted {
        /// Steps done.
        step: usize,
    },
    /// [`EnsembleResult::merge`]: part `index` differs from the first part.
    IncompatiblePart {
        /// The part.
        index: usize,
        /// What differs (`"parameter layout"`, `"number of steps"`).
        what: &'static str,
    },
}

impl<T> fmt::Display for RunError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Ensemble(e) => write!(f, "{e}"),
            RunError::Optim(e) => write!(f, "{e}"),
            RunError::Checkpoint(e) => write!(f, "{e}"),
            RunError::Diverged { divergence, .. } => write!(
                f,
                "member {} diverged at step {} (non-finite loss or gradient); the result up to it is kept",
                divergence.member, divergence.step
            ),
            RunError::Interrupted { step } => write!(f, "interrupted after step {step}"),
            RunError::IncompatiblePart { index, what } => write!(
                f,
                "cannot merge: part {index} has another {what} than part 0"
            ),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for RunError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Ensemble(e) => Some(e),
            RunError::Optim(e) => Some(e),
            RunError::Checkpoint(e) => Some(e),
            _ => None,
        }
    }
}

impl<T> From<EnsembleError> for RunError<T> {
    fn from(e: EnsembleError) -> Self {
        RunError::Ensemble(e)
    }
}

impl<T> From<flock_autograd::AutogradError> for RunError<T> {
    fn from(e: flock_autograd::AutogradError) -> Self {
        RunError::Ensemble(EnsembleError::Autograd(e))
    }
}

impl<T> From<OptimError> for RunError<T> {
    fn from(e: OptimError) -> Self {
        RunError::Optim(e)
    }
}

impl<T> From<CheckpointError> for RunError<T> {
    fn from(e: CheckpointError) -> Self {
        RunError::Checkpoint(e)
    }
}

/// Why a [`Regressor`](crate::Regressor) could not be fitted, used, saved or loaded — the
/// front door's error. Each message says what went wrong, why, and what to do instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting outside its range.
    InvalidArgument {
        /// The setting (`members`, `learning_rate`, …).
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Conformal intervals or sets asked of a model that was never calibrated.
    NotCalibrated,
    /// `x` and `y` disagree on the number of rows.
    RowCount {
        /// Rows of `x`.
        x_rows: usize,
        /// Values of `y`.
        y_rows: usize,
    },
    /// A row of `x` with another number of features than the first row.
    RaggedRow {
        /// The row (0-based).
        row: usize,
        /// Its number of values.
        found: usize,
        /// The first row's.
        expected: usize,
    },
    /// Inputs with another number of features than the model was fitted on.
    FeatureCount {
        /// Features given.
        found: usize,
        /// Features the model takes.
        expected: usize,
    },
    /// No rows (or no features) where some are needed.
    Empty {
        /// What is empty (`"x"`, `"y"`).
        what: &'static str,
    },
    /// Fewer rows than the fit needs.
    TooFewRows {
        /// Rows given.
        rows: usize,
        /// Rows needed.
        needed: usize,
        /// Why.
        why: &'static str,
    },
    /// A NaN or infinity in the data.
    NonFinite {
        /// Which array (`"x"`, `"y"`).
        what: &'static str,
        /// The row (0-based).
        row: usize,
        /// The column (0-based; 0 for `y`).
        column: usize,
    },
    /// The target takes one value on every training row: there is nothing to fit.
    ConstantTarget,
    /// Target values so large that their squares (the scores' squared errors and variances)
    /// overflow f64: beyond [`Error::LARGEST_TARGET`].
    TargetScale {
        /// The largest magnitude in the target.
        largest: f64,
    },
    /// A class label past the classes.
    Label {
        /// The row (0-based).
        row: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// Every training label is the same class: there is nothing to tell apart.
    SingleClass {
        /// The one class.
        label: usize,
    },
    /// A member diverged (non-finite loss or gradient) — a member is frozen at its last finite
    /// parameters by default; this is reported only where it cannot be.
    Diverged {
        /// The member.
        member: usize,
        /// The step.
        step: usize,
    },
    /// The fit was interrupted (its progress hook asked it to stop) after `step` steps.
    Interrupted {
        /// Steps done.
        step: usize,
    },
    /// A model or state file could not be written or read.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        source: CheckpointError,
    },
    /// A Layer 1 error (shapes, arguments).
    Ensemble(EnsembleError),
    /// A bad optimizer setting.
    Optim(OptimError),
    /// A checkpoint error without a file (a hook's).
    Checkpoint(CheckpointError),
    /// The predictive could not be built or scored.
    Metrics(flock_metrics::MetricsError),
}

impl Error {
    /// The largest target magnitude a regressor takes (1e150): the squares of larger values
    /// come near f64's limit.
    pub const LARGEST_TARGET: f64 = 1e150;
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument {
                name,
                value,
                expected,
            } => write!(f, "{name} = {value} is out of range: expected {expected}"),
            Error::NotCalibrated => write!(
                f,
                "the model has no conformal calibration: call calibrate_conformal on held-out \
                 rows first (from the command line: flock fit --conformal ALPHA)"
            ),
            Error::RowCount { x_rows, y_rows } => write!(
                f,
                "x has {x_rows} rows but y has {y_rows} values: give one target per row of x"
            ),
            Error::RaggedRow {
                row,
                found,
                expected,
            } => write!(
                f,
                "row {row} of x has {found} values but row 0 has {expected}: every row needs the same features"
            ),
            Error::FeatureCount { found, expected } => write!(
                f,
                "x has {found} features per row but the model was fitted on {expected}: give the same columns, in the same order"
            ),
            Error::Empty { what } => write!(f, "{what} is empty: give at least one row"),
            Error::TooFewRows { rows, needed, why } => {
                write!(f, "{rows} rows are too few: {why} needs at least {needed}")
            }
            Error::NonFinite { what, row, column } => write!(
                f,
                "{what} has a NaN or an infinity at row {row}, column {column}: remove or impute it before fitting"
            ),
            Error::ConstantTarget => write!(
                f,
                "y takes one value on every training row: there is nothing to fit"
            ),
            Error::TargetScale { largest } => write!(
                f,
                "y reaches {largest:e}: beyond 1e150 the squared errors overflow f64; rescale the \
                 target (divide it by a power of ten)"
            ),
            Error::Label {
                row,
                label,
                classes,
            } => write!(
                f,
                "label {label} at row {row} is not a class: there are {classes} classes (0 to {})",
                classes.saturating_sub(1)
            ),
            Error::SingleClass { label } => write!(
                f,
                "every training label is class {label}: a classifier needs at least two classes"
            ),
            Error::Diverged { member, step } => write!(
                f,
                "member {member} diverged at step {step} (non-finite loss or gradient): try a smaller learning rate"
            ),
            Error::Interrupted { step } => write!(
                f,
                "interrupted after step {step} (a fit with a state file resumes from its last save)"
            ),
            Error::File { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Ensemble(e) => write!(f, "{e}"),
            Error::Optim(e) => write!(f, "{e}"),
            Error::Checkpoint(e) => write!(f, "{e}"),
            Error::Metrics(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::File { source, .. } => Some(source),
            Error::Ensemble(e) => Some(e),
            Error::Optim(e) => Some(e),
            Error::Checkpoint(e) => Some(e),
            Error::Metrics(e) => Some(e),
            _ => None,
        }
    }
}

impl<T> From<RunError<T>> for Error {
    fn from(e: RunError<T>) -> Self {
        match e {
            RunError::Ensemble(e) => Error::Ensemble(e),
            RunError::Optim(e) => Error::Optim(e),
            RunError::Checkpoint(e) => Error::Checkpoint(e),
            RunError::Diverged { divergence, .. } => Error::Diverged {
                member: divergence.member,
                step: divergence.step,
            },
            RunError::Interrupted { step } => Error::Interrupted { step },
            RunError::IncompatiblePart { .. } => Error::InvalidArgument {
                name: "parts",
                value: e.to_string(),
                expected: "results of one layout and length",
            },
        }
    }
}

impl From<EnsembleError> for Error {
    fn from(e: EnsembleError) -> Self {
        Error::Ensemble(e)
    }
}

impl From<flock_autograd::AutogradError> for Error {
    fn from(e: flock_autograd::AutogradError) -> Self {
        Error::Ensemble(EnsembleError::Autograd(e))
    }
}

impl From<OptimError> for Error {
    fn from(e: OptimError) -> Self {
        Error::Optim(e)
    }
}

impl From<flock_metrics::MetricsError> for Error {
    fn from(e: flock_metrics::MetricsError) -> Self {
        Error::Metrics(e)
    }
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Self {
        Error::Checkpoint(e)
    }
}
