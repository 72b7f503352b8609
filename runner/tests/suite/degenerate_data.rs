//! Degenerate data: each case trains to finite scores or fails with an error that names the
//! problem — never NaN scores in silence.

use flock_runner::{Error, Regressor};

fn rows(n: usize) -> Vec<[f64; 2]> {
    (0..n)
        .map(|i| [i as f64 / n as f64, ((i * 7) % 11) as f64])
        .collect()
}

fn fits_with_finite_scores(x: &[[f64; 2]], y: &[f64]) {
    let model = Regressor::new().epochs(20).fit(x, y).unwrap();
    let p = model.predict(x).unwrap();
    assert!(p.mean().iter().chain(p.std()).all(|v| v.is_finite()));
    let scores = model.score(x, y).unwrap();
    assert!(scores.nll.is_finite() && scores.rmse_obs.is_finite() && scores.crps.is_finite());
}

#[test]
fn a_constant_feature_column_trains() {
    let x: Vec<[f64; 2]> = rows(100).into_iter().map(|[a, _]| [a, 3.0]).collect();
    let y: Vec<f64> = x.iter().map(|[a, _]| a.sin()).collect();
    fits_with_finite_scores(&x, &y);
}

#[test]
fn a_constant_target_is_refused_by_name() {
    let x = rows(50);
    let err = Regressor::new().fit(&x, &[2.5; 50]).unwrap_err();
    assert!(matches!(err, Error::ConstantTarget), "{err}");
    assert!(err.to_string().contains("one value"), "{err}");
}

#[test]
fn one_row_is_refused_by_name() {
    let err = Regressor::new().fit(&[[1.0, 2.0]], &[3.0]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooFewRows { rows: 1, .. } | Error::ConstantTarget
        ),
        "{err}"
    );
}

#[test]
fn duplicated_rows_train() {
    let base = rows(30);
    let x: Vec<[f64; 2]> = base.iter().chain(&base).chain(&base).copied().collect();
    let y: Vec<f64> = x.iter().map(|[a, b]| a + 0.1 * b).collect();
    fits_with_finite_scores(&x, &y);
}

#[test]
fn integer_valued_targets_train() {
    let x = rows(120);
    let y: Vec<f64> = (0..120).map(|i| (i % 5) as f64).collect();
    fits_with_finite_scores(&x, &y);
}

#[test]
fn values_near_the_float_limits_train_or_are_refused_by_name() {
    // Huge features: standardised away.
    let x: Vec<[f64; 2]> = rows(80).into_iter().map(|[a, b]| [a * 1e300, b]).collect();
    let y: Vec<f64> = (0..80).map(|i| (i as f64 * 0.1).sin()).collect();
    fits_with_finite_scores(&x, &y);
    // …and they keep what tells them apart (a feature of huge values, alone, is fitted).
    let x: Vec<[f64; 2]> = (0..80)
        .map(|i| [(i as f64 * 0.1).sin() * 1e300, 0.0])
        .collect();
    let model = Regressor::new().epochs(60).fit(&x, &y).unwrap();
    assert!(model.score(&x, &y).unwrap().rmse_obs < 0.2);
    // Huge targets: their squared errors would overflow f64, so the fit is refused with an
    // error naming y, not trained into infinite or NaN scores.
    let x = rows(80);
    let y: Vec<f64> = (0..80)
        .map(|i| if i % 2 == 0 { 1e300 } else { -1e300 })
        .collect();
    let err = Regressor::new().epochs(5).fit(&x, &y).unwrap_err();
    assert!(matches!(err, Error::TargetScale { .. }), "{err}");
    assert!(err.to_string().starts_with("y reaches 1e300"), "{err}");
}
