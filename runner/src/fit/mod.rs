//! Quick fits on tabular data: standardise with training statistics, train an ensemble of MLPs
//! with a Gaussian head, predict a mixture on the original target scale, save and load the
//! fitted model (spec and normalisation inside the checkpoint).

use std::path::Path;

use flock_autograd::{
    Activation, AutogradError, Batch, Graph, Mlp, MlpConfig, ParamId, ParamLayout, Parameters,
    Shape, TapeLogJoint, Var,
};
use flock_ensemble::{
    EnsembleError, MemberRng, ParallelLogJoint, Sampling, ensemble_predict, member_rng,
};
use flock_metrics::{MixturePredictive, Sigma};
use flock_optim::{AdamConfig, LearningRate, adam, cosine_decay_schedule};
use rand::RngExt;
use serde_json::{Value, json};

use crate::checkpoint::{Checkpoint, CheckpointError, save_result, save_state_with};
use crate::map::{BestParams, EnsembleMAP, EnsembleResult, RunOptions, split_seed};
use crate::progress::ProgressBar;

/// The likelihood of the network's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Likelihood {
    /// Two outputs: mean and variance `softplus(raw) + 1e-6` (Deep Ensembles).
    Heteroscedastic,
    /// One output, Gaussian noise with this σ in the target's units.
    Fixed {
        /// The noise standard deviation.
        sigma: f64,
    },
    /// One output, Gaussian noise with one σ per member learned with the weights (homoscedastic;
    /// a leaf `log_sigma` of shape `[]`, σ = exp(log_sigma) on the standardised scale, starting
    /// at 1).
    Learned,
}

/// How the learning rate moves over the fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearningRateSchedule {
    /// The same rate at every step.
    Constant,
    /// optax's `cosine_decay_schedule(lr, total_steps, alpha = 0)`: from the rate down to 0 at
    /// the last step.
    CosineDecay,
}

impl LearningRateSchedule {
    /// Its command-line name (`constant`, `cosine`).
    pub fn name(self) -> &'static str {
        match self {
            LearningRateSchedule::Constant => "constant",
            LearningRateSchedule::CosineDecay => "cosine",
        }
    }

    /// Parses a command-line name (`constant`, `cosine`).
    pub fn parse(name: &str) -> Option<LearningRateSchedule> {
        match name {
            "constant" => Some(LearningRateSchedule::Constant),
            "cosine" => Some(LearningRateSchedule::CosineDecay),
            _ => None,
        }
    }
}

/// What to fit and how.
#[derive(Clone, Debug, PartialEq)]
pub struct FitSpec {
    /// Members.
    pub members: usize,
    /// Units per hidden layer.
    pub hidden: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// Output likelihood.
    pub likelihood: Likelihood,
    /// Epochs over the training rows.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// How the learning rate moves over the fit.
    pub schedule: LearningRateSchedule,
    /// Weight of a standard-normal prior on the (standardised-scale) weights (0 = MLE).
    pub prior_weight: f64,
    /// Seed.
    pub seed: u64,
    /// Threads to split members over (results do not depend on it).
    pub threads: usize,
    /// Fraction of the training rows held out (a seeded random choice) and scored after every
    /// epoch; each member ends at the epoch of its best held-out NLL (early stopping). `0` =
    /// train on every row and keep the last parameters.
    pub validation_fraction: f64,
}

impl Default for FitSpec {
    /// Deep Ensembles' UCI defaults: 5 members, one hidden layer of 50 ReLU units, a
    /// heteroscedastic head, 40 epochs, batch 100, Adam 1e-2, no prior.
    fn default() -> Self {
        FitSpec {
            members: 5,
            hidden: 50,
            depth: 1,
            activation: Activation::Relu,
            likelihood: Likelihood::Heteroscedastic,
            epochs: 40,
            batch_size: 100,
            learning_rate: 1e-2,
            schedule: LearningRateSchedule::Constant,
            prior_weight: 0.0,
            seed: 0,
            threads: 1,
            validation_fraction: 0.0,
        }
    }
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Identity => "identity",
        Activation::Tanh => "tanh",
        Activation::Sigmoid => "sigmoid",
        Activation::Softplus => "softplus",
        Activation::Relu => "relu",
    }
}

