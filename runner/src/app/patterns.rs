//! The seed tutorial's three ways to drive the Layer 1 primitives, each a hand-written loop over
//! `ensemble_step` — read these functions as the tutorial's code in Rust.
//!
//! - [`pattern_a`]: from scratch — `adam(5e-3)`, the seed's log-joint, 1,500 full-batch steps.
//! - [`pattern_b`]: optax-style composition — `chain(clip_by_global_norm(1), adamw(warmup-cosine))`
//!   and early stopping on a loss plateau, which a scanned loop cannot express.
//! - [`pattern_c`]: the seed's NumPyro model in flock's model language, trained by the same
//!   `ensemble_step` through its split log-density.

use std::error::Error;
use std::time::{Duration, Instant};

use flock_autograd::{
    Activation, Arg, AutogradError, Batch, Graph, LogJoint, Mlp, ParamLayout, Var,
};
use flock_ensemble::model::{ModelContext, ModelLogJoint, normal};
use flock_ensemble::{
    EnsembleState, ensemble_init, ensemble_predict, ensemble_step, standard_normal,
};
use flock_kernels::Element;
use flock_optim::{
    AdamConfig, GradientTransformation, adam, adamw, chain, clip_by_global_norm,
    warmup_cosine_decay_schedule,
};

use flock_metrics::{FitPanel, figure_svg};

use super::seed::*;
use super::{create_output_folder, write_figure};

/// Where a pattern's initial parameters come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// flock's own initialisation with this seed (the seed's recipe).
    Seed(u64),
    /// pyrox's exact initial parameters from the seed fixture (Patterns A and B).
    Fixture,
}

/// A trained pattern: its member predictions on the test grid, runtime and steps taken.
#[derive(Clone, Debug)]
pub struct PatternFit {
    /// The table label.
    pub label: &'static str,
    /// Member predictions `[E, N]` on `x_test`.
    pub preds: Vec<f64>,
    /// Training wall-clock time.
    pub runtime: Duration,
    /// Steps taken.
    pub steps: usize,
}

/// The 16 members' starting point: pyrox's parameters from the fixture of `pattern`, or flock's
/// own initialisation of the seed MLP.
fn initial_state<O: GradientTransformation<f64>>(
    pattern: &str,
    init: Init,
    layout: &ParamLayout,
    mlp: &Mlp,
    optimizer: &O,
) -> Result<EnsembleState<f64, O::State>, Box<dyn Error>> {
    Ok(match init {
        Init::Fixture => {
            EnsembleState::from_params(fixture_init_params(pattern, layout)?, optimizer)?
        }
        Init::Seed(seed) => ensemble_init(
            layout,
            mlp_init_fn(layout, mlp),
            optimizer,
            ENSEMBLE_SIZE,
            seed,
        )?,
    })
}

/// Pattern A — from scratch: `adam(5e-3)`, MAP, full batch, 1,500 steps.
///
/// # Errors
/// Fixture, optimizer or training errors.
pub fn pattern_a(data: &SeedData, init: Init) -> Result<PatternFit, Box<dyn Error>> {
    let (layout, mlp) = seed_mlp();
    let optimizer = adam(5e-3, AdamConfig::default())?;
    let mut state = initial_state("pattern_a", init, &layout, &mlp, &optimizer)?;
    let mut log_joint = seed_log_joint(&layout, mlp.clone());
    let batch = Batch::new(&data.x, &data.y, data.x.len())?;

    let start = Instant::now();
    for _ in 0..NUM_EPOCHS {
        ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
    }
    let runtime = start.elapsed();

    let preds = ensemble_predict(
        &state.params,
        predict_mlp(&mlp),
        &data.x_test,
        data.x_test.len(),
    )?;
    Ok(PatternFit {
        label: "A — from scratch",
        preds: preds.values,
        runtime,
        steps: NUM_EPOCHS,
    })
}

/// Pattern B — `chain(clip_by_global_norm(1), adamw(warmup_cosine_decay(1e-4, 5e-3, 100, 1500,
/// 1e-4), weight_decay = 0))`, stopping when the mean loss has not improved by more than 0.5
/// for 50 steps.
///
/// # Errors
/// Fixture, optimizer or training errors.
pub fn pattern_b(data: &SeedData, init: Init) -> Result<PatternFit, Box<dyn Error>> {
    let (layout, mlp) = seed_mlp();
    let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 100, NUM_EPOCHS as u64, 1e-4, 1.0)?;
    let optimizer = chain(
        clip_by_global_norm(1.0)?,
        adamw(schedule, AdamConfig::default(), 0.0, None)?,
    );
    let mut state = initial_state("pattern_b", init, &layout, &mlp, &optimizer)?;
    let mut log_joint = seed_log_joint(&layout, mlp.clone());
    let batch = Batch::new(&data.x, &data.y, data.x.len())?;

    let (patience, mut best, mut plateau, mut steps) = (50, f64::INFINITY, 0, 0);
    let start = Instant::now();
    for _ in 0..NUM_EPOCHS {
        let losses = ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
        steps += 1;
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        if mean < best - 0.5 {
            best = mean;
            plateau = 0;
        } else {
            plateau += 1;
        }
        if plateau >= patience {
            break;
        }
    }
    let runtime = start.elapsed();

    let preds = ensemble_predict(
        &state.params,
        predict_mlp(&mlp),
        &data.x_test,
        data.x_test.len(),
    )?;
    Ok(PatternFit {
        label: "B — optax + early stop",
        preds: preds.values,
        runtime,
        steps,
    })
}

