//! Errors of the metrics: empty, mis-shaped or non-finite inputs never give a silent NaN score.

use core::fmt;

/// What is wrong with a metric's input.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricsError {
    /// No components or no points.
    Empty {
        /// Which input.
        what: &'static str,
    },
    /// A buffer's length disagrees with `M` and `N`.
    Shape {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length `M` and `N` imply.
        expected: usize,
    },
    /// A NaN or infinity in an input.
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Index of the first bad value.
        index: usize,
    },
    /// A standard deviation that is not positive.
    NonPositiveSigma {
        /// Index of the first bad value.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A probability outside `[0, 1]`, or a distribution whose probabilities do not sum to 1.
    Probability {
        /// Index of the first bad value (the row's first for a bad sum).
        index: usize,
        /// The value (or the row's sum).
        value: f64,
    },
    /// A class label past the number of classes.
    Label {
        /// Index of the label.
        index: usize,
        /// The label.
        value: usize,
        /// The number of classes.
        classes: usize,
    },
    /// A level outside `(0, 1)`.
    Level {
        /// The level.
        value: f64,
    },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Empty { what } => write!(f, "{what} is empty"),
            MetricsError::Shape {
                what,
                len,
                expected,
            } => write!(f, "{what} holds {len} values, expected {expected}"),
            MetricsError::NonFinite { what, index } => {
                write!(f, "{what}[{index}] is not finite")
            }
            MetricsError::NonPositiveSigma { index, value } => write!(
                f,
                "standard deviation [{index}] = {value}: every σ must be positive and finite"
            ),
            MetricsError::Probability { index, value } => write!(
                f,
                "probability [{index}] = {value}: expected values in [0, 1] summing to 1 per row"
            ),
            MetricsError::Label {
                index,
                value,
                classes,
            } => write!(
                f,
                "label [{index}] = {value} is not a class: expected 0 to {}",
                classes.saturating_sub(1)
            ),
            MetricsError::Level { value } => {
                write!(f, "level {value} is not strictly between 0 and 1")
            }
        }
    }
}

impl std::error::Error for MetricsError {}

pub(crate) fn check_finite(what: &'static str, x: &[f64]) -> Result<(), MetricsError> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite { what, index }),
        None => Ok(()),
    }
}
