//! The seed tutorial's problem: its sinc data, its MLP and log-joint, its fixture, its table.

use std::fmt;
use std::time::Duration;

use flock_autograd::{
    Activation, AutogradError, Graph, LogJoint, Mlp, MlpConfig, ParamLayout, Parameters,
    TapeLogJoint, Var,
};
use flock_ensemble::{member_rng, standard_normal};
use flock_fixtures::FixtureError;
use flock_kernels::Element;
use flock_metrics::{ExactScores, MetricsError, MixturePredictive, Sigma, exact_scores};
use rand::RngExt;

/// The seed's observation noise σ.
pub const SIGMA: f64 = 0.1;
/// Hidden units per layer.
pub const HIDDEN: usize = 32;
/// Members.
pub const ENSEMBLE_SIZE: usize = 16;
/// Training steps of Patterns A and C.
pub const NUM_EPOCHS: usize = 1500;

/// The seed's data set: 80 noisy training points of `sinc` on [−10, 10] and a dense test grid.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedData {
    /// Training inputs (80).
    pub x: Vec<f64>,
    /// Noisy training targets.
    pub y: Vec<f64>,
    /// Test grid, `linspace(−12, 12, 200)`.
    pub x_test: Vec<f64>,
    /// Noiseless `sinc` on the test grid.
    pub y_truth: Vec<f64>,
    /// The truth plus fresh observation noise.
    pub y_obs: Vec<f64>,
}

/// `sin(x)/x` (1 at 0) — the seed's `jnp.sinc(x / π)`.
pub fn sinc(x: f64) -> f64 {
    if x == 0.0 { 1.0 } else { x.sin() / x }
}

impl SeedData {
    /// The seed of flock's own draw of the tutorial's data (the tutorial's `PRNGKey(666)`).
    pub const DATA_SEED: u64 = 666;

    /// The seed's recipe with flock's generator: `X ~ U(−10, 10)`, `y = sinc(X) + σε`.
    pub fn generate(seed: u64) -> SeedData {
        let mut rng = member_rng(seed, 0);
        let x: Vec<f64> = (0..80).map(|_| rng.random_range(-10.0..10.0)).collect();
        let y = x
            .iter()
            .map(|&v| sinc(v) + SIGMA * standard_normal(&mut rng))
            .collect();
        let x_test: Vec<f64> = (0..200).map(|i| -12.0 + 24.0 * i as f64 / 199.0).collect();
        let y_truth: Vec<f64> = x_test.iter().map(|&v| sinc(v)).collect();
        let y_obs = y_truth
            .iter()
            .map(|&v| v + SIGMA * standard_normal(&mut rng))
            .collect();
        SeedData {
            x,
            y,
            x_test,
            y_truth,
            y_obs,
        }
    }

    /// The seed's exact data, from `fixtures/seed/data.json`.
    ///
    /// # Errors
    /// [`FixtureError`] when the fixture cannot be read.
    pub fn from_fixture() -> Result<SeedData, FixtureError> {
        let d = flock_fixtures::load(&flock_fixtures::dir("seed").join("data.json"))?;
        let f = |k: &str| flock_fixtures::field_numbers(&d, k);
        Ok(SeedData {
            x: f("X")?,
            y: f("y")?,
            x_test: f("X_test")?,
            y_truth: f("y_truth")?,
            y_obs: f("y_test_noisy")?,
        })
    }
}

/// The seed's `eqx.nn.MLP(1, 1, 32, depth=2, tanh)` and its layout.
pub fn seed_mlp() -> (ParamLayout, Mlp) {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, HIDDEN, 2, Activation::Tanh),
    )
    .expect("a fresh layout has no duplicate names");
    (layout, mlp)
}

/// The seed's `log_joint_native`: `ℓ = −½Σ(y − f)²/σ²`, `π = −½Σθ²` over every weight.
/// Works for any one-output MLP and either precision (the benches use it for wider networks).
pub fn seed_log_joint<T: Element>(
    layout: &ParamLayout,
    mlp: Mlp,
) -> impl LogJoint<T> + Send + use<T> {
    TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, T>, x, y| {
        let f = mlp.forward(g, x)?;
        let f = g.squeeze_last(f)?;
        let r = g.sub(y, f)?;
        let sse = g.sum_squares(r);
        let theta = g.all_params();
        let ss = g.sum_squares(theta);
        Ok((g.scale(sse, -0.5 / (SIGMA * SIGMA)), g.scale(ss, -0.5)))
    })
}

/// `f(x)` of an MLP with one output, as `[N]` (the seed's `predict_mlp`).
pub fn predict_mlp(
    mlp: &Mlp,
) -> impl FnMut(&mut Graph<'_, f64>, Var) -> Result<Var, AutogradError> {
    move |g, x| {
        let f = mlp.forward(g, x)?;
        g.squeeze_last(f)
    }
}