/// Parses an activation name (`relu`, `tanh`, `sigmoid`, `softplus`, `identity`).
pub fn parse_activation(name: &str) -> Option<Activation> {
    Some(match name {
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "softplus" => Activation::Softplus,
        "identity" => Activation::Identity,
        _ => return None,
    })
}

/// Per-column mean and std of the training rows (std 0 → 1, as the benchmark code does).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalisation {
    /// Feature means.
    pub x_mean: Vec<f64>,
    /// Feature standard deviations.
    pub x_std: Vec<f64>,
    /// Target mean.
    pub y_mean: f64,
    /// Target standard deviation.
    pub y_std: f64,
}

/// `(mean, std)` of each column of a row-major `[rows, cols]` matrix (population std; 0 → 1).
pub fn column_moments(values: &[f64], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = values.len() / cols.max(1);
    let n = rows.max(1) as f64;
    let mut mean = vec![0.0; cols];
    for row in values.chunks_exact(cols) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n;
        }
    }
    let mut var = vec![0.0; cols];
    for row in values.chunks_exact(cols) {
        for c in 0..cols {
            var[c] += (row[c] - mean[c]).powi(2) / n;
        }
    }
    let std = var
        .into_iter()
        .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, std)
}

impl Normalisation {
    /// Statistics of the training rows `x` (`[N, D]`) and `y`.
    pub fn from_training(x: &[f64], features: usize, y: &[f64]) -> Normalisation {
        let (x_mean, x_std) = column_moments(x, features);
        let (y_mean, y_std) = column_moments(y, 1);
        Normalisation {
            x_mean,
            x_std,
            y_mean: y_mean[0],
            y_std: y_std[0],
        }
    }

    /// `(x − mean)/std` per column.
    pub fn features(&self, x: &[f64]) -> Vec<f64> {
        let d = self.x_mean.len();
        x.chunks_exact(d)
            .flat_map(|row| (0..d).map(move |c| (row[c] - self.x_mean[c]) / self.x_std[c]))
            .collect()
    }

    /// `(y − mean)/std`.
    pub fn target(&self, y: &[f64]) -> Vec<f64> {
        y.iter().map(|v| (v - self.y_mean) / self.y_std).collect()
    }
}

/// A fitted ensemble: spec, normalisation, network and parameters.
#[derive(Clone, Debug)]
pub struct FittedModel {
    /// The spec it was fitted with.
    pub spec: FitSpec,
    /// Training statistics.
    pub norm: Normalisation,
    /// The parameters (standardised scale).
    pub params: Parameters<f64>,
    net: Network,
}

/// The MLP and, for [`Likelihood::Learned`], the `log_sigma` leaf.
#[derive(Clone, Debug)]
struct Network {
    mlp: Mlp,
    log_sigma: Option<ParamId>,
}

fn network(spec: &FitSpec, features: usize) -> Result<(ParamLayout, Network), AutogradError> {
    let outputs = match spec.likelihood {
        Likelihood::Heteroscedastic => 2,
        Likelihood::Fixed { .. } | Likelihood::Learned => 1,
    };
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(features, outputs, spec.hidden, spec.depth, spec.activation),
    )?;
    let log_sigma = match spec.likelihood {
        Likelihood::Learned => Some(layout.add("log_sigma", Shape::SCALAR)?),
        _ => None,
    };
    Ok((layout, Network { mlp, log_sigma }))
}

/// `(μ, σ)` on the standardised scale for inputs `x` (σ `[N]` for the heteroscedastic head, `[]`
/// for a learned one, `None` for a fixed one).
fn head(
    g: &mut Graph<'_, f64>,
    net: &Network,
    likelihood: Likelihood,
    x: Var,
) -> Result<(Var, Option<Var>), AutogradError> {
    let out = net.mlp.forward(g, x)?;
    match (likelihood, net.log_sigma) {
        (Likelihood::Heteroscedastic, _) => {
            let mu = g.select_column(out, 0)?;
            let raw = g.select_column(out, 1)?;
            let var = g.softplus(raw);
            let var = g.offset(var, 1e-6);
            Ok((mu, Some(g.sqrt(var))))
        }
        (Likelihood::Learned, Some(id)) => {
            let log_sigma = g.param(id)?;
            Ok((g.squeeze_last(out)?, Some(g.exp(log_sigma))))
        }
        _ => Ok((g.squeeze_last(out)?, None)),
    }
}

