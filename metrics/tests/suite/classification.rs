//! Classification scores, out-of-distribution scores and recalibration against naive
//! references (written from the definitions, quadratic where that is simplest), on random
//! inputs; split-conformal coverage tested statistically over many random splits.

use flock_metrics::*;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// Random member probabilities `[M, N, K]` (softmax of logits in ±3, some rows near one-hot),
/// and labels.
fn random_predictive(
    members: usize,
    points: usize,
    classes: usize,
    seed: u64,
) -> (Vec<f64>, Vec<usize>) {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut probs = Vec::with_capacity(members * points * classes);
    for _ in 0..members * points {
        let sharp = if rng.random_range(0.0..1.0) < 0.2 {
            8.0
        } else {
            1.0
        };
        let z: Vec<f64> = (0..classes)
            .map(|_| sharp * rng.random_range(-3.0..3.0))
            .collect();
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        probs.extend(e.iter().map(|v| v / s));
    }
    let labels = (0..points).map(|_| rng.random_range(0..classes)).collect();
    (probs, labels)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

/// The naive ECE of (confidence, correct) pairs with an explicit bin for each pair.
fn naive_ece(pairs: &[(f64, bool)], bins: usize) -> f64 {
    let n = pairs.len() as f64;
    (0..bins)
        .map(|b| {
            let (lo, hi) = (b as f64 / bins as f64, (b + 1) as f64 / bins as f64);
            let inside: Vec<&(f64, bool)> = pairs
                .iter()
                .filter(|(c, _)| *c >= lo && (*c < hi || (b == bins - 1 && *c <= 1.0)))
                .collect();
            if inside.is_empty() {
                return 0.0;
            }
            let k = inside.len() as f64;
            let conf = inside.iter().map(|(c, _)| c).sum::<f64>() / k;
            let acc = inside.iter().filter(|(_, ok)| *ok).count() as f64 / k;
            k / n * (acc - conf).abs()
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn scores_match_their_definitions(members in 1usize..5, points in 1usize..60,
                                      classes in 1usize..6, seed in any::<u64>()) {
        let (probs, labels) = random_predictive(members, points, classes, seed);
        let pred = ClassPredictive::new(&probs, members, points, classes).unwrap();
        let s = class_scores(&pred, &labels).unwrap();
        let len = points * classes;
        let mean = |i: usize, k: usize| {
            (0..members).map(|m| probs[m * len + i * classes + k]).sum::<f64>() / members as f64
        };
        let (mut correct, mut nll, mut brier) = (0, 0.0, 0.0);
        let mut top = Vec::new();
        for (i, &y) in labels.iter().enumerate() {
            let row: Vec<f64> = (0..classes).map(|k| mean(i, k)).collect();
            let best = (0..classes).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            correct += usize::from(best == y);
            nll -= row[y].ln();
            brier += (0..classes).map(|k| (row[k] - f64::from(u8::from(k == y))).powi(2)).sum::<f64>();
            top.push((row[best], best == y));
            // Entropy decomposition.
            let h = -row.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>();
            let eh = (0..members)
                .map(|m| -(0..classes).map(|k| probs[m * len + i * classes + k])
                    .filter(|p| *p > 0.0).map(|p| p * p.ln()).sum::<f64>())
                .sum::<f64>() / members as f64;
            prop_assert!(close(pred.entropy()[i], h));
            prop_assert!(close(pred.expected_entropy()[i], eh));
            prop_assert!((pred.mutual_information()[i] - (h - eh).max(0.0)).abs() < 1e-12);
        }
        let n = points as f64;
        prop_assert_eq!(s.accuracy, correct as f64 / n);
        prop_assert!(close(s.nll, nll / n));
        prop_assert!(close(s.brier, brier / n));
        prop_assert!(close(s.ece, naive_ece(&top, CALIBRATION_BINS)), "{} vs {}", s.ece, naive_ece(&top, 15));
        // Adaptive: sorted by confidence, cut into 15 groups of ⌊bN/15⌋..⌊(b+1)N/15⌋.
        let mut sorted = top.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let adaptive: f64 = (0..15)
            .map(|b| &sorted[b * points / 15..(b + 1) * points / 15])
            .filter(|g| !g.is_empty())
            .map(|g| {
                let k = g.len() as f64;
                let conf = g.iter().map(|p| p.0).sum::<f64>() / k;
                let acc = g.iter().filter(|p| p.1).count() as f64 / k;
                k / n * (acc - conf).abs()
            })
            .sum();
        prop_assert!(close(s.adaptive_ece, adaptive));
        let classwise = (0..classes)
            .map(|k| {
                let pairs: Vec<(f64, bool)> =
                    labels.iter().enumerate().map(|(i, &y)| (mean(i, k), y == k)).collect();
                naive_ece(&pairs, 15)
            })
            .sum::<f64>() / classes as f64;
        prop_assert!(close(s.classwise_ece, classwise));
        // The reliability diagram's bins add up to the ECE.
        let bins = reliability(pred.probs(), classes, &labels, 15).unwrap();
        prop_assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), points);
        let from_bins: f64 = bins.iter().filter(|b| b.count > 0)
            .map(|b| b.count as f64 / n * (b.accuracy - b.confidence).abs()).sum();
        prop_assert!(close(from_bins, s.ece));
    }

    #[test]
    fn ood_scores_match_their_definitions(n_in in 1usize..40, n_out in 1usize..40,
                                          ties in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Pcg64::seed_from_u64(seed);
        // With ties: scores on a coarse grid.
        let mut draw = |shift: f64| {
            let v: f64 = rng.random_range(0.0..1.0) + shift;
            if ties { (v * 4.0).round() / 4.0 } else { v }
        };
        let inside: Vec<f64> = (0..n_in).map(|_| draw(0.0)).collect();
        let outside: Vec<f64> = (0..n_out).map(|_| draw(0.4)).collect();
        // AUROC: P(out > in) + ½ P(out = in) over all pairs.
        let mut pairs = 0.0;
        for &o in &outside {
            for &i in &inside {
                pairs += if o > i { 1.0 } else if o == i { 0.5 } else { 0.0 };
            }
        }
        prop_assert!(close(auroc(&inside, &outside).unwrap(), pairs / (n_in * n_out) as f64));
        // AP and FPR@95: every distinct threshold, highest first.
        let mut thresholds: Vec<f64> = inside.iter().chain(&outside).copied().collect();
        thresholds.sort_by(|a, b| b.total_cmp(a));
        thresholds.dedup();
        let (mut ap, mut last_recall) = (0.0, 0.0);
        let mut fpr = None;
        for &t in &thresholds {
            let tp = outside.iter().filter(|&&s| s >= t).count() as f64;
            let fp = inside.iter().filter(|&&s| s >= t).count() as f64;
            let recall = tp / n_out as f64;
            ap += (recall - last_recall) * tp / (tp + fp);
            last_recall = recall;
            if fpr.is_none() && tp >= 0.95 * n_out as f64 {
                fpr = Some(fp / n_in as f64);
            }
        }
        prop_assert!(close(aupr(&inside, &outside).unwrap(), ap));
        prop_assert_eq!(fpr_at_95_tpr(&inside, &outside).unwrap(), fpr.unwrap());
    }

    #[test]
    fn the_conformal_quantile_is_the_rank_ceil_n_plus_one(n in 1usize..60, alpha in 0.01f64..0.5,
                                                          seed in any::<u64>()) {
        let mut rng = Pcg64::seed_from_u64(seed);
        let scores: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..10.0)).collect();
        let q = conformal_quantile(&scores, alpha).unwrap();
        // The smallest score s such that at least ⌈(n+1)(1−α)⌉ scores are ≤ s.
        let need = ((n + 1) as f64 * (1.0 - alpha)).ceil() as usize;
        let want = if need > n {
            f64::INFINITY
        } else {
            *scores.iter().filter(|&&s| scores.iter().filter(|&&t| t <= s).count() >= need)
                .min_by(|a, b| a.total_cmp(b)).unwrap()
        };
        prop_assert_eq!(q, want);
    }
}

