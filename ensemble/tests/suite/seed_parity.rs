//! The seed reproduced: with pyrox's exact initial parameters and data, flock's Pattern A (adam
//! 5e-3, MAP, full batch, f64) and Pattern B (clip + warmup-cosine AdamW, early stopping) follow
//! pyrox's per-member loss curves to 1e-8 relative (A: the first 200 steps; B: the first 60, see
//! [`PATTERN_B_EXACT_STEPS`]); after 1,500 steps (A) and at the early stop (B) the fits agree with
//! the fixture statistically.

use flock_autograd::*;
use flock_ensemble::{EnsembleState, ensemble_predict, ensemble_step};
use flock_fixtures::{Value, field_numbers};
use flock_optim::{
    AdamConfig, GradientTransformation, adam, adamw, chain, clip_by_global_norm,
    warmup_cosine_decay_schedule,
};

struct Seed {
    x: Vec<f64>,
    y: Vec<f64>,
    x_test: Vec<f64>,
    y_truth: Vec<f64>,
    y_obs: Vec<f64>,
}

fn seed_data() -> Seed {
    let d = flock_fixtures::load(&flock_fixtures::dir("seed").join("data.json")).unwrap();
    let f = |k: &str| field_numbers(&d, k).unwrap();
    Seed {
        x: f("X"),
        y: f("y"),
        x_test: f("X_test"),
        y_truth: f("y_truth"),
        y_obs: f("y_test_noisy"),
    }
}

fn seed_model() -> (ParamLayout, Mlp) {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, 32, 2, Activation::Tanh),
    )
    .unwrap();
    (layout, mlp)
}

/// The seed's `log_joint_native`.
fn seed_log_joint(layout: &ParamLayout, mlp: Mlp) -> impl LogJoint<f64> {
    TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
        let f = mlp.forward(g, x)?;
        let f = g.squeeze_last(f)?;
        let r = g.sub(y, f)?;
        let sse = g.sum_squares(r);
        let theta = g.all_params();
        let ss = g.sum_squares(theta);
        Ok((g.scale(sse, -0.5 / (0.1 * 0.1)), g.scale(ss, -0.5)))
    })
}

fn init_params(fx: &Value, layout: &ParamLayout) -> Parameters<f64> {
    let leaves = fx["init_params"].as_object().unwrap();
    let members = flock_fixtures::shape(&leaves["layers.0.bias"])[0];
    let mut params = Parameters::zeros(layout.clone(), members);
    for (name, v) in leaves {
        let id = layout.find(name).unwrap();
        params
            .set_leaf_stacked(id, &flock_fixtures::numbers(v).unwrap())
            .unwrap();
    }
    params
}

