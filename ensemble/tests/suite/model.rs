//! The model language: layout discovery, the split log-density (so tempered MAP works),
//! positive latents through their logarithm, init from the prior, and named errors.

use flock_autograd::*;
use flock_ensemble::model::*;
use flock_ensemble::*;
use flock_optim::{AdamConfig, adam};

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

fn log_normal_pdf(v: f64, mu: f64, s: f64) -> f64 {
    -0.5 * ((v - mu) / s).powi(2) - s.ln() - HALF_LN_2PI
}

/// Linear regression with a learned noise scale: `w ~ N(0, 1)`, `b ~ N(0, 2)`,
/// `σ ~ HalfNormal(1)`, `y ~ N(x·w + b, σ)`.
fn regression(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
    let w = m.sample("w", normal(0.0, 1.0), [1, 1])?;
    let b = m.sample("b", normal(0.0, 2.0), [1])?;
    let sigma = m.sample("sigma", half_normal(1.0), [])?;
    let g = m.graph();
    let f = g.matmul(x, w)?;
    let f = g.add(f, b)?;
    let f = g.squeeze_last(f)?;
    m.observe("y", normal(f, sigma), y)
}

fn data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..30).map(|i| i as f64 / 10.0 - 1.5).collect();
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| 2.0 * v - 0.5 + 0.3 * ((i * 7 % 11) as f64 / 5.0 - 1.0))
        .collect();
    (x, y)
}

#[test]
fn log_density_splits_likelihood_and_prior() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, x.len()).unwrap();
    let mut model = ModelLogJoint::new(regression, batch).unwrap();
    let layout = LogJoint::layout(&model).clone();
    let names: Vec<&str> = layout.leaves().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["w", "b", "sigma"]);
    // Two members; sigma is stored as its logarithm.
    let values = vec![1.5, -0.2, (0.4f64).ln(), -0.3, 0.7, (2.0f64).ln()];
    let params = Parameters::from_values(layout.clone(), 2, values.clone()).unwrap();
    let (ll, lp) = log_density(&mut model, &params, batch).unwrap();
    for e in 0..2 {
        let (w, b, u) = (values[3 * e], values[3 * e + 1], values[3 * e + 2]);
        let s = u.exp();
        let ll_ref: f64 = x
            .iter()
            .zip(&y)
            .map(|(&xi, &yi)| log_normal_pdf(yi, xi * w + b, s))
            .sum();
        // HalfNormal: log 2 + log N(s | 0, 1), plus the Jacobian u of s = eᵘ.
        let lp_ref = log_normal_pdf(w, 0.0, 1.0)
            + log_normal_pdf(b, 0.0, 2.0)
            + (2.0f64).ln()
            + log_normal_pdf(s, 0.0, 1.0)
            + u;
        assert!(
            (ll[e] - ll_ref).abs() <= 1e-12 * ll_ref.abs(),
            "ll {e}: {} vs {ll_ref}",
            ll[e]
        );
        assert!(
            (lp[e] - lp_ref).abs() <= 1e-12 * lp_ref.abs(),
            "lp {e}: {} vs {lp_ref}",
            lp[e]
        );
    }
    // Tempered MAP: the step's loss is −ℓ − ½π with the same split.
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let mut state = EnsembleState::from_params(params, &opt).unwrap();
    let losses = ensemble_step(&mut state, batch, &mut model, &opt, 0.5, 1.0).unwrap();
    for e in 0..2 {
        let expected = -ll[e] - 0.5 * lp[e];
        assert!((losses[e] - expected).abs() <= 1e-12 * expected.abs());
    }
}

#[test]
fn positive_latents_stay_positive_and_fit() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, x.len()).unwrap();
    let mut model = ModelLogJoint::new(regression, batch).unwrap();
    let layout = LogJoint::layout(&model).clone();
    let opt = adam(2e-2, AdamConfig::default()).unwrap();
    let mut error = None;
    let mut state = ensemble_init(
        &layout,
        |rng| {
            model.init_from_prior(rng).unwrap_or_else(|e| {
                error = Some(e);
                vec![]
            })
        },
        &opt,
        4,
        7,
    )
    .unwrap();
    assert!(error.is_none());
    for _ in 0..1500 {
        ensemble_step(&mut state, batch, &mut model, &opt, 1.0, 1.0).unwrap();
    }
    for e in 0..4 {
        let p = state.params.member(e);
        let (w, b, s) = (p[0], p[1], p[2].exp());
        assert!(
            (w - 2.0).abs() < 0.1 && (b + 0.5).abs() < 0.1,
            "member {e}: w {w}, b {b}"
        );
        assert!(s > 0.05 && s < 0.4, "member {e}: sigma {s}");
    }
}

#[test]
fn site_errors_are_named() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, x.len()).unwrap();
    let twice = |m: &mut ModelContext<'_, '_, f64>, _x: Var, _y: Var| {
        m.sample("w", normal(0.0, 1.0), [1])?;
        m.sample("w", normal(0.0, 1.0), [1])?;
        Ok(())
    };
    let err = ModelLogJoint::new(twice, batch).unwrap_err();
    assert!(err.to_string().contains("\"w\": declared twice"), "{err}");
    // A hierarchical prior cannot be drawn from without the parent's value.
    let hierarchical = |m: &mut ModelContext<'_, '_, f64>, _x: Var, _y: Var| {
        let s = m.sample("s", half_normal(1.0), [])?;
        m.sample("w", normal(0.0, s), [3])?;
        Ok(())
    };
    let model = ModelLogJoint::new(hierarchical, batch).unwrap();
    let err = model.init_from_prior(&mut member_rng(0, 0)).unwrap_err();
    assert!(err.to_string().contains("\"w\""), "{err}");
}