/// Over 1,000 random calibration/test splits, the empirical coverage of split-conformal
/// intervals (a misspecified σ: the guarantee does not rest on the model) lies in the band the
/// theory gives: `[1 − α, 1 − α + 1/(n+1)]`, widened by four standard errors.
#[test]
fn conformal_regression_covers_as_promised() {
    let (alpha, n, m, splits) = (0.1, 99, 100, 1000);
    let mut rng = Pcg64::seed_from_u64(11);
    let mut covered = 0usize;
    for _ in 0..splits {
        // y = sin(x) + noise whose scale grows with |x|; the "model" says σ = 0.3 everywhere.
        let mut draw = |k: usize| {
            let x: Vec<f64> = (0..k).map(|_| rng.random_range(-3.0..3.0)).collect();
            let y: Vec<f64> = x
                .iter()
                .map(|&x: &f64| x.sin() + (0.1 + 0.2 * x.abs()) * standard_normal(&mut rng))
                .collect();
            (x, y)
        };
        let (cx, cy) = draw(n);
        let (tx, ty) = draw(m);
        let mean = |x: &[f64]| x.iter().map(|v| v.sin()).collect::<Vec<_>>();
        let fit = ConformalRegression::fit(&mean(&cx), &vec![0.3; n], &cy, alpha).unwrap();
        let (lo, hi) = fit.interval(&mean(&tx), &vec![0.3; m]);
        covered += ty
            .iter()
            .zip(lo.iter().zip(&hi))
            .filter(|&(y, (l, h))| l <= y && y <= h)
            .count();
    }
    check_band(covered, splits, n, m, alpha);
}

