//! Typed errors for optimizer configuration and use.

use core::fmt;

/// Why an optimizer could not be built or applied.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimError {
    /// A hyperparameter is outside its valid range.
    InvalidHyperparameter {
        /// Which hyperparameter (`"learning_rate"`, `"b1"`, …).
        name: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A per-member hyperparameter has the wrong number of entries.
    MemberCountMismatch {
        /// Which hyperparameter.
        name: &'static str,
        /// Entries given.
        given: usize,
        /// Members in the ensemble.
        members: usize,
    },
    /// A saved optimizer state ran out of values while being restored (another optimizer or
    /// layout).
    StateLength {
        /// Values the next part needs.
        needed: usize,
        /// Values left.
        available: usize,
    },
    /// A buffer does not match the layout.
    BufferLength {
        /// Which buffer (`"params"`, `"updates"`).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The layout's `E·P`.
        expected: usize,
    },
}

impl fmt::Display for OptimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimError::InvalidHyperparameter {
                name,
                value,
                expected,
            } => {
                write!(
                    f,
                    "invalid hyperparameter {name} = {value}: expected {expected}"
                )
            }
            OptimError::MemberCountMismatch {
                name,
                given,
                members,
            } => write!(
                f,
                "per-member hyperparameter {name} has {given} values but the ensemble has {members} members; give one value per member or a shared value"
            ),
            OptimError::StateLength { needed, available } => write!(
                f,
                "saved optimizer state is too short: the next part needs {needed} values, {available} are left (another optimizer or layout?)"
            ),
            OptimError::BufferLength {
                what,
                len,
                expected,
            } => write!(
                f,
                "{what} has {len} values but the layout holds {expected} (members × parameters per member)"
            ),
        }
    }
}

impl std::error::Error for OptimError {}

/// Checks `lo ≤ value` (or `<`), returning a typed error naming the hyperparameter.
pub(crate) fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), OptimError> {
    if ok && !value.is_nan() {
        Ok(())
    } else {
        Err(OptimError::InvalidHyperparameter {
            name,
            value,
            expected,
        })
    }
}

/// `value ∈ [0, 1)`, the range of a decay rate such as `b1`.
pub(crate) fn check_decay(name: &'static str, value: f64) -> Result<(), OptimError> {
    check(
        name,
        value,
        (0.0..1.0).contains(&value),
        "a value in [0, 1)",
    )
}

/// `value ≥ 0` and finite.
pub(crate) fn check_nonnegative(name: &'static str, value: f64) -> Result<(), OptimError> {
    check(
        name,
        value,
        value >= 0.0 && value.is_finite(),
        "a finite value ≥ 0",
    )
}
