//! Every file in `fixtures/metrics/` (and the seed's Pattern A/B predictions): flock's exact
//! scores against the reference's, 1e-9 relative (quantile widths 1e-8); the seed's Monte-Carlo
//! RMSE and NLL exactly, its coverage and width within Monte-Carlo error.

use flock_fixtures::{Value, field_numbers};
use flock_metrics::*;

fn close(what: &str, ours: f64, theirs: f64, rel: f64) {
    let tol = rel * theirs.abs().max(1e-12);
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: flock {ours} vs reference {theirs}"
    );
}

fn close_all(what: &str, ours: &[f64], theirs: &[f64], rel: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        close(&format!("{what}[{i}]"), a, b, rel);
    }
}

fn check_exact(name: &str, scores: &ExactScores, exact: &Value) {
    let num = |k: &str| exact[k].as_f64().unwrap();
    let arr = |k: &str| field_numbers(exact, k).unwrap();
    close(
        &format!("{name} rmse_truth"),
        scores.rmse_truth.unwrap(),
        num("rmse_truth"),
        1e-9,
    );
    close(
        &format!("{name} rmse_obs"),
        scores.rmse_obs,
        num("rmse_obs"),
        1e-9,
    );
    close(&format!("{name} nll"), scores.nll, num("nll"), 1e-9);
    close(
        &format!("{name} coverage_95"),
        scores.coverage_95,
        num("coverage_95"),
        1e-9,
    );
    close(
        &format!("{name} sharpness_95"),
        scores.sharpness_95,
        num("sharpness_95"),
        1e-8,
    );
    close_all(
        &format!("{name} alphas"),
        &scores.alphas,
        &arr("alphas"),
        1e-15,
    );
    close_all(
        &format!("{name} coverage"),
        &scores.coverage_curve,
        &arr("coverage_curve"),
        1e-9,
    );
    close_all(
        &format!("{name} width"),
        &scores.width_curve,
        &arr("width_curve"),
        1e-8,
    );
    close(&format!("{name} crps"), scores.crps, num("crps"), 1e-9);
    close_all(
        &format!("{name} mean"),
        &scores.band.mean,
        &arr("predictive_mean"),
        1e-9,
    );
    close_all(
        &format!("{name} epistemic"),
        &scores.band.epistemic_var,
        &arr("epistemic_var"),
        1e-9,
    );
    close_all(
        &format!("{name} aleatoric"),
        &scores.band.aleatoric_var,
        &arr("aleatoric_var"),
        1e-9,
    );
    close_all(
        &format!("{name} total_std"),
        &scores.band.total_std,
        &arr("total_std"),
        1e-9,
    );
    if exact.get("pit").is_some() {
        close_all(&format!("{name} pit"), &scores.pit, &arr("pit"), 1e-9);
        close_all(
            &format!("{name} crps/pt"),
            &scores.crps_per_point,
            &arr("crps_per_point"),
            1e-9,
        );
        close_all(
            &format!("{name} nll/pt"),
            &scores.nll_per_point,
            &arr("nll_per_point"),
            1e-9,
        );
    }
}

fn check_seed_mc(name: &str, pred: &MixturePredictive, y_obs: &[f64], y_truth: &[f64], mc: &Value) {
    let ours = seed_mc_scores(pred, y_obs, Some(y_truth), 500, 987).unwrap();
    let num = |k: &str| mc[k].as_f64().unwrap();
    close(
        &format!("{name} mc rmse_truth"),
        ours.rmse_truth.unwrap(),
        num("rmse_truth"),
        1e-9,
    );
    close(
        &format!("{name} mc rmse_obs"),
        ours.rmse_obs,
        num("rmse_obs"),
        1e-9,
    );
    close(&format!("{name} mc nll"), ours.nll, num("nll"), 1e-9);
    // Monte-Carlo error: 200 points, 500 draws each.
    assert!(
        (ours.coverage_95 - num("coverage_95")).abs() <= 0.05,
        "{name}: mc coverage"
    );
    close(
        &format!("{name} mc sharpness"),
        ours.sharpness_95,
        num("sharpness_95"),
        0.05,
    );
}