/// Where a fit keeps its training state between epochs, so an interrupted fit can resume.
#[derive(Clone, Debug)]
pub struct FitProgress {
    /// The training-state file (written atomically after every epoch).
    pub state_file: std::path::PathBuf,
    /// Continue from `state_file` if it exists.
    pub resume: bool,
    /// Stop after this many epochs in this invocation (the state file stays, for `resume`).
    pub max_epochs_this_run: Option<usize>,
    /// Show a progress bar (steps, steps/s, mean loss per row, eta) on stderr.
    pub show: bool,
}

/// `[E, t]` losses followed by `[E, t2]` more, as `[E, t + t2]`.
fn append_losses(
    history: &[f64],
    steps: usize,
    more: &[f64],
    more_steps: usize,
    members: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(members * (steps + more_steps));
    for e in 0..members {
        out.extend_from_slice(&history[e * steps..(e + 1) * steps]);
        out.extend_from_slice(&more[e * more_steps..(e + 1) * more_steps]);
    }
    out
}

/// Trains `spec` on `(x, y)` (`[N, D]`, original scale).
///
/// # Errors
/// Training errors, as text.
pub fn fit(
    spec: &FitSpec,
    x: &[f64],
    y: &[f64],
    features: usize,
) -> Result<(FittedModel, EnsembleResult<f64>), Box<dyn std::error::Error + Send + Sync>> {
    fit_with_progress(spec, x, y, features, None)
}

