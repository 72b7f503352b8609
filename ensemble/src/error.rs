//! The errors of Layer 1: each names the argument, the shape or the member at fault.

use core::fmt;

use flock_autograd::AutogradError;

/// What went wrong in an ensemble primitive.
#[derive(Clone, Debug, PartialEq)]
pub enum EnsembleError {
    /// `ensemble_size` was 0.
    ZeroMembers,
    /// A batch with no examples.
    EmptyBatch,
    /// `x` and `y` disagree on the number of examples, or a buffer is not a whole number of rows.
    BatchShape {
        /// Which buffer (`"x"` or `"y"`).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The number of rows the batch was given.
        rows: usize,
    },
    /// Data with a NaN or an infinity.
    NonFiniteData {
        /// Which buffer (`"x"` or `"y"`).
        what: &'static str,
        /// Index of the first bad value.
        index: usize,
    },
    /// A scalar argument out of its range.
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
    /// `init_fn` returned a parameter block of the wrong length for member `member`.
    InitShape {
        /// The member.
        member: usize,
        /// The length returned.
        len: usize,
        /// One member's parameter count in the layout.
        expected: usize,
    },
    /// `init_fn` returned a non-finite value.
    NonFiniteInit {
        /// The member.
        member: usize,
        /// Index of the first bad value within its block.
        index: usize,
    },
    /// The log-joint reads another parameter layout than the state holds.
    LayoutMismatch {
        /// Parameters per member in the state.
        state: usize,
        /// Parameters per member the log-joint expects.
        log_joint: usize,
    },
    /// An error from the tape (a shape mismatch in the log-joint, for instance).
    Autograd(AutogradError),
}

impl fmt::Display for EnsembleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnsembleError::ZeroMembers => write!(f, "ensemble_size must be at least 1, got 0"),
            EnsembleError::EmptyBatch => write!(f, "the batch has no examples"),
            EnsembleError::BatchShape { what, len, rows } => write!(
                f,
                "batch {what} holds {len} values, which is not a whole number of values per row for {rows} rows"
            ),
            EnsembleError::NonFiniteData { what, index } => {
                write!(f, "batch {what}[{index}] is not finite (NaN or infinite)")
            }
            EnsembleError::InvalidArgument {
                name,
                value,
                expected,
            } => write!(f, "{name} = {value}: expected {expected}"),
            EnsembleError::InitShape {
                member,
                len,
                expected,
            } => write!(
                f,
                "init_fn returned {len} parameters for member {member}; the layout has {expected}"
            ),
            EnsembleError::NonFiniteInit { member, index } => write!(
                f,
                "init_fn returned a non-finite parameter for member {member} at index {index}"
            ),
            EnsembleError::LayoutMismatch { state, log_joint } => write!(
                f,
                "the state holds {state} parameters per member but the log-joint reads {log_joint}"
            ),
            EnsembleError::Autograd(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EnsembleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnsembleError::Autograd(e) => Some(e),
            _ => None,
        }
    }
}

impl From<AutogradError> for EnsembleError {
    fn from(e: AutogradError) -> Self {
        EnsembleError::Autograd(e)
    }
}