/// The same for APS prediction sets: a 5-class model whose probabilities are deliberately
/// miscalibrated against the labels' true distribution.
#[test]
fn conformal_prediction_sets_cover_as_promised() {
    let (alpha, n, m, splits, classes) = (0.1, 99, 100, 1000, 5);
    let mut rng = Pcg64::seed_from_u64(12);
    let mut covered = 0usize;
    let mut sizes = 0usize;
    for _ in 0..splits {
        let mut draw = |k: usize| {
            let mut probs = Vec::with_capacity(k * classes);
            let mut labels = Vec::with_capacity(k);
            for _ in 0..k {
                let z: Vec<f64> = (0..classes).map(|_| rng.random_range(-2.0..2.0)).collect();
                // The model is twice as confident as the truth.
                let softmax = |t: f64| {
                    let e: Vec<f64> = z.iter().map(|v| (v / t).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.into_iter().map(|v| v / s).collect::<Vec<_>>()
                };
                let truth = softmax(1.0);
                let u: f64 = rng.random_range(0.0..1.0);
                let mut acc = 0.0;
                let label = (0..classes)
                    .find(|&j| {
                        acc += truth[j];
                        u < acc
                    })
                    .unwrap_or(classes - 1);
                probs.extend(softmax(0.5));
                labels.push(label);
            }
            let uniforms: Vec<f64> = (0..k).map(|_| rng.random_range(0.0..1.0)).collect();
            (probs, labels, uniforms)
        };
        let (cp, cl, cu) = draw(n);
        let (tp, tl, tu) = draw(m);
        let fit = ConformalClassifier::fit(&cp, classes, &cl, &cu, alpha).unwrap();
        let sets = fit.sets(&tp, classes, &tu).unwrap();
        covered += sets.iter().zip(&tl).filter(|(s, y)| s.contains(y)).count();
        sizes += sets.iter().map(Vec::len).sum::<usize>();
    }
    check_band(covered, splits, n, m, alpha);
    let mean_size = sizes as f64 / (splits * m) as f64;
    assert!(mean_size < classes as f64 - 0.5, "sets adapt: {mean_size}");
}

fn standard_normal(rng: &mut Pcg64) -> f64 {
    loop {
        let (u, v): (f64, f64) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * s.ln() / s).sqrt();
        }
    }
}

/// The mean coverage over `splits` splits lies in `[1 − α, 1 − α + 1/(n+1)]` ± 4 standard errors
/// (the calibration set's own variation, `α(1−α)/(n+2)` per split, plus the test rows').
fn check_band(covered: usize, splits: usize, n: usize, m: usize, alpha: f64) {
    let coverage = covered as f64 / (splits * m) as f64;
    let var = alpha * (1.0 - alpha) * (1.0 / (n + 2) as f64 + 1.0 / m as f64) / splits as f64;
    let se = var.sqrt();
    let (lo, hi) = (
        1.0 - alpha - 4.0 * se,
        1.0 - alpha + 1.0 / (n + 1) as f64 + 4.0 * se,
    );
    assert!(
        (lo..=hi).contains(&coverage),
        "coverage {coverage:.4} outside [{lo:.4}, {hi:.4}]"
    );
}

/// Temperature scaling recovers the temperature of labels drawn from `softmax(z / 2)`.
#[test]
fn temperature_scaling_recovers_the_truth() {
    let (points, classes) = (4000, 4);
    let mut rng = Pcg64::seed_from_u64(3);
    let mut logits = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..points {
        let z: Vec<f64> = (0..classes).map(|_| rng.random_range(-4.0..4.0)).collect();
        let e: Vec<f64> = z.iter().map(|v| (v / 2.0).exp()).collect();
        let s: f64 = e.iter().sum();
        let u: f64 = rng.random_range(0.0..1.0);
        let mut acc = 0.0;
        labels.push(
            (0..classes)
                .find(|&j| {
                    acc += e[j] / s;
                    u < acc
                })
                .unwrap_or(classes - 1),
        );
        logits.extend(z);
    }
    let t = fit_temperature(&logits, 1, points, classes, &labels).unwrap();
    assert!((t - 2.0).abs() < 0.15, "{t}");
    let nll = |t: f64| {
        let p = ClassPredictive::from_logits(&logits, 1, points, classes, t).unwrap();
        class_scores(&p, &labels).unwrap().nll
    };
    assert!(nll(t) < nll(1.0) && nll(t) <= nll(t * 1.05) && nll(t) <= nll(t / 1.05));
}

#[test]
fn bad_inputs_are_named() {
    assert!(matches!(
        ClassPredictive::new(&[0.5, 0.6], 1, 1, 2),
        Err(MetricsError::Probability { .. })
    ));
    assert!(matches!(
        ClassPredictive::new(&[1.5, -0.5], 1, 1, 2),
        Err(MetricsError::Probability { index: 0, .. })
    ));
    let p = ClassPredictive::new(&[0.5, 0.5], 1, 1, 2).unwrap();
    assert!(matches!(
        class_scores(&p, &[2]),
        Err(MetricsError::Label {
            value: 2,
            classes: 2,
            ..
        })
    ));
    assert!(matches!(
        auroc(&[], &[1.0]),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        auroc(&[f64::NAN], &[1.0]),
        Err(MetricsError::NonFinite { .. })
    ));
    assert!(matches!(
        conformal_quantile(&[1.0], 0.0),
        Err(MetricsError::Level { .. })
    ));
}
