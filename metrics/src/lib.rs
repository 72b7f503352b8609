//! # flock-metrics
//!
//! Goodness of fit for the predictive of an ensemble: an equal-weight Gaussian mixture over the
//! members (or members × posterior samples), scored **exactly** — no Monte-Carlo noise.
//!
//! - [`MixturePredictive`]: component means `[M, N]` with a shared, per-point or per-component σ;
//!   its CDF, density, log-density and quantiles.
//! - [`exact_scores`]: RMSE (truth, observations), NLL, PIT, the coverage and width curves at
//!   the seed's 19 levels, coverage/sharpness at 95%, closed-form CRPS, the 95% interval score,
//!   the calibration error and the predictive band.
//! - [`seed_mc_scores`]: the seed tutorial's Monte-Carlo `gof_metrics`, for comparison.
//! - [`figure_svg`]: the seed's figure (predictive band over a calibration curve), one column
//!   per fit.
//!
//! - [`ClassPredictive`]: a classification ensemble's mixture of categoricals;
//!   [`class_scores`] (accuracy, NLL, Brier, ECE — top-label, adaptive, classwise),
//!   [`reliability`] diagrams, entropy / expected entropy / mutual information.
//! - [`ood_scores`]: out-of-distribution detection from an uncertainty score (AUROC, AUPR, FPR
//!   at 95 % TPR).
//! - Recalibration on held-out rows: [`fit_temperature`], split-conformal
//!   [`ConformalRegression`] intervals and [`ConformalClassifier`] prediction sets.
//!
//! All arithmetic is f64; empty, mis-shaped or non-finite inputs are typed errors.

mod calibration;
mod classification;
mod error;
mod figure;
mod mixture;
pub mod normal;
mod ood;
mod scores;
mod seed_mc;

pub use calibration::{
    ConformalClassifier, ConformalRegression, aps_scores, conformal_quantile, fit_temperature,
};
pub use classification::{
    CALIBRATION_BINS, ClassPredictive, ClassScores, ReliabilityBin, adaptive_ece, class_scores,
    classwise_ece, ece, reliability,
};
pub use error::MetricsError;
#[cfg(feature = "png")]
pub use figure::svg_to_png;
pub use figure::{
    FigureError, FigureFormat, FitPanel, Series, encode_figure, figure_svg, histogram_svg,
    line_chart_svg, reliability_svg,
};
pub use mixture::{Band, MixturePredictive, Sigma};
pub use ood::{OodScores, aupr, auroc, fpr_at_95_tpr, ood_scores};
pub use scores::{ExactScores, crps, exact_scores, seed_levels};
pub use seed_mc::{SeedMcScores, seed_mc_scores};