/// pyrox's initial parameters for a pattern (`"pattern_a"` or `"pattern_b"`) from the fixture.
///
/// # Errors
/// [`FixtureError`] when the fixture cannot be read or does not fit `layout`.
pub fn fixture_init_params(
    pattern: &str,
    layout: &ParamLayout,
) -> Result<Parameters<f64>, FixtureError> {
    let fx = flock_fixtures::load(&flock_fixtures::dir("seed").join(format!("{pattern}.json")))?;
    let bad = |field: &str| FixtureError::Field {
        field: field.to_owned(),
        expected: "a leaf of the seed's MLP, stacked over members",
    };
    let leaves = fx["init_params"]
        .as_object()
        .ok_or_else(|| bad("init_params"))?;
    let members = leaves
        .values()
        .next()
        .map(|v| flock_fixtures::shape(v)[0])
        .ok_or_else(|| bad("init_params"))?;
    let mut params = Parameters::zeros(layout.clone(), members);
    for (name, values) in leaves {
        let id = layout.find(name).ok_or_else(|| bad(name))?;
        params
            .set_leaf_stacked(id, &flock_fixtures::numbers(values)?)
            .map_err(|_| bad(name))?;
    }
    Ok(params)
}

/// One row of the seed's summary table.
#[derive(Clone, Debug)]
pub struct TableRow {
    /// The pattern's label.
    pub label: String,
    /// Wall-clock training time.
    pub runtime: Duration,
    /// Exact scores of the fit.
    pub scores: ExactScores,
}

impl TableRow {
    /// Scores member predictions `[E, N]` on the seed's test set (σ = 0.1, exact metrics).
    ///
    /// # Errors
    /// [`MetricsError`] for NaN predictions.
    pub fn score(
        label: impl Into<String>,
        runtime: Duration,
        preds: &[f64],
        data: &SeedData,
    ) -> Result<TableRow, MetricsError> {
        let n = data.x_test.len();
        let pred = MixturePredictive::new(preds, preds.len() / n, n, Sigma::Shared(SIGMA))?;
        let scores = exact_scores(&pred, &data.y_obs, Some(&data.y_truth))?;
        Ok(TableRow {
            label: label.into(),
            runtime,
            scores,
        })
    }

    /// The seed's table header.
    pub fn header() -> String {
        format!(
            "{:<35} {:>8} {:>11} {:>9} {:>8} {:>7} {:>9}",
            "Pattern", "Runtime", "RMSE-truth", "RMSE-obs", "NLL", "cov95", "sharp95"
        )
    }
}

impl fmt::Display for TableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scores;
        write!(
            f,
            "{:<35} {:>7.2}s {:>11.4} {:>9.4} {:>8.3} {:>7.2} {:>9.3}",
            self.label,
            self.runtime.as_secs_f64(),
            s.rmse_truth.unwrap_or(f64::NAN),
            s.rmse_obs,
            s.nll,
            s.coverage_95,
            s.sharpness_95
        )
    }
}

/// An `init_fn` for [`ensemble_init`](flock_ensemble::ensemble_init): equinox's default
/// initialisation of `mlp`, one member per call.
pub fn mlp_init_fn<'a>(
    layout: &'a ParamLayout,
    mlp: &'a Mlp,
) -> impl FnMut(&mut flock_ensemble::MemberRng) -> Vec<f64> + 'a {
    move |rng| {
        let mut block = vec![0.0; layout.member_size()];
        mlp.init_member(layout, rng, &mut block)
            .expect("the layout is the MLP's own");
        block
    }
}

/// The examples' command line: `--fixture` (the seed's exact data and pyrox's initial
/// parameters), `--fixture-data` (the seed's data, flock's init), `--data-seed N` (default 666)
/// and `--init-seed N` (default 0) for flock's own data and init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExampleOptions {
    /// Use the seed fixture's data and initial parameters.
    pub fixture: bool,
    /// Use the seed fixture's data with flock's own initialisation.
    pub fixture_data: bool,
    /// Seed of flock's data generation.
    pub data_seed: u64,
    /// Seed of flock's initialisation.
    pub init_seed: u64,
}

impl ExampleOptions {
    /// Parses `std::env::args()`.
    ///
    /// # Errors
    /// A message naming the argument that could not be understood.
    pub fn from_args() -> Result<ExampleOptions, String> {
        let mut options = ExampleOptions {
            fixture: false,
            fixture_data: false,
            data_seed: SeedData::DATA_SEED,
            init_seed: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<u64, String> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{name} needs a non-negative integer"))
            };
            match arg.as_str() {
                "--fixture" => options.fixture = true,
                "--fixture-data" => options.fixture_data = true,
                "--data-seed" => options.data_seed = number("--data-seed")?,
                "--init-seed" => options.init_seed = number("--init-seed")?,
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (expected --fixture, --fixture-data, --data-seed N, --init-seed N)"
                    ));
                }
            }
        }
        Ok(options)
    }

    /// The data these options select.
    ///
    /// # Errors
    /// [`FixtureError`] when `--fixture` is given and the fixture cannot be read.
    pub fn data(&self) -> Result<SeedData, FixtureError> {
        if self.fixture || self.fixture_data {
            SeedData::from_fixture()
        } else {
            Ok(SeedData::generate(self.data_seed))
        }
    }
}