#[test]
fn every_metrics_fixture_matches() {
    let files = flock_fixtures::files("metrics").unwrap();
    assert!(!files.is_empty());
    for path in files {
        let fx = flock_fixtures::load(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let means = field_numbers(&fx, "pred_means").unwrap();
        let sigmas = field_numbers(&fx, "sigmas").unwrap();
        let y_truth = field_numbers(&fx, "y_truth").unwrap();
        let y_obs = field_numbers(&fx, "y_obs").unwrap();
        let n = y_obs.len();
        let m = means.len() / n;
        let pred = MixturePredictive::new(&means, m, n, Sigma::PerComponent(sigmas)).unwrap();
        let scores = exact_scores(&pred, &y_obs, Some(&y_truth)).unwrap();
        check_exact(&name, &scores, &fx["metrics_exact"]);
        if let Some(mc) = fx.get("metrics_seed_mc") {
            check_seed_mc(&name, &pred, &y_obs, &y_truth, mc);
        }
        println!("{name}: M = {m}, N = {n}: every exact score matches");
    }
}

#[test]
fn seed_pattern_predictions_score_like_the_fixture() {
    let data = flock_fixtures::load(&flock_fixtures::dir("seed").join("data.json")).unwrap();
    let y_truth = field_numbers(&data, "y_truth").unwrap();
    let y_obs = field_numbers(&data, "y_test_noisy").unwrap();
    for file in ["pattern_a.json", "pattern_b.json"] {
        let fx = flock_fixtures::load(&flock_fixtures::dir("seed").join(file)).unwrap();
        let means = field_numbers(&fx, "pred_means").unwrap();
        let n = y_obs.len();
        let pred = MixturePredictive::new(&means, means.len() / n, n, Sigma::Shared(0.1)).unwrap();
        let scores = exact_scores(&pred, &y_obs, Some(&y_truth)).unwrap();
        check_exact(file, &scores, &fx["metrics_exact"]);
        check_seed_mc(file, &pred, &y_obs, &y_truth, &fx["metrics_seed_mc"]);
    }
}

/// A second, obviously correct implementation: CRPS by its definition ∫(F(x) − 1{x ≥ y})² dx
/// with the trapezoid rule on a fine grid; quantiles by plain bisection.
#[test]
fn crps_and_quantiles_agree_with_slow_references() {
    let means = [0.0, 0.3, -0.2, 1.5, 0.1, 0.4];
    let sigmas = [0.1, 0.2, 0.15, 0.3, 0.05, 0.25];
    let pred = MixturePredictive::new(&means, 3, 2, Sigma::PerComponent(sigmas.to_vec())).unwrap();
    for (i, &y) in [0.05, 2.0].iter().enumerate() {
        // ∫_{−∞}^{y} F² + ∫_{y}^{∞} (1 − F)², each by Simpson's rule on a smooth integrand.
        let simpson = |a: f64, b: f64, g: &dyn Fn(f64) -> f64| {
            let steps = 20_000;
            let h = (b - a) / steps as f64;
            let inner: f64 = (1..steps)
                .map(|k| (if k % 2 == 1 { 4.0 } else { 2.0 }) * g(a + k as f64 * h))
                .sum();
            (g(a) + g(b) + inner) * h / 3.0
        };
        let integral = simpson(-6.0, y, &|x| pred.cdf(i, x).powi(2))
            + simpson(y, 8.0, &|x| (1.0 - pred.cdf(i, x)).powi(2));
        close(&format!("crps {i}"), crps(&pred, i, y), integral, 1e-6);
        for &p in &[0.025, 0.3, 0.5, 0.9, 0.975] {
            let (mut a, mut b) = (-10.0, 10.0);
            for _ in 0..200 {
                let mid = 0.5 * (a + b);
                if pred.cdf(i, mid) < p {
                    a = mid
                } else {
                    b = mid
                }
            }
            close(
                &format!("quantile {i} {p}"),
                pred.quantile(i, p).unwrap(),
                0.5 * (a + b),
                1e-12,
            );
        }
    }
}

/// The width curve of `exact_scores` (its solves start from predictions of the neighbouring
/// level) against quantiles found by plain bisection, for shared and per-component σ and
/// ensembles of 1 to 40 members.
#[test]
fn width_curves_agree_with_bisection() {
    let bisect = |pred: &MixturePredictive, i: usize, p: f64| {
        let (mut a, mut b) = (-20.0, 20.0);
        for _ in 0..200 {
            let mid = 0.5 * (a + b);
            if pred.cdf(i, mid) < p {
                a = mid
            } else {
                b = mid
            }
        }
        0.5 * (a + b)
    };
    let n = 7;
    for m in [1, 3, 16, 40] {
        let means: Vec<f64> = (0..m * n)
            .map(|k| ((k * 7919 % 97) as f64 / 97.0 - 0.5) * (1.0 + (k % n) as f64))
            .collect();
        let sigmas: Vec<f64> = (0..m * n)
            .map(|k| 0.05 + (k * 31 % 17) as f64 / 40.0)
            .collect();
        let y: Vec<f64> = (0..n).map(|i| 0.3 * i as f64 - 1.0).collect();
        for sigma in [Sigma::Shared(0.2), Sigma::PerComponent(sigmas)] {
            let pred = MixturePredictive::new(&means, m, n, sigma).unwrap();
            let scores = exact_scores(&pred, &y, None).unwrap();
            for (j, &a) in scores.alphas.iter().enumerate() {
                let width: f64 = (0..n)
                    .map(|i| bisect(&pred, i, 0.5 + a / 2.0) - bisect(&pred, i, 0.5 - a / 2.0))
                    .sum::<f64>()
                    / n as f64;
                close(
                    &format!("M={m} width {a}"),
                    scores.width_curve[j],
                    width,
                    1e-11,
                );
            }
        }
    }
}

#[test]
fn bad_inputs_are_named() {
    assert_eq!(
        MixturePredictive::new(&[0.0; 3], 2, 2, Sigma::Shared(0.1)).unwrap_err(),
        MetricsError::Shape {
            what: "means",
            len: 3,
            expected: 4
        }
    );
    assert_eq!(
        MixturePredictive::new(&[0.0, f64::NAN], 1, 2, Sigma::Shared(0.1)).unwrap_err(),
        MetricsError::NonFinite {
            what: "means",
            index: 1
        }
    );
    assert!(matches!(
        MixturePredictive::new(&[0.0; 2], 1, 2, Sigma::Shared(0.0)),
        Err(MetricsError::NonPositiveSigma { .. })
    ));
    assert_eq!(
        MixturePredictive::new::<f64>(&[], 0, 2, Sigma::Shared(0.1)).unwrap_err(),
        MetricsError::Empty { what: "components" }
    );
    let pred = MixturePredictive::new(&[0.0; 2], 1, 2, Sigma::Shared(1.0)).unwrap();
    assert_eq!(
        exact_scores(&pred, &[0.0, f64::INFINITY], None).unwrap_err(),
        MetricsError::NonFinite {
            what: "y_obs",
            index: 1
        }
    );
}

/// The shared-σ CRPS (sorted means, pair distances in one pass) equals the general formula.
#[test]
fn shared_sigma_crps_equals_the_general_pair_sum() {
    // 37 members: sorted pairs; 80 and 300: the Chebyshev-interpolated pair sum (or the pairs
    // when the means spread over too many σ). Spreads from identical means to 60σ.
    for (m, spread) in [
        (37, 1.0),
        (80, 0.0),
        (80, 1e-7),
        (80, 0.05),
        (80, 1.0),
        (300, 0.3),
        (300, 3.0),
        (300, 18.0),
    ] {
        let n = 3;
        let means: Vec<f64> = (0..m * n)
            .map(|j| {
                spread
                    * (((j * 7919) % 101) as f64 / 50.0 - 1.0 + if j % 5 == 0 { 4.0 } else { 0.0 })
            })
            .collect();
        let shared = MixturePredictive::new(&means, m, n, Sigma::Shared(0.3)).unwrap();
        let general =
            MixturePredictive::new(&means, m, n, Sigma::PerComponent(vec![0.3; m * n])).unwrap();
        for i in 0..n {
            for y in [-2.0, 0.1, 3.7] {
                close(
                    &format!("M={m} spread {spread}: crps {i} {y}"),
                    crps(&shared, i, y),
                    crps(&general, i, y),
                    1e-12,
                );
            }
        }
    }
}
