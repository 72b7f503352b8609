//! A regressor's data: inputs as rows × features ([`Features`]), checked; the standardisation
//! fitted on the training rows ([`Normalisation`]); and the held-out rows of early stopping.

use std::borrow::Cow;

use flock_ensemble::{MemberHeldOut, SeedStream};
use flock_kernels::Element;
use serde::{Deserialize, Serialize};

use super::spec::InputScaling;
use crate::error::Error;

/// Inputs as rows × features: `Vec<[T; D]>` (and slices and arrays of rows), `Vec<Vec<T>>`, or a
/// row-major [`Matrix`] over a flat buffer. Rows of arrays and matrices are read in place.
pub trait Features<T: Clone> {
    /// The values row-major and the number of features per row.
    ///
    /// # Errors
    /// [`Error::RaggedRow`] for rows of different lengths, [`Error::Empty`] for no rows.
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error>;
}

/// A row-major `[rows, features]` matrix over a flat buffer.
///
/// ```
/// use flock_runner::Matrix;
/// let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let x = Matrix::new(&values, 2)?; // 3 rows of 2 features
/// assert_eq!(x.rows(), 3);
/// assert!(Matrix::new(&values, 4).is_err());
/// # Ok::<(), flock_runner::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matrix<'a, T> {
    values: &'a [T],
    features: usize,
}

impl<'a, T> Matrix<'a, T> {
    /// `values` as rows of `features` values.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0 features or a length that is not a whole number of rows.
    pub fn new(values: &'a [T], features: usize) -> Result<Self, Error> {
        if features == 0 || !values.len().is_multiple_of(features) {
            return Err(Error::InvalidArgument {
                name: "features",
                value: features.to_string(),
                expected: "a positive number of features that divides the values into whole rows",
            });
        }
        Ok(Matrix { values, features })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.features
    }
}

impl<T: Copy> Features<T> for Matrix<'_, T> {
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error> {
        nonempty(Cow::Borrowed(self.values), self.features)
    }
}

impl<T: Copy, const D: usize> Features<T> for [[T; D]] {
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error> {
        nonempty(Cow::Borrowed(self.as_flattened()), D)
    }
}

impl<T: Copy, const D: usize> Features<T> for Vec<[T; D]> {
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error> {
        self.as_slice().row_major()
    }
}

impl<T: Copy, const D: usize, const N: usize> Features<T> for [[T; D]; N] {
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error> {
        self.as_slice().row_major()
    }
}

impl<T: Copy> Features<T> for [Vec<T>] {
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error> {
        let features = self.first().map_or(0, Vec::len);
        if let Some((row, r)) = self.iter().enumerate().find(|(_, r)| r.len() != features) {
            return Err(Error::RaggedRow {
                row,
                found: r.len(),
                expected: features,
            });
        }
        nonempty(Cow::Owned(self.concat()), features)
    }
}

impl<T: Copy> Features<T> for Vec<Vec<T>> {
    fn row_major(&self) -> Result<(Cow<'_, [T]>, usize), Error> {
        self.as_slice().row_major()
    }
}

fn nonempty<T: Clone>(
    values: Cow<'_, [T]>,
    features: usize,
) -> Result<(Cow<'_, [T]>, usize), Error> {
    if values.is_empty() || features == 0 {
        return Err(Error::Empty { what: "x" });
    }
    Ok((values, features))
}

/// The first NaN or infinity in row-major `values` of `features` columns, as an error.
pub(crate) fn check_finite<T: Element>(
    what: &'static str,
    values: &[T],
    features: usize,
) -> Result<(), Error> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::NonFinite {
            what,
            row: i / features.max(1),
            column: i % features.max(1),
        }),
        None => Ok(()),
    }
}

/// Per-column mean and std of the training rows (std 0 → 1, as the benchmark code does), in
/// f64 whatever the element type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Feature means.
    pub x_mean: Vec<f64>,
    /// Feature standard deviations.
    pub x_std: Vec<f64>,
    /// Target mean.
    pub y_mean: f64,
    /// Target standard deviation.
    pub y_std: f64,
}

/// `(mean, std)` of each column of a row-major `[rows, cols]` matrix (population std; 0 → 1).
pub fn column_moments<T: Element>(values: &[T], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = values.len() / cols.max(1);
    let n = rows.max(1) as f64;
    let mut mean = vec![0.0; cols];
    for row in values.chunks_exact(cols) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v.to_f64() / n;
        }
    }
    let mut var = vec![0.0; cols];
    for row in values.chunks_exact(cols) {
        for c in 0..cols {
            var[c] += (row[c].to_f64() - mean[c]).powi(2) / n;
        }
    }
    let mut std: Vec<f64> = var
        .into_iter()
        .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    // A column of huge values (beyond ~1e154) overflows its squared deviations: take its
    // moments of the values divided by the largest magnitude instead, then scale back. (Only
    // there, so that ordinary columns keep the bits they always had.)
    for c in 0..cols {
        if std[c].is_finite() && mean[c].is_finite() {
            continue;
        }
        let largest = values
            .chunks_exact(cols)
            .map(|row| row[c].to_f64().abs())
            .fold(0.0, f64::max);
        let scaled: Vec<f64> = values
            .chunks_exact(cols)
            .map(|row| row[c].to_f64() / largest)
            .collect();
        let (m, s) = column_moments(&scaled, 1);
        mean[c] = m[0] * largest;
        std[c] = s[0] * largest;
    }
    (mean, std)
}