/// [`fit`], saving the training state after every epoch to `progress.state_file` and resuming
/// from it when asked: a resumed fit ends with the bits of an uninterrupted one.
///
/// # Errors
/// Training and checkpoint errors.
pub fn fit_with_progress(
    spec: &FitSpec,
    x: &[f64],
    y: &[f64],
    features: usize,
    progress: Option<&FitProgress>,
) -> Result<(FittedModel, EnsembleResult<f64>), Box<dyn std::error::Error + Send + Sync>> {
    let norm = Normalisation::from_training(x, features, y);
    let (xs, ys) = (norm.features(x), norm.target(y));
    let (xs, ys, held_out) = hold_out(spec, xs, ys, features)?;
    let rows = ys.len();
    let (layout, network) = network(spec, features)?;
    let likelihood = spec.likelihood;
    let sigma_std = match likelihood {
        Likelihood::Fixed { sigma } => sigma / norm.y_std,
        Likelihood::Heteroscedastic | Likelihood::Learned => 1.0,
    };
    let make = || {
        let net = network.clone();
        TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
            let (mu, sigma) = head(g, &net, likelihood, x)?;
            let ll = match sigma {
                Some(s) => g.normal_log_density(y, mu, s)?,
                None => g.normal_log_density(y, mu, flock_autograd::Arg::Const(sigma_std))?,
            };
            let theta = g.all_params();
            let lp = g.normal_log_density(
                theta,
                flock_autograd::Arg::Const(0.0),
                flock_autograd::Arg::Const(1.0),
            )?;
            Ok((ll, lp))
        })
    };
    let log_joint = ParallelLogJoint::new((0..spec.threads.max(1)).map(|_| make()).collect());
    let init = network.mlp.member_init::<f64, MemberRng>(&layout);
    let batch_size = spec.batch_size.clamp(1, rows.max(1));
    let epoch_steps = rows.div_ceil(batch_size);
    let steps = spec.epochs * epoch_steps;
    let learning_rate: LearningRate = match spec.schedule {
        LearningRateSchedule::Constant => spec.learning_rate.into(),
        LearningRateSchedule::CosineDecay => {
            cosine_decay_schedule(spec.learning_rate, steps.max(1) as u64, 0.0, 1.0)?.into()
        }
    };
    let optimizer = adam(learning_rate, AdamConfig::default())?;
    let mut map = EnsembleMAP::new(log_joint, init, optimizer, spec.members, spec.prior_weight)
        .map_err(|e| e.to_string())?;
    let data = Batch::new(&xs, &ys, rows)?;
    let held_out = match &held_out {
        Some((hx, hy)) => Some(Batch::new(hx, hy, hy.len())?),
        None => None,
    };
    let (init_seed, batch_seed) = split_seed(spec.seed);
    let members = spec.members;
    // Start fresh, or from the training state an interrupted run left.
    let (mut state, mut step, mut history, mut best) =
        match progress.filter(|p| p.resume && p.state_file.exists()) {
            Some(p) => {
                let checkpoint = Checkpoint::read(&p.state_file)?;
                let (state, step) = checkpoint.training_state(map.optimizer(), &layout, members)?;
                let history = checkpoint.tensor::<f64>("losses_so_far", &[members, step])?;
                let best = match held_out {
                    Some(_) => {
                        let scores = checkpoint.tensor::<f64>("best_held_out_nll", &[members])?;
                        let values = checkpoint
                            .tensor::<f64>("best_params", &[members, layout.member_size()])?;
                        let params = Parameters::from_values(layout.clone(), members, values)?;
                        Some(BestParams::from_parts(scores, params)?)
                    }
                    None => None,
                };
                (state, step, history, best)
            }
            None => {
                let state = map.init(init_seed).map_err(|e| e.to_string())?;
                let best = held_out.map(|_| BestParams::new(&state.params));
                (state, 0, Vec::new(), best)
            }
        };
    let mut diverged = Vec::new();
    let stop_at = progress
        .and_then(|p| p.max_epochs_this_run)
        .map_or(steps, |e| (step + e * epoch_steps).min(steps));
    let mut bar = progress
        .filter(|p| p.show)
        .map(|_| ProgressBar::new("fit", "steps", steps));
    // One epoch at a time, saving the training state after each (when asked to).
    while step < stop_at {
        let end = (step + epoch_steps).min(stop_at);
        let part = map
            .train(
                &mut state,
                batch_seed,
                end,
                data,
                RunOptions {
                    batch_size: Some(batch_size),
                    sampling: Sampling::WithoutReplacement,
                    start_step: step,
                    ..RunOptions::default()
                },
            )
            .map_err(|e| e.to_string())?;
        history = append_losses(&history, step, &part.losses, part.steps, members);
        diverged.extend(part.diverged.iter().map(|d| crate::map::Divergence {
            member: d.member,
            step: d.step + step,
        }));
        step = end;
        // Early stopping: each member keeps the parameters of its best held-out epoch.
        if let (Some(held), Some(best)) = (held_out, best.as_mut()) {
            let now = map
                .held_out_nll(&state.params, held)
                .map_err(|e| e.to_string())?;
            for (e, &score) in now.iter().enumerate() {
                best.offer(e, score, state.params.member(e));
            }
        }
        if let Some(bar) = bar.as_mut() {
            let latest: Vec<f64> = (0..members)
                .map(|e| history[e * step + step - 1])
                .filter(|v| v.is_finite())
                .collect();
            // Per training row, so the figure reads as a (standardised-scale) NLL.
            let per_row = latest.iter().sum::<f64>() / (latest.len().max(1) * rows) as f64;
            bar.update(step, Some(per_row));
        }
        if let Some(p) = progress {
            let losses_shape = [members, step];
            let best_shape = [members, layout.member_size()];
            let mut tensors: Vec<(&str, &[f64], &[usize])> =
                vec![("losses_so_far", &history, &losses_shape)];
            if let Some(best) = &best {
                tensors.push(("best_held_out_nll", best.scores(), &best_shape[..1]));
                tensors.push(("best_params", best.params().values(), &best_shape));
            }
            save_state_with(&p.state_file, &state, step, &[], &tensors)?;
        }
    }
    let params = match best {
        Some(best) => best.into_params(&state.params),
        None => state.params.clone(),
    };
    let result = EnsembleResult {
        params,
        losses: history,
        steps: step,
        stopped_early: step < steps,
        diverged,
    };
    let model = FittedModel {
        spec: spec.clone(),
        norm,
        params: result.params.clone(),
        net: network,
    };
    Ok((model, result))
}