/// The seed's `numpyro_model`: `W1 (1,H) b1 W2 (H,H) b2 W3 (H,1) b3`, N(0, 1) priors,
/// `y ~ N(f, σ)`.
///
/// # Errors
/// Shape errors of the model's computation.
pub fn seed_model<T: Element>(
    m: &mut ModelContext<'_, '_, T>,
    x: Var,
    y: Var,
) -> Result<(), AutogradError> {
    let standard = || normal(Arg::Const(T::ZERO), Arg::Const(T::ONE));
    let w1 = m.sample("W1", standard(), [1, HIDDEN])?;
    let b1 = m.sample("b1", standard(), [HIDDEN])?;
    let w2 = m.sample("W2", standard(), [HIDDEN, HIDDEN])?;
    let b2 = m.sample("b2", standard(), [HIDDEN])?;
    let w3 = m.sample("W3", standard(), [HIDDEN, 1])?;
    let b3 = m.sample("b3", standard(), [1])?;
    let f = seed_network(m.graph(), x, [w1, b1, w2, b2, w3, b3])?;
    m.observe("y", normal(f, Arg::Const(T::from_f64(SIGMA))), y)
}

/// The seed model's network `tanh(tanh(x·W1 + b1)·W2 + b2)·W3 + b3`, as `[B]`.
///
/// # Errors
/// Shape errors.
pub fn seed_network<T: Element>(
    g: &mut Graph<'_, T>,
    x: Var,
    [w1, b1, w2, b2, w3, b3]: [Var; 6],
) -> Result<Var, AutogradError> {
    // `x @ W + b` layers, each one fused node (the same values as matmul, add and tanh).
    let h = g.affine(x, w1, Some(b1), Activation::Tanh)?;
    let h = g.affine(h, w2, Some(b2), Activation::Tanh)?;
    let f = g.affine(h, w3, Some(b3), Activation::Identity)?;
    g.squeeze_last(f)
}

/// Pattern C — the seed's model through flock's model language: `adam(5e-3)`, the model's split
/// log-density with `prior_weight = 1` (MAP), 1,500 full-batch steps; the init is the seed's
/// `init_numpyro` (every weight `0.5·N(0, 1)`) with the given seed.
///
/// # Errors
/// Model, optimizer or training errors.
pub fn pattern_c(data: &SeedData, init_seed: u64) -> Result<PatternFit, Box<dyn Error>> {
    let batch = Batch::new(&data.x, &data.y, data.x.len())?;
    let mut log_joint = ModelLogJoint::new(seed_model, batch)?;
    let layout = log_joint.layout().clone();
    let optimizer = adam(5e-3, AdamConfig::default())?;
    let init = |rng: &mut flock_ensemble::MemberRng| {
        (0..layout.member_size())
            .map(|_| 0.5 * standard_normal(rng))
            .collect()
    };
    let mut state = ensemble_init(&layout, init, &optimizer, ENSEMBLE_SIZE, init_seed)?;

    let start = Instant::now();
    for _ in 0..NUM_EPOCHS {
        ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
    }
    let runtime = start.elapsed();

    let ids: Vec<_> = ["W1", "b1", "W2", "b2", "W3", "b3"]
        .iter()
        .map(|n| {
            layout.find(n).ok_or(AutogradError::Site {
                name: (*n).to_owned(),
                problem: "missing",
            })
        })
        .collect::<Result<_, _>>()?;
    let preds = ensemble_predict(
        &state.params,
        |g, x| {
            let mut p = [x; 6];
            for (slot, &id) in p.iter_mut().zip(&ids) {
                *slot = g.param(id)?;
            }
            seed_network(g, x, p)
        },
        &data.x_test,
        data.x_test.len(),
    )?;
    Ok(PatternFit {
        label: "C — model language (log_density)",
        preds: preds.values,
        runtime,
        steps: NUM_EPOCHS,
    })
}

/// The seed tutorial end to end: Patterns A, B and C on `data`, the summary table (printed) and
/// the figure written as `seed_tutorial.png` and `.svg` into `out_dir`; returns the table rows.
///
/// # Errors
/// Training, scoring, fixture and file errors.
pub fn tutorial(
    data: &SeedData,
    init: Init,
    init_seed: u64,
    out_dir: &std::path::Path,
) -> Result<Vec<TableRow>, Box<dyn Error>> {
    create_output_folder(out_dir)?;
    let fits = [
        pattern_a(data, init)?,
        pattern_b(data, init)?,
        pattern_c(data, init_seed)?,
    ];
    let rows = fits
        .iter()
        .map(|f| TableRow::score(f.label, f.runtime, &f.preds, data))
        .collect::<Result<Vec<_>, _>>()?;
    let oracle_nll = 0.5 * (2.0 * std::f64::consts::PI * SIGMA * SIGMA).ln() + 0.5;
    println!("oracle NLL (perfect f, known σ): {oracle_nll:.3}");
    println!("oracle 95% interval width (4σ):  {:.2}\n", 4.0 * SIGMA);
    println!("{}", TableRow::header());
    for row in &rows {
        println!("{row}");
    }
    println!(
        "(exact mixture scores; Pattern B stopped after {} steps)",
        fits[1].steps
    );
    let panels: Vec<FitPanel<'_>> = fits
        .iter()
        .zip(&rows)
        .map(|(fit, row)| FitPanel {
            label: format!("{} ({:.2} s)", fit.label, fit.runtime.as_secs_f64()),
            x_test: &data.x_test,
            member_means: &fit.preds,
            y_truth: Some(&data.y_truth),
            y_obs: &data.y_obs,
            train: (&data.x, &data.y),
            scores: &row.scores,
        })
        .collect();
    for name in ["seed_tutorial.png", "seed_tutorial.svg"] {
        let path = out_dir.join(name);
        write_figure(&path, figure_svg(&panels))?;
        println!("figure: {}", path.display());
    }
    Ok(rows)
}
