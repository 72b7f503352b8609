//! Pattern C — one model, many inference paths: the seed's NumPyro model written with flock's
//! model language (`sample` for the weights, `observe` for `y`), trained through the same
//! `ensemble_step` as Patterns A and B. The model's log-density is split into likelihood and
//! prior, so `prior_weight = 1` is MAP (and a tempered MAP would be `0 < prior_weight < 1`).
//!
//! `cargo run --release -p flock-runner --example pattern_c [-- --fixture]` (`--fixture` uses the
//! seed's exact data; the seed has no Pattern C initial parameters, so the init is flock's: the
//! seed's `init_numpyro`, every weight `0.5·N(0, 1)`).

use std::error::Error;
use std::time::Instant;

use flock_autograd::{AutogradError, Batch, Graph, Var};
use flock_ensemble::model::{ModelContext, ModelLogJoint, normal};
use flock_ensemble::{ensemble_init, ensemble_predict, ensemble_step, standard_normal};
use flock_optim::{AdamConfig, adam};
use flock_runner::seed::*;

/// The seed's `numpyro_model`: `W1 (1,H) b1 W2 (H,H) b2 W3 (H,1) b3`, N(0, 1) priors, `y ~ N(f, σ)`.
fn model(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
    let w1 = m.sample("W1", normal(0.0, 1.0), [1, HIDDEN])?;
    let b1 = m.sample("b1", normal(0.0, 1.0), [HIDDEN])?;
    let w2 = m.sample("W2", normal(0.0, 1.0), [HIDDEN, HIDDEN])?;
    let b2 = m.sample("b2", normal(0.0, 1.0), [HIDDEN])?;
    let w3 = m.sample("W3", normal(0.0, 1.0), [HIDDEN, 1])?;
    let b3 = m.sample("b3", normal(0.0, 1.0), [1])?;
    let f = network(m.graph(), x, [w1, b1, w2, b2, w3, b3])?;
    m.observe("y", normal(f, SIGMA), y)
}

/// `tanh(tanh(x·W1 + b1)·W2 + b2)·W3 + b3`, squeezed to `[B]`.
fn network(
    g: &mut Graph<'_, f64>,
    x: Var,
    [w1, b1, w2, b2, w3, b3]: [Var; 6],
) -> Result<Var, AutogradError> {
    let h = g.matmul(x, w1)?;
    let h = g.add(h, b1)?;
    let h = g.tanh(h);
    let h = g.matmul(h, w2)?;
    let h = g.add(h, b2)?;
    let h = g.tanh(h);
    let f = g.matmul(h, w3)?;
    let f = g.add(f, b3)?;
    g.squeeze_last(f)
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let batch = Batch::new(&data.x, &data.y, data.x.len())?;
    let mut log_joint = ModelLogJoint::new(model, batch)?;
    let layout = flock_autograd::LogJoint::layout(&log_joint).clone();
    let optimizer = adam(5e-3, AdamConfig::default())?;
    // The seed's init_numpyro: every latent 0.5·N(0, 1).
    let init = |rng: &mut flock_ensemble::MemberRng| {
        (0..layout.member_size())
            .map(|_| 0.5 * standard_normal(rng))
            .collect()
    };
    let mut state = ensemble_init(&layout, init, &optimizer, ENSEMBLE_SIZE, options.init_seed)?;

    let start = Instant::now();
    for _ in 0..NUM_EPOCHS {
        ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
    }
    let runtime = start.elapsed();

    let ids: Vec<_> = ["W1", "b1", "W2", "b2", "W3", "b3"]
        .iter()
        .map(|n| layout.find(n).expect("the model declared it"))
        .collect();
    let preds = ensemble_predict(
        &state.params,
        |g, x| {
            let mut p = [x; 6];
            for (slot, &id) in p.iter_mut().zip(&ids) {
                *slot = g.param(id)?;
            }
            network(g, x, p)
        },
        &data.x_test,
        data.x_test.len(),
    )?;
    let row = TableRow::score(
        "C — model language (log_density)",
        runtime,
        &preds.values,
        &data,
    )?;
    println!("{}\n{row}", TableRow::header());
    Ok(())
}
