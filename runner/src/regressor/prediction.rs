//! What a fitted regressor predicts: the ensemble's mixture at each input row, on the original
//! target scale.

use flock_metrics::{Band, MixturePredictive};

use crate::error::Error;

/// The predictive distribution at each of `N` input rows: the equal-weight Gaussian mixture of
/// the ensemble's networks (one per member, or `S` draws from each member's guide), on the
/// original target scale, in f64.
///
/// `std² = epistemic_std² + aleatoric_std²`: the spread of the members' means (what more data
/// would reduce) plus their mean noise variance (what it would not).
#[derive(Clone, Debug)]
pub struct Prediction {
    mixture: MixturePredictive,
    band: Band,
}

impl Prediction {
    pub(crate) fn new(mixture: MixturePredictive) -> Prediction {
        let band = mixture.band();
        Prediction { mixture, band }
    }

    /// Rows predicted.
    pub fn len(&self) -> usize {
        self.mixture.points()
    }

    /// Whether no row was predicted (never, for a prediction made by a model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The predictive mean of each row, `[N]`.
    pub fn mean(&self) -> &[f64] {
        &self.band.mean
    }

    /// The predictive standard deviation of each row (total: epistemic and aleatoric), `[N]`.
    pub fn std(&self) -> &[f64] {
        &self.band.total_std
    }

    /// The spread of the networks' means, `[N]`: the ensemble's disagreement.
    pub fn epistemic_std(&self) -> Vec<f64> {
        self.band.epistemic_var.iter().map(|v| v.sqrt()).collect()
    }

    /// The root of the networks' mean noise variance, `[N]`.
    pub fn aleatoric_std(&self) -> Vec<f64> {
        self.band.aleatoric_var.iter().map(|v| v.sqrt()).collect()
    }

    /// The `q`-quantile of each row's mixture, `[N]` (exact, by root-finding on its CDF).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 < q < 1`.
    pub fn quantile(&self, q: f64) -> Result<Vec<f64>, Error> {
        if !(q > 0.0 && q < 1.0) {
            return Err(Error::InvalidArgument {
                name: "q",
                value: q.to_string(),
                expected: "a probability strictly between 0 and 1",
            });
        }
        (0..self.len())
            .map(|i| Ok(self.mixture.quantile(i, q)?))
            .collect()
    }

    /// The central interval holding `level` of each row's predictive mass: its
    /// `(1 − level)/2` and `(1 + level)/2` quantiles, `([N], [N])`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 < level < 1`.
    pub fn interval(&self, level: f64) -> Result<(Vec<f64>, Vec<f64>), Error> {
        if !(level > 0.0 && level < 1.0) {
            return Err(Error::InvalidArgument {
                name: "level",
                value: level.to_string(),
                expected: "a coverage strictly between 0 and 1 (0.95 for a 95 % interval)",
            });
        }
        Ok((
            self.quantile((1.0 - level) / 2.0)?,
            self.quantile((1.0 + level) / 2.0)?,
        ))
    }

    /// The mixture itself (component means and σs, CDF, density), e.g. for
    /// [`flock_metrics::exact_scores`].
    pub fn mixture(&self) -> &MixturePredictive {
        &self.mixture
    }
}
