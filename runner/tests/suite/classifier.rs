//! The classification front door: fits in f32 and f64, point estimates and VI, categorical and
//! Bernoulli heads; probabilities, uncertainty, scores; temperature scaling and conformal sets;
//! save / load; typed errors; thread invariance.

use flock_runner::{
    AnyModel, Classifier, Error, FitMethod, FittedClassifier, FittedRegressor, ViFit,
};

/// Three overlapping blobs in 2-D, `n` rows, labels 0..3.
fn blobs(n: usize, seed: u64) -> (Vec<[f64; 2]>, Vec<usize>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / (1u64 << 53) as f64
    };
    let mut normal = || {
        let (u, v) = (uniform().max(1e-12), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let centres = [(0.0, 0.0), (2.0, 1.0), (1.0, 2.5)];
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % 3;
        let (cx, cy) = centres[k];
        x.push([cx + 0.7 * normal(), cy + 0.7 * normal()]);
        y.push(k);
    }
    (x, y)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn fits_predicts_and_scores_in_both_precisions() {
    let (x, y) = blobs(900, 1);
    let (x_test, y_test) = blobs(600, 2);
    let model = Classifier::new().epochs(30).seed(3).fit(&x, &y).unwrap();
    let s = model.score(&x_test, &y_test).unwrap();
    assert!(s.accuracy > 0.75, "{s:?}");
    assert!(s.nll < 0.6 && s.ece < 0.1, "{s:?}");
    let p = model.predict_proba(&x_test).unwrap();
    assert_eq!((p.len(), p.classes()), (600, 3));
    for row in p.probs().chunks_exact(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert!(p.mutual_information().iter().all(|&m| m >= 0.0));
    let total: Vec<f64> = p.entropy();
    let parts: Vec<f64> = p
        .expected_entropy()
        .iter()
        .zip(p.mutual_information())
        .map(|(a, b)| a + b)
        .collect();
    for (t, s) in total.iter().zip(&parts) {
        assert!((t - s).abs() < 1e-12);
    }

    let x32: Vec<[f32; 2]> = x.iter().map(|[a, b]| [*a as f32, *b as f32]).collect();
    let t32: Vec<[f32; 2]> = x_test.iter().map(|[a, b]| [*a as f32, *b as f32]).collect();
    let model32 = Classifier::new().epochs(30).seed(3).fit(&x32, &y).unwrap();
    let s32 = model32.score(&t32, &y_test).unwrap();
    assert!((s32.accuracy - s.accuracy).abs() < 0.05, "{s32:?} vs {s:?}");
}

#[test]
fn vi_and_bernoulli_heads() {
    let (x, y) = blobs(600, 4);
    let vi = Classifier::new()
        .method(FitMethod::Vi(ViFit {
            samples: 4,
            ..ViFit::default()
        }))
        .epochs(20)
        .fit(&x, &y)
        .unwrap();
    assert_eq!(vi.networks().members(), 5 * 4);
    let p = vi.predict_proba(&x[..10]).unwrap();
    assert_eq!(p.predictive().members(), 20);
    // Two classes with one logit.
    let binary: Vec<usize> = y.iter().map(|&k| usize::from(k == 2)).collect();
    let model = Classifier::new()
        .binary_logit()
        .epochs(20)
        .fit(&x, &binary)
        .unwrap();
    assert_eq!(model.classes(), 2);
    let s = model.score(&x, &binary).unwrap();
    assert!(s.accuracy > 0.8, "{s:?}");
    assert!(matches!(
        Classifier::new().binary_logit().fit(&x, &y),
        Err(Error::Label { label: 2, .. })
    ));
}

#[test]
fn threads_change_no_bits_and_files_round_trip() {
    let (x, y) = blobs(300, 5);
    let fit = |threads| {
        Classifier::new()
            .epochs(8)
            .threads(threads)
            .class_names(vec!["a".into(), "b".into(), "c".into()])
            .fit(&x, &y)
            .unwrap()
    };
    let (one, two) = (fit(1), fit(2));
    let p1 = one.predict_proba(&x).unwrap();
    assert_eq!(
        bits(p1.probs()),
        bits(two.predict_proba(&x).unwrap().probs())
    );
    let path = std::env::temp_dir().join(format!(
        "flock-classifier-{}.safetensors",
        std::process::id()
    ));
    one.save(&path).unwrap();
    let back = FittedClassifier::<f64>::load(&path).unwrap();
    assert_eq!(
        bits(p1.probs()),
        bits(back.predict_proba(&x).unwrap().probs())
    );
    assert_eq!(back.class_names().unwrap(), ["a", "b", "c"]);
    assert_eq!(p1.predicted_names()[2], "c");
    assert!(matches!(
        AnyModel::load(&path).unwrap(),
        AnyModel::Classifier(_)
    ));
    let err = FittedRegressor::<f64>::load(&path).unwrap_err().to_string();
    assert!(err.contains("FittedClassifier"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn temperature_and_conformal_sets() {
    let (x, y) = blobs(900, 6);
    let (x_cal, y_cal) = blobs(600, 7);
    let (x_test, y_test) = blobs(3000, 8);
    // No held-out stopping and a long constant rate: an overconfident ensemble.
    let mut model = Classifier::new()
        .epochs(150)
        .validation_fraction(0.0)
        .schedule(flock_runner::LearningRateSchedule::Constant)
        .fit(&x, &y)
        .unwrap();
    let before = model.score(&x_cal, &y_cal).unwrap().nll;
    let t = model.calibrate_temperature(&x_cal, &y_cal).unwrap();
    let after = model.score(&x_cal, &y_cal).unwrap().nll;
    assert!(after <= before, "temperature {t}: {after} vs {before}");
    assert_eq!(model.temperature(), t);
    assert!(matches!(
        model.prediction_sets(&x_test, 0.1),
        Err(Error::NotCalibrated)
    ));
    model.calibrate_conformal(&x_cal, &y_cal).unwrap();
    let sets = model.prediction_sets(&x_test, 0.1).unwrap();
    let covered = sets
        .iter()
        .zip(&y_test)
        .filter(|(s, y)| s.contains(y))
        .count();
    let coverage = covered as f64 / y_test.len() as f64;
    // 1 − α = 0.9 with 600 calibration rows; one split, 3,000 test rows. The guarantee is a
    // lower bound; keeping the top class where randomisation empties a set (as RAPS's
    // `allow_zero_sets = False` does) lifts coverage above it, so the upper edge is loose.
    assert!((0.87..0.97).contains(&coverage), "{coverage}");
    let size = sets.iter().map(Vec::len).sum::<usize>() as f64 / sets.len() as f64;
    assert!(size < 2.5, "{size}");
}

#[test]
fn bad_labels_and_inputs_are_named() {
    let x = vec![[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]];
    assert!(matches!(
        Classifier::new().fit(&x, &[1, 1, 1]),
        Err(Error::SingleClass { label: 1 })
    ));
    assert!(matches!(
        Classifier::new().classes(2).fit(&x, &[0, 1, 2]),
        Err(Error::Label {
            row: 2,
            label: 2,
            classes: 2
        })
    ));
    assert!(matches!(
        Classifier::new().fit(&x, &[0, 1]),
        Err(Error::RowCount { .. })
    ));
    let nan = vec![[0.0, 1.0], [f64::NAN, 0.0], [2.0, 2.0]];
    assert!(matches!(
        Classifier::new().fit(&nan, &[0, 1, 0]),
        Err(Error::NonFinite {
            what: "x",
            row: 1,
            column: 0
        })
    ));
    let model = Classifier::new()
        .epochs(2)
        .validation_fraction(0.0)
        .fit(&x, &[0, 1, 0])
        .unwrap();
    assert!(matches!(
        model.score(&x, &[0, 3, 0]),
        Err(Error::Label {
            row: 1,
            label: 3,
            ..
        })
    ));
    assert!(matches!(
        model.predict(&[[1.0, 2.0, 3.0]]),
        Err(Error::FeatureCount {
            found: 3,
            expected: 2
        })
    ));
}

/// A model's bytes read back as the same model (of either task), and a progress hook that asks
/// to stop ends the fit with `Error::Interrupted` at that step.
#[test]
fn bytes_round_trip_and_a_hook_can_interrupt() {
    use crate::common::StopAt;
    use flock_runner::Regressor;
    use flock_runner::regressor::FitHooks;

    let (x, y) = blobs(120, 4);
    let classifier = Classifier::new().epochs(3).seed(1).fit(&x, &y).unwrap();
    let back = AnyModel::from_bytes(&classifier.to_bytes()).unwrap();
    assert_eq!(back.to_bytes(), classifier.to_bytes());
    let AnyModel::Classifier(back) = back else {
        panic!("a classifier's bytes read as a regressor")
    };
    assert_eq!(
        bits(
            back.predict_proba(flock_runner::Matrix::new(x.as_flattened(), 2).unwrap())
                .unwrap()
                .probs()
        ),
        bits(classifier.predict_proba(&x).unwrap().probs())
    );
    let targets: Vec<f64> = x.iter().map(|r| r[0] - r[1]).collect();
    let regressor = Regressor::new().epochs(3).fit(&x, &targets).unwrap();
    assert!(matches!(
        AnyModel::from_bytes(&regressor.to_bytes()).unwrap(),
        AnyModel::Regressor(_)
    ));
    let mut corrupt = regressor.to_bytes();
    corrupt.truncate(corrupt.len() / 2);
    assert!(matches!(
        AnyModel::from_bytes(&corrupt),
        Err(Error::Checkpoint(_))
    ));

    let hooks = FitHooks {
        progress: Some(Box::new(StopAt(3, 0))),
        ..FitHooks::default()
    };
    let err = Regressor::new()
        .epochs(50)
        .fit_with(&x, &targets, hooks)
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted { step: 3 }), "{err}");
}