/// RMSE of the ensemble mean against the truth, and the exact mixture NLL on the noisy test set.
fn rmse_and_nll(preds: &[f64], members: usize, seed: &Seed) -> (f64, f64) {
    let n = seed.y_truth.len();
    let (mut se, mut nll) = (0.0, 0.0);
    for i in 0..n {
        let mean = (0..members).map(|e| preds[e * n + i]).sum::<f64>() / members as f64;
        se += (mean - seed.y_truth[i]).powi(2);
        let logs: Vec<f64> = (0..members)
            .map(|e| {
                let z = (seed.y_obs[i] - preds[e * n + i]) / 0.1;
                -0.5 * z * z - (0.1f64).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .collect();
        let m = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + logs.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
        nll -= lse - (members as f64).ln();
    }
    ((se / n as f64).sqrt(), nll / n as f64)
}

/// Runs `steps` steps (or until `stop` says so) and checks the first 200 losses against pyrox's.
#[allow(clippy::needless_range_loop)] // t indexes the reference's inner axis
fn replay<O: GradientTransformation<f64>>(
    name: &str,
    exact_steps: usize,
    optimizer: O,
    steps: usize,
    mut stop: impl FnMut(usize, &[f64]) -> bool,
) {
    let seed = seed_data();
    let fx = flock_fixtures::load(&flock_fixtures::dir("seed").join(name)).unwrap();
    let (layout, mlp) = seed_model();
    let params = init_params(&fx, &layout);
    let members = params.members();
    let mut state = EnsembleState::from_params(params, &optimizer).unwrap();
    let mut log_joint = seed_log_joint(&layout, mlp.clone());
    let reference: Vec<Vec<f64>> = fx["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| flock_fixtures::numbers(row).unwrap())
        .collect();
    let batch = Batch::new(&seed.x, &seed.y, seed.x.len()).unwrap();
    let mut worst = 0.0f64;
    let mut taken = 0;
    for t in 0..steps {
        let losses = ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)
            .unwrap()
            .to_vec();
        taken += 1;
        if t < exact_steps {
            for e in 0..members {
                let (ours, theirs) = (losses[e], reference[e][t]);
                let rel = (ours - theirs).abs() / theirs.abs();
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-8,
                    "{name}: member {e}, step {t}: flock {ours} vs pyrox {theirs} (rel {rel:e})"
                );
            }
        }
        if stop(t, &losses) {
            break;
        }
    }
    let preds = ensemble_predict(
        &state.params,
        |g, x| {
            let f = mlp.forward(g, x)?;
            g.squeeze_last(f)
        },
        &seed.x_test,
        seed.x_test.len(),
    )
    .unwrap();
    let (rmse, nll) = rmse_and_nll(&preds.values, members, &seed);
    let exact = &fx["metrics_exact"];
    let (rmse_ref, nll_ref) = (
        exact["rmse_truth"].as_f64().unwrap(),
        exact["nll"].as_f64().unwrap(),
    );
    println!(
        "{name}: {taken} steps, worst relative loss difference over the first {exact_steps} steps {worst:.1e}; \
         RMSE-truth {rmse:.4} (pyrox {rmse_ref:.4}), NLL {nll:.3} (pyrox {nll_ref:.3})"
    );
    assert!(
        (rmse - rmse_ref).abs() <= 0.01,
        "{name}: RMSE-truth {rmse} vs {rmse_ref}"
    );
    assert!(
        (nll - nll_ref).abs() <= 0.05,
        "{name}: NLL {nll} vs {nll_ref}"
    );
}

#[test]
fn pattern_a_follows_pyrox() {
    replay(
        "pattern_a.json",
        200,
        adam(5e-3, AdamConfig::default()).unwrap(),
        1500,
        |_, _| false,
    );
}

/// Pattern B's clipped warmup is far more chaotic than Pattern A: JAX itself — the same jitted,
/// vmapped step compiled on this machine — drifts from pyrox's recorded losses by 3e-13 at step 60,
/// 1e-9 at step 80, 3e-7 at step 100 and 1e-4 at step 150, and a 1e-15 relative change of the
/// initial parameters moves JAX's own losses by 1e-6 at step 100 and 1% at step 150. Losses past
/// step ~60 therefore cannot be matched at 1e-8 by any implementation; flock matches the first
/// 60 steps to ~1e-15 and the early-stopped fit statistically.
const PATTERN_B_EXACT_STEPS: usize = 60;

#[test]
fn pattern_b_follows_pyrox() {
    let fx = flock_fixtures::load(&flock_fixtures::dir("seed").join("pattern_b.json")).unwrap();
    let stop_ref = fx["early_stop_epoch"].as_u64().unwrap() as usize;
    let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 100, 1500, 1e-4, 1.0).unwrap();
    let optimizer = chain(
        clip_by_global_norm(1.0).unwrap(),
        adamw(schedule, AdamConfig::default(), 0.0, None).unwrap(),
    );
    // The seed's early stop: the mean loss has not improved by more than 0.5 for 50 steps.
    let (mut best, mut plateau) = (f64::INFINITY, 0);
    let mut stopped = None;
    replay(
        "pattern_b.json",
        PATTERN_B_EXACT_STEPS,
        optimizer,
        1500,
        |t, losses| {
            let mean = losses.iter().sum::<f64>() / losses.len() as f64;
            if mean < best - 0.5 {
                best = mean;
                plateau = 0;
            } else {
                plateau += 1;
            }
            let stop = plateau >= 50;
            if stop {
                stopped = Some(t);
            }
            stop
        },
    );
    // Where the plateau rule fires is as chaotic as the losses it watches; the fit at the stop is
    // what is compared (in `replay`).
    let stopped = stopped.expect("Pattern B stops early");
    println!("pattern B stopped at step {stopped} (pyrox: {stop_ref})");
}