impl Normalisation {
    /// Statistics of the training rows `x` (`[N, D]`) and `y` (the inputs left as they are with
    /// [`InputScaling::AsGiven`]).
    pub fn from_training<T: Element>(
        x: &[T],
        features: usize,
        y: &[T],
        scaling: InputScaling,
    ) -> Normalisation {
        let (x_mean, x_std) = Normalisation::inputs(x, features, scaling);
        let (y_mean, y_std) = column_moments(y, 1);
        Normalisation {
            x_mean,
            x_std,
            y_mean: y_mean[0],
            y_std: y_std[0],
        }
    }

    /// `(mean, std)` of each input column by `scaling` (zeros and ones when as given).
    pub fn inputs<T: Element>(
        x: &[T],
        features: usize,
        scaling: InputScaling,
    ) -> (Vec<f64>, Vec<f64>) {
        match scaling {
            InputScaling::Standardise => column_moments(x, features),
            InputScaling::AsGiven => (vec![0.0; features], vec![1.0; features]),
        }
    }

    /// Features.
    pub fn features(&self) -> usize {
        self.x_mean.len()
    }

    /// `(x − mean)/std` per column, computed in f64.
    pub fn standardise_x<T: Element>(&self, x: &[T]) -> Vec<T> {
        // Allocated once at its full length: collecting a `flat_map` (no exact length) grew the
        // vector by doubling, copying it each time (60,000 Fashion-MNIST images: ≈ 0.6 s).
        let mut standardised = Vec::with_capacity(x.len());
        for row in x.chunks_exact(self.x_mean.len()) {
            standardised.extend(
                row.iter()
                    .zip(&self.x_mean)
                    .zip(&self.x_std)
                    .map(|((v, mean), std)| T::from_f64((v.to_f64() - mean) / std)),
            );
        }
        standardised
    }

    /// `(y − mean)/std`, computed in f64.
    pub fn standardise_y<T: Element>(&self, y: &[T]) -> Vec<T> {
        y.iter()
            .map(|v| T::from_f64((v.to_f64() - self.y_mean) / self.y_std))
            .collect()
    }
}

/// Training and held-out rows (standardised): the training part and, for a positive `fraction`,
/// the held-out part.
pub(crate) type Split<T> = (Vec<T>, Vec<T>, Option<(Vec<T>, Vec<T>)>);

/// How many of `rows` rows a held-out `fraction` (> 0) sets aside: `fraction·rows`, rounded.
///
/// # Errors
/// [`Error::TooFewRows`] if that leaves no held-out or no training row.
pub(crate) fn held_rows(fraction: f64, rows: usize) -> Result<usize, Error> {
    let held = (fraction * rows as f64).round() as usize;
    if held == 0 || held >= rows {
        return Err(Error::TooFewRows {
            rows,
            needed: (2.0 / fraction.min(1.0 - fraction)).ceil() as usize,
            why: "holding out validation_fraction of them and training on the rest",
        });
    }
    Ok(held)
}

/// Holds out `fraction` of the rows of `(xs, ys)`: a random choice from the seed's
/// [`SeedStream::HeldOutRows`], both parts in their original order.
///
/// # Errors
/// [`Error::TooFewRows`] if the fraction leaves no held-out or no training row.
pub(crate) fn hold_out<T: Copy>(
    fraction: f64,
    seed: u64,
    xs: Vec<T>,
    ys: Vec<T>,
    features: usize,
) -> Result<Split<T>, Error> {
    let rows = ys.len();
    if fraction == 0.0 {
        return Ok((xs, ys, None));
    }
    let held = held_rows(fraction, rows)?;
    // The split of an ensemble's member 0 when each member holds out its own rows.
    let split = MemberHeldOut::new(rows, held, SeedStream::HeldOutRows.seed(seed), 0..1)?;
    let (hx, hy) = split.gather(&xs, &ys);
    let (mut tx, mut ty) = (Vec::new(), Vec::new());
    for &r in split.kept(0) {
        tx.extend_from_slice(&xs[r * features..(r + 1) * features]);
        ty.push(ys[r]);
    }
    Ok((tx, ty, Some((hx, hy))))
}
