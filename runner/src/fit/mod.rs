//! Quick fits on tabular data: standardise with training statistics, train an ensemble of MLPs
//! with a Gaussian head, predict a mixture on the original target scale, save and load the
//! fitted model (spec and normalisation inside the checkpoint).

mod training;
mod variational;

use std::path::Path;

use flock_autograd::{
    Activation, Arg, AutogradError, Batch, Graph, LogJoint, Mlp, MlpConfig, ParamId, ParamLayout,
    Parameters, Shape, Tape, TapeLogJoint, Var,
};
use flock_ensemble::{EnsembleError, MemberRng, ParallelLogJoint, ensemble_predict_in, member_rng};
use flock_metrics::{MixturePredictive, Sigma};
use flock_optim::{AdamConfig, LearningRate, adam, cosine_decay_schedule};
use rand::RngExt;
use serde_json::{Value, json};

use crate::checkpoint::{Checkpoint, CheckpointError, save_result};
use crate::map::{EnsembleMAP, EnsembleResult};
use crate::vi::{EnsembleVI, Guide, ViConfig};
use training::{Epochs, ViRunner, train_epochs};
use variational::{NetworkModel, guide_draws, guide_layout};

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

/// How each member is fitted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum FitMethod {
    /// A point estimate per member (Deep Ensembles): maximum likelihood, or MAP with
    /// [`FitSpec::prior_weight`].
    #[default]
    Map,
    /// A Gaussian guide per member over every weight ([`EnsembleVI`]; mean-field, or low-rank
    /// plus diagonal with [`ViFit::rank`]), under the standard-normal prior a MAP fit uses,
    /// trained on the tempered ELBO with the mini-batch scale `N/|B|`; the predictive mixes
    /// [`ViFit::samples`] networks drawn from each member's guide.
    Vi(ViFit),
}

impl FitMethod {
    /// Its command-line name (`map`, `vi`).
    pub fn name(self) -> &'static str {
        match self {
            FitMethod::Map => "map",
            FitMethod::Vi(_) => "vi",
        }
    }
}

/// The settings of a [`FitMethod::Vi`] fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViFit {
    /// `β` of the tempered ELBO `E[log p(y|θ)] − β·KL(q ‖ p)` (1 = the ELBO).
    pub kl_weight: f64,
    /// The guides' initial scale (numpyro's `init_scale`) on the standardised weights.
    pub init_scale: f64,
    /// Networks drawn from each member's guide for the predictive (`E·S` components).
    pub samples: usize,
    /// Columns of a low-rank factor over all of a member's weights ([`Guide::LowRank`]); 0 =
    /// mean-field.
    pub rank: usize,
}

impl ViFit {
    /// The guide family it asks for.
    pub fn guide(self) -> Guide {
        match self.rank {
            0 => Guide::MeanField,
            rank => Guide::LowRank { rank },
        }
    }
}

impl Default for ViFit {
    /// `β = 1`, initial scale 0.01, 10 draws per member, mean-field.
    fn default() -> Self {
        ViFit {
            kl_weight: 1.0,
            init_scale: 0.01,
            samples: 10,
            rank: 0,
        }
    }
}