/// Training and held-out rows (standardised), `spec.validation_fraction` of them held out: a
/// random choice seeded by `spec.seed`, both parts in their original order.
type Split = (Vec<f64>, Vec<f64>, Option<(Vec<f64>, Vec<f64>)>);

fn hold_out(
    spec: &FitSpec,
    xs: Vec<f64>,
    ys: Vec<f64>,
    features: usize,
) -> Result<Split, EnsembleError> {
    let f = spec.validation_fraction;
    if !(f.is_finite() && (0.0..1.0).contains(&f)) {
        return Err(EnsembleError::InvalidArgument {
            name: "validation_fraction",
            value: f,
            expected: "a fraction in [0, 1) of the training rows",
        });
    }
    let rows = ys.len();
    let held = (f * rows as f64).round() as usize;
    if f == 0.0 {
        return Ok((xs, ys, None));
    }
    if held == 0 || held >= rows {
        return Err(EnsembleError::InvalidArgument {
            name: "validation_fraction",
            value: f,
            expected: "a fraction that leaves at least one held-out and one training row",
        });
    }
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = member_rng(spec.seed ^ 0x0068_656c_645f_6f75, 0);
    for i in (1..rows).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut is_held = vec![false; rows];
    for &r in &order[..held] {
        is_held[r] = true;
    }
    let (mut tx, mut ty, mut hx, mut hy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..rows {
        let (x, y) = if is_held[r] {
            (&mut hx, &mut hy)
        } else {
            (&mut tx, &mut ty)
        };
        x.extend_from_slice(&xs[r * features..(r + 1) * features]);
        y.push(ys[r]);
    }
    Ok((tx, ty, Some((hx, hy))))
}

/// `[N, 1]` and `[N, 1]` side by side as `[N, 2]`.
fn stack_two(g: &mut Graph<'_, f64>, a: Var, b: Var) -> Result<Var, AutogradError> {
    let left = g.input(&[1.0, 0.0], [1, 2])?;
    let right = g.input(&[0.0, 1.0], [1, 2])?;
    let a2 = g.matmul(a, left)?;
    let b2 = g.matmul(b, right)?;
    g.add(a2, b2)
}

impl FittedModel {
    /// Features the model takes.
    pub fn features(&self) -> usize {
        self.norm.x_mean.len()
    }

    /// The predictive mixture on the original target scale for inputs `x` (`[N, D]`).
    ///
    /// # Errors
    /// Errors for a wrong number of features or NaN inputs.
    pub fn predict(
        &self,
        x: &[f64],
    ) -> Result<MixturePredictive, Box<dyn std::error::Error + Send + Sync>> {
        let d = self.features();
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(format!("inputs hold {} values, not rows of {d} features", x.len()).into());
        }
        let n = x.len() / d;
        let xs = self.norm.features(x);
        let likelihood = self.spec.likelihood;
        let preds = ensemble_predict(
            &self.params,
            |g, x| {
                let (mu, sigma) = head(g, &self.net, likelihood, x)?;
                let mu = g.unsqueeze_last(mu)?;
                let sigma = match (likelihood, sigma) {
                    (Likelihood::Heteroscedastic, Some(s)) => g.unsqueeze_last(s)?,
                    _ => g.scale(mu, 0.0),
                };
                stack_two(g, mu, sigma)
            },
            &xs,
            n,
        )?;
        let m = self.params.members();
        let (mut means, mut sigmas) = (vec![0.0; m * n], vec![0.0; m * n]);
        for e in 0..m {
            let block = preds.member(e);
            let fixed = match (likelihood, self.net.log_sigma) {
                (Likelihood::Fixed { sigma }, _) => Some(sigma),
                (Likelihood::Learned, Some(id)) => {
                    Some(self.params.leaf(e, id)?[0].exp() * self.norm.y_std)
                }
                _ => None,
            };
            for i in 0..n {
                means[e * n + i] = block[2 * i] * self.norm.y_std + self.norm.y_mean;
                sigmas[e * n + i] = fixed.unwrap_or(block[2 * i + 1] * self.norm.y_std);
            }
        }
        Ok(MixturePredictive::new(
            &means,
            m,
            n,
            Sigma::PerComponent(sigmas),
        )?)
    }

    fn spec_json(&self) -> Value {
        let s = &self.spec;
        let likelihood = match s.likelihood {
            Likelihood::Heteroscedastic => json!({"kind": "heteroscedastic"}),
            Likelihood::Learned => json!({"kind": "learned"}),
            Likelihood::Fixed { sigma } => json!({"kind": "fixed", "sigma": sigma}),
        };
        json!({
            "members": s.members, "hidden": s.hidden, "depth": s.depth,
            "activation": activation_name(s.activation), "likelihood": likelihood,
            "epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate,
            "schedule": s.schedule.name(),
            "prior_weight": s.prior_weight, "seed": s.seed,
            "validation_fraction": s.validation_fraction,
            "x_mean": self.norm.x_mean, "x_std": self.norm.x_std,
            "y_mean": self.norm.y_mean, "y_std": self.norm.y_std,
        })
    }

    /// Saves the model: parameters and losses as safetensors, spec and normalisation in its
    /// metadata.
    ///
    /// # Errors
    /// [`CheckpointError::Io`].
    pub fn save(&self, path: &Path, result: &EnsembleResult<f64>) -> Result<(), CheckpointError> {
        let spec = self.spec_json().to_string();
        save_result(path, result, &[("flock_fit", &spec)])
    }

    /// Loads a model saved by [`FittedModel::save`].
    ///
    /// # Errors
    /// [`CheckpointError`]s for unreadable, corrupt or foreign files.
    pub fn load(path: &Path) -> Result<FittedModel, CheckpointError> {
        let checkpoint = Checkpoint::read(path)?;
        let bad = |what: &str| CheckpointError::Mismatch {
            reason: format!("not a `flock fit` model ({what})"),
        };
        let spec: Value = checkpoint
            .metadata("flock_fit")
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or_else(|| bad("no fit metadata"))?;
        let num = |k: &str| spec.get(k).and_then(Value::as_f64).ok_or_else(|| bad(k));
        let vec = |k: &str| -> Result<Vec<f64>, CheckpointError> {
            spec.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .ok_or_else(|| bad(k))
        };
        let likelihood = match spec["likelihood"]["kind"].as_str() {
            Some("heteroscedastic") => Likelihood::Heteroscedastic,
            Some("learned") => Likelihood::Learned,
            Some("fixed") => Likelihood::Fixed {
                sigma: spec["likelihood"]["sigma"]
                    .as_f64()
                    .ok_or_else(|| bad("sigma"))?,
            },
            _ => return Err(bad("likelihood")),
        };
        let fit_spec = FitSpec {
            members: num("members")? as usize,
            hidden: num("hidden")? as usize,
            depth: num("depth")? as usize,
            activation: spec["activation"]
                .as_str()
                .and_then(parse_activation)
                .ok_or_else(|| bad("activation"))?,
            likelihood,
            epochs: num("epochs")? as usize,
            batch_size: num("batch_size")? as usize,
            learning_rate: num("learning_rate")?,
            schedule: match spec.get("schedule").and_then(Value::as_str) {
                // Models saved before schedules existed were fitted with a constant rate.
                None => LearningRateSchedule::Constant,
                Some(name) => LearningRateSchedule::parse(name).ok_or_else(|| bad("schedule"))?,
            },
            prior_weight: num("prior_weight")?,
            seed: num("seed")? as u64,
            threads: 1,
            // Models saved before held-out early stopping existed trained on every row.
            validation_fraction: spec
                .get("validation_fraction")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        };
        let norm = Normalisation {
            x_mean: vec("x_mean")?,
            x_std: vec("x_std")?,
            y_mean: num("y_mean")?,
            y_std: num("y_std")?,
        };
        if norm.x_mean.len() != norm.x_std.len() || norm.x_mean.is_empty() {
            return Err(bad("normalisation"));
        }
        let (layout, net) = network(&fit_spec, norm.x_mean.len()).map_err(|_| bad("network"))?;
        let params = checkpoint.params::<f64>(&layout, fit_spec.members)?;
        Ok(FittedModel {
            spec: fit_spec,
            norm,
            params,
            net,
        })
    }
}