/// What to fit and how.
#[derive(Clone, Debug, PartialEq)]
pub struct FitSpec {
    /// Point estimates or variational guides.
    pub method: FitMethod,
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
    /// Weight of a standard-normal prior on the (standardised-scale) weights (0 = MLE) of a
    /// point-estimate fit; a VI fit takes 0 here (its prior enters through the KL, weighted by
    /// [`ViFit::kl_weight`]).
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
    /// Deep Ensembles' UCI defaults: 5 point-estimate members, one hidden layer of 50 ReLU units,
    /// a heteroscedastic head, 40 epochs, batch 100, Adam 1e-2, no prior.
    fn default() -> Self {
        FitSpec {
            method: FitMethod::Map,
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

/// The errors of a fit, as text.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A fitted ensemble: spec, normalisation, network and parameters.
#[derive(Clone, Debug)]
pub struct FittedModel {
    /// The spec it was fitted with.
    pub spec: FitSpec,
    /// Training statistics.
    pub norm: Normalisation,
    /// The parameters (standardised scale): one network per member, or with
    /// [`FitMethod::Vi`] each member's guide (`{leaf}.loc`, `{leaf}.rho`, scale
    /// `softplus(ρ)`).
    pub params: Parameters<f64>,
    net: Network,
    /// With [`FitMethod::Vi`]: the networks drawn from the guides, which the predictive mixes.
    draws: Option<Parameters<f64>>,
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
/// for a learned one, `None` for a fixed one), the network's leaves read from the parameters.
fn head(
    g: &mut Graph<'_, f64>,
    net: &Network,
    likelihood: Likelihood,
    x: Var,
) -> Result<(Var, Option<Var>), AutogradError> {
    head_with(g, net, likelihood, x, |g, id| g.param(id))
}

/// [`head`] with each leaf's value given by `leaf(graph, id)`.
fn head_with(
    g: &mut Graph<'_, f64>,
    net: &Network,
    likelihood: Likelihood,
    x: Var,
    mut leaf: impl FnMut(&mut Graph<'_, f64>, ParamId) -> Result<Var, AutogradError>,
) -> Result<(Var, Option<Var>), AutogradError> {
    let out = net.mlp.forward_with(g, x, &mut leaf)?;
    match (likelihood, net.log_sigma) {
        (Likelihood::Heteroscedastic, _) => {
            let mu = g.select_column(out, 0)?;
            let raw = g.select_column(out, 1)?;
            let var = g.softplus(raw);
            let var = g.offset(var, 1e-6);
            Ok((mu, Some(g.sqrt(var))))
        }
        (Likelihood::Learned, Some(id)) => {
            let log_sigma = leaf(g, id)?;
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

/// Trains `spec` on `(x, y)` (`[N, D]`, original scale).
///
/// A point-estimate ensemble and a VI ensemble of the same networks on one noisy curve, scored
/// on new inputs with the exact mixture scores:
///
/// ```
/// use flock_metrics::exact_scores;
/// use flock_runner::fit::{FitMethod, FitSpec, ViFit, fit};
///
/// let x: Vec<f64> = (0..300).map(|i| i as f64 / 50.0).collect();
/// let noise = |i: usize| 0.1 * ((i * 7919 % 23) as f64 / 11.0 - 1.0);
/// let y: Vec<f64> = x.iter().enumerate().map(|(i, a)| a.sin() + noise(i)).collect();
/// let x_test = [0.5f64, 2.5, 4.5];
/// let y_test: Vec<f64> = x_test.iter().map(|a| a.sin()).collect();
/// for method in [FitMethod::Map, FitMethod::Vi(ViFit::default())] {
///     let spec = FitSpec { method, epochs: 60, ..FitSpec::default() };
///     let (model, result) = fit(&spec, &x, &y, 1)?;
///     assert_eq!(result.steps, 60 * 3); // 300 rows in batches of 100
///     let predictive = model.predict(&x_test)?;
///     let scores = exact_scores(&predictive, &y_test, None)?;
///     assert!(scores.rmse_obs < 0.2, "{method:?}: {}", scores.rmse_obs);
///     // The predictive mixes one network per member, or 10 draws from each member's guide.
///     let components = match method { FitMethod::Map => 5, FitMethod::Vi(_) => 50 };
///     assert_eq!(model.networks().members(), components);
/// }
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// # Errors
/// Training errors, as text.
pub fn fit(
    spec: &FitSpec,
    x: &[f64],
    y: &[f64],
    features: usize,
) -> Result<(FittedModel, EnsembleResult<f64>), BoxError> {
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
) -> Result<(FittedModel, EnsembleResult<f64>), BoxError> {
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
    let init = network.mlp.member_init::<f64, MemberRng>(&layout);
    let batch_size = spec.batch_size.clamp(1, rows.max(1));
    let epochs = Epochs {
        steps_per_epoch: rows.div_ceil(batch_size),
        batch_size,
        rows,
    };
    let steps = spec.epochs * epochs.steps_per_epoch;
    let learning_rate: LearningRate = match spec.schedule {
        LearningRateSchedule::Constant => spec.learning_rate.into(),
        LearningRateSchedule::CosineDecay => {
            cosine_decay_schedule(spec.learning_rate, steps.max(1) as u64, 0.0, 1.0)?.into()
        }
    };
    let optimizer = adam(learning_rate, AdamConfig::default())?;
    let data = Batch::new(&xs, &ys, rows)?;
    let held_out = match &held_out {
        Some((hx, hy)) => Some(Batch::new(hx, hy, hy.len())?),
        None => None,
    };
    let (result, draws) = match spec.method {
        FitMethod::Map => {
            let log_joint = ParallelLogJoint::new(
                (0..spec.threads.max(1))
                    .map(|_| map_log_joint(&network, &layout, likelihood, sigma_std))
                    .collect(),
            );
            let mut map =
                EnsembleMAP::new(log_joint, init, optimizer, spec.members, spec.prior_weight)
                    .map_err(|e| e.to_string())?;
            let result = train_epochs(&mut map, spec, &epochs, data, held_out, progress)?;
            (result, None)
        }
        FitMethod::Vi(vi) => {
            if spec.prior_weight != 0.0 {
                return Err(EnsembleError::InvalidArgument {
                    name: "prior_weight",
                    value: spec.prior_weight,
                    expected: "0 for a VI fit (its prior enters through the KL, weighted by kl_weight)",
                }
                .into());
            }
            let model = NetworkModel::new(network.clone(), &layout, likelihood, sigma_std);
            let config = ViConfig {
                ensemble_size: spec.members,
                kl_weight: vi.kl_weight,
                init_scale: vi.init_scale,
                guide: vi.guide(),
                threads: spec.threads.max(1),
                ..ViConfig::default()
            };
            let mut runner = ViRunner {
                vi: EnsembleVI::new(model, data, init, optimizer, config)
                    .map_err(|e| e.to_string())?,
                network: &network,
                layout: &layout,
                likelihood,
                sigma_std,
                guide: vi.guide(),
                samples: vi.samples,
                seed: spec.seed,
                tape: Tape::new(),
            };
            let result = train_epochs(&mut runner, spec, &epochs, data, held_out, progress)?;
            let draws = guide_draws(&result.params, &layout, vi.guide(), vi.samples, spec.seed)?;
            (result, Some(draws))
        }
    };
    let model = FittedModel {
        spec: spec.clone(),
        norm,
        params: result.params.clone(),
        net: network,
        draws,
    };
    Ok((model, result))
}

/// A point-estimate fit's log-joint: `y ~ N(μ, σ)` with the head's `(μ, σ)` (σ =
/// `sigma_std` for a fixed likelihood), and a standard-normal prior on every leaf.
fn map_log_joint(
    network: &Network,
    layout: &ParamLayout,
    likelihood: Likelihood,
    sigma_std: f64,
) -> impl LogJoint<f64> + Send + use<> {
    let net = network.clone();
    TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
        let (mu, sigma) = head(g, &net, likelihood, x)?;
        let ll = match sigma {
            Some(s) => g.normal_log_density(y, mu, s)?,
            None => g.normal_log_density(y, mu, Arg::Const(sigma_std))?,
        };
        let theta = g.all_params();
        let lp = g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.0))?;
        Ok((ll, lp))
    })
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

/// How [`component_moments`] reports: on the scale `y = mean + std·ŷ` of the standardised `ŷ`
/// (a fixed likelihood's σ given on that scale), the rows taken in chunks of about
/// `chunk_values` hidden values.
#[derive(Clone, Copy, Debug)]
struct Readout {
    mean: f64,
    std: f64,
    fixed_sigma: f64,
    chunk_values: usize,
}

impl Readout {
    /// On the scale `mean + std·ŷ`, in chunks of [`CHUNK_VALUES`].
    fn new(mean: f64, std: f64, fixed_sigma: f64) -> Readout {
        Readout {
            mean,
            std,
            fixed_sigma,
            chunk_values: CHUNK_VALUES,
        }
    }
}

/// Each network's `(μ, σ)` at each row of the standardised inputs `xs` (`[n, D]`), as `readout`
/// says. `[M·n]` each, network-major.
///
/// Rows go through the networks in chunks (2²⁰ hidden values, 8 MiB, by default) on `tape`, so
/// that many networks (a VI fit's draws) on many rows never build one huge tape; the chunking
/// does not change the values.
fn component_moments(
    tape: &mut Tape<f64>,
    nets: &Parameters<f64>,
    net: &Network,
    likelihood: Likelihood,
    xs: &[f64],
    n: usize,
    readout: Readout,
) -> Result<(Vec<f64>, Vec<f64>), BoxError> {
    let Readout {
        mean: y_mean,
        std: y_std,
        fixed_sigma,
        chunk_values,
    } = readout;
    let m = nets.members();
    let d = xs.len() / n.max(1);
    let width = net.mlp.config().width_size.max(2);
    let chunk = (chunk_values / (m * width).max(1)).clamp(1, n.max(1));
    let fixed: Vec<Option<f64>> = (0..m)
        .map(|e| match (likelihood, net.log_sigma) {
            (Likelihood::Fixed { .. }, _) => Ok(Some(fixed_sigma)),
            (Likelihood::Learned, Some(id)) => Ok(Some(nets.leaf(e, id)?[0].exp() * y_std)),
            _ => Ok(None),
        })
        .collect::<Result<_, AutogradError>>()?;
    let (mut means, mut sigmas) = (vec![0.0; m * n], vec![0.0; m * n]);
    for start in (0..n).step_by(chunk) {
        let rows = chunk.min(n - start);
        let preds = ensemble_predict_in(
            tape,
            nets,
            |g, x| {
                let (mu, sigma) = head(g, net, likelihood, x)?;
                let mu = g.unsqueeze_last(mu)?;
                let sigma = match (likelihood, sigma) {
                    (Likelihood::Heteroscedastic, Some(s)) => g.unsqueeze_last(s)?,
                    _ => g.scale(mu, 0.0),
                };
                stack_two(g, mu, sigma)
            },
            &xs[start * d..(start + rows) * d],
            rows,
        )?;
        for (e, fixed) in fixed.iter().enumerate() {
            let block = preds.member(e);
            for i in 0..rows {
                means[e * n + start + i] = block[2 * i] * y_std + y_mean;
                sigmas[e * n + start + i] = fixed.unwrap_or(block[2 * i + 1] * y_std);
            }
        }
    }
    Ok((means, sigmas))
}

/// Hidden values per chunk of [`component_moments`].
const CHUNK_VALUES: usize = 1 << 20;

impl FittedModel {
    /// Features the model takes.
    pub fn features(&self) -> usize {
        self.norm.x_mean.len()
    }

    /// The networks the predictive mixes, one per component: the members' own, or with
    /// [`FitMethod::Vi`] `S` draws from each member's guide (component `e·S + s`), drawn once
    /// from the fit's seed, so a saved and loaded model predicts the same.
    pub fn networks(&self) -> &Parameters<f64> {
        self.draws.as_ref().unwrap_or(&self.params)
    }

    /// The predictive mixture on the original target scale for inputs `x` (`[N, D]`).
    ///
    /// # Errors
    /// Errors for a wrong number of features or NaN inputs.
    pub fn predict(&self, x: &[f64]) -> Result<MixturePredictive, BoxError> {
        let d = self.features();
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(format!("inputs hold {} values, not rows of {d} features", x.len()).into());
        }
        let n = x.len() / d;
        let xs = self.norm.features(x);
        let nets = self.networks();
        let m = nets.members();
        let fixed_sigma = match self.spec.likelihood {
            Likelihood::Fixed { sigma } => sigma,
            _ => f64::NAN,
        };
        let (means, sigmas) = component_moments(
            &mut Tape::new(),
            nets,
            &self.net,
            self.spec.likelihood,
            &xs,
            n,
            Readout::new(self.norm.y_mean, self.norm.y_std, fixed_sigma),
        )?;
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
        let method = match s.method {
            FitMethod::Map => json!({"kind": "map"}),
            FitMethod::Vi(vi) => json!({
                "kind": "vi", "kl_weight": vi.kl_weight, "init_scale": vi.init_scale,
                "samples": vi.samples, "rank": vi.rank,
            }),
        };
        json!({
            "method": method,
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
        let method = match spec.get("method") {
            // Models saved before VI fits existed are point estimates.
            None => FitMethod::Map,
            Some(m) => match m["kind"].as_str() {
                Some("map") => FitMethod::Map,
                Some("vi") => {
                    let field = |k: &str| m[k].as_f64().ok_or_else(|| bad(k));
                    FitMethod::Vi(ViFit {
                        kl_weight: field("kl_weight")?,
                        init_scale: field("init_scale")?,
                        samples: field("samples")? as usize,
                        rank: field("rank")? as usize,
                    })
                }
                _ => return Err(bad("method")),
            },
        };
        let fit_spec = FitSpec {
            method,
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
        let (params, draws) = match fit_spec.method {
            FitMethod::Map => (checkpoint.params::<f64>(&layout, fit_spec.members)?, None),
            FitMethod::Vi(vi) => {
                let (guide, _) = guide_layout(&layout, vi.guide()).map_err(|_| bad("network"))?;
                let guides = checkpoint.params::<f64>(&guide, fit_spec.members)?;
                let draws = guide_draws(&guides, &layout, vi.guide(), vi.samples, fit_spec.seed)?;
                (guides, Some(draws))
            }
        };
        Ok(FittedModel {
            spec: fit_spec,
            norm,
            params,
            net,
            draws,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taking the rows in chunks — one row, a few rows with a ragged last chunk, all at once —
    /// gives the same moments, for every likelihood and on a target scale.
    #[test]
    fn component_moments_do_not_depend_on_the_chunking() {
        let (features, rows, nets) = (3, 37, 23);
        let xs: Vec<f64> = (0..rows * features)
            .map(|i| ((i * 11 % 17) as f64 - 8.0) / 5.0)
            .collect();
        for likelihood in [
            Likelihood::Heteroscedastic,
            Likelihood::Learned,
            Likelihood::Fixed { sigma: 0.4 },
        ] {
            let spec = FitSpec {
                hidden: 7,
                likelihood,
                ..FitSpec::default()
            };
            let (layout, net) = network(&spec, features).unwrap();
            let mut params = Parameters::<f64>::zeros(layout, nets);
            let mut rng = member_rng(2, 0);
            flock_ensemble::fill_standard_normal(&mut rng, params.values_mut());
            let moments = |chunk_values: usize| {
                let readout = Readout {
                    chunk_values,
                    ..Readout::new(1.5, 2.0, 0.4)
                };
                component_moments(
                    &mut Tape::new(),
                    &params,
                    &net,
                    likelihood,
                    &xs,
                    rows,
                    readout,
                )
                .unwrap()
            };
            let whole = moments(CHUNK_VALUES);
            assert!(CHUNK_VALUES / (nets * 7) >= rows, "one chunk");
            for chunk_values in [1, nets * 7 * 5] {
                let chunked = moments(chunk_values);
                for (a, b) in chunked
                    .0
                    .iter()
                    .chain(&chunked.1)
                    .zip(whole.0.iter().chain(&whole.1))
                {
                    assert!(
                        (a - b).abs() <= 1e-13 * (1.0 + b.abs()),
                        "{likelihood:?} {chunk_values}: {a} vs {b}"
                    );
                }
            }
            // The fixed σ is reported as given; the learned one on the target scale.
            if let Likelihood::Fixed { sigma } = likelihood {
                assert!(whole.1.iter().all(|&s| s == sigma));
            }
        }
    }
}
