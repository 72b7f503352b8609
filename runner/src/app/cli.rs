//! `flock`: deep ensembles from the command line.
//!
//! - `flock demo`: the seed tutorial — three 16-member fits of the sinc problem, the table, the
//!   figure.
//! - `flock fit DATA --target COL`: an ensemble on a table (flock's best recipe unless told
//!   otherwise), scored on held-out rows, saved.
//! - `flock predict MODEL DATA`: the predictive mean, spread and quantiles as CSV, the model's
//!   feature columns picked from the file by name.
//! - `flock uci DIR`: the UCI regression benchmark protocol on a dataset folder (or a folder of
//!   them), beside the published numbers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use rayon::prelude::*;

use flock_autograd::Activation;
use flock_ensemble::{SeedStream, shuffle};
use flock_kernels::Element;
use flock_metrics::{ExactScores, Series, line_chart_svg};

use super::patterns::{Init, tutorial};
use super::progress::{ProgressBar, TrainingBar};
use super::seed::SeedData;
use super::uci::{Dataset, Protocol, Reference, SplitScores, published, run_split};
use super::write_figure;
use crate::error::Error;
use crate::files::write_atomically;
use crate::regressor::{
    AnyRegressor, FitHooks, FitMethod, FitOutcome, FitSpec, LearningRateSchedule, Likelihood,
    Matrix, Regressor, ViFit,
};
use crate::table::{DataError, NamedTable, read_named_table};

type BoxError = Box<dyn std::error::Error>;

#[derive(Parser, Debug)]
#[command(
    name = "flock",
    version,
    about = "Deep ensembles with calibrated uncertainty, on a CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The seed tutorial end to end: fits, table and figure.
    Demo {
        /// Use the seed's exact data and pyrox's initial parameters from ../shared/fixtures (or
        /// $FLOCK_FIXTURES).
        #[arg(long)]
        fixture: bool,
        /// Where the figure goes.
        #[arg(long, default_value = "target/flock-figures")]
        out: PathBuf,
        /// Seed of flock's own data and initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Fit an ensemble to a CSV or whitespace-separated table and score it on held-out rows.
    Fit(FitArgs),
    /// Predict with a fitted model: mean, total / epistemic / aleatoric std and quantiles as CSV.
    Predict {
        /// A model written by `flock fit`.
        model: PathBuf,
        /// Inputs: a table with the model's feature columns (picked by name when both have a
        /// header; other columns, such as the target, are ignored).
        data: PathBuf,
        /// Feature columns (names or indices), for files without the model's column names.
        #[arg(long, value_delimiter = ',')]
        features: Option<Vec<String>>,
        /// Predictive quantiles to add.
        #[arg(long, value_delimiter = ',', default_value = "0.025,0.975")]
        quantiles: Vec<f64>,
        /// The CSV to write.
        #[arg(long, default_value = "predictions.csv")]
        out: PathBuf,
    },
    /// The UCI regression benchmark on DIR (one dataset folder, or a folder of them).
    Uci(UciArgs),
}

#[derive(clap::Args, Debug)]
struct FitArgs {
    /// The data file (a first line with non-numeric cells is a header).
    data: PathBuf,
    /// The target column (name or 0-based index).
    #[arg(long)]
    target: String,
    /// Feature columns (names or indices; default: every other column).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// A separate test file with the same columns (default: hold out --test-fraction).
    #[arg(long)]
    test: Option<PathBuf>,
    /// Fraction of rows held out for testing when no --test file is given.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// The recipe the settings start from [default: flock].
    #[arg(long, value_enum)]
    protocol: Option<Protocol>,
    /// The element type of the fit.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    dtype: Dtype,
    /// Threads to split members over (default: every core; results are the same for any
    /// value).
    #[arg(long)]
    threads: Option<usize>,
    /// Where the fitted model goes (its training state is kept in OUT.state during the fit).
    #[arg(long, default_value = "flock-model.safetensors")]
    out: PathBuf,
    /// Continue an interrupted fit from OUT.state, to the bits an uninterrupted fit gives.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs, keeping OUT.state for --resume (for testing resumption).
    #[arg(long, hide = true)]
    max_epochs_this_run: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Also draw the held-out calibration curve to this file (.png or .svg).
    #[arg(long)]
    figure: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct UciArgs {
    /// A dataset folder (with data.txt) or a folder of dataset folders.
    dir: PathBuf,
    /// Only these splits (e.g. --splits 0,1,2).
    #[arg(long, value_delimiter = ',')]
    splits: Option<Vec<usize>>,
    /// Only these datasets (folder names).
    #[arg(long, value_delimiter = ',')]
    datasets: Option<Vec<String>>,
    /// The recipe the settings start from: `deep-ensembles`, the paper's protocol (40 epochs at
    /// a constant Adam 1e-2, every training row), or `flock` (80 epochs, Adam 1e-2
    /// cosine-decayed, 10 % of the training rows held out for per-member early stopping).
    #[arg(long, value_enum, default_value_t = Protocol::DeepEnsembles)]
    protocol: Protocol,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Threads to run splits on (default: every core; results do not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

/// The element type of a fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dtype {
    F32,
    F64,
}

/// The settings of a fit (`fit` and `uci`); each overrides the protocol's.
#[derive(clap::Args, Debug)]
struct RecipeArgs {
    /// Ensemble members [default: 5].
    #[arg(long)]
    members: Option<usize>,
    /// Units of each hidden layer, e.g. 50 or 100,50 [default: 50; uci: the dataset's].
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Hidden activation [default: relu].
    #[arg(long, value_parser = activation_parser())]
    activation: Option<Activation>,
    /// The noise model: a second output for the variance, one σ per member learned, or a
    /// fixed σ (with --sigma) [default: heteroscedastic].
    #[arg(long, value_enum)]
    likelihood: Option<LikelihoodKind>,
    /// A fixed noise σ in target units (implies --likelihood fixed).
    #[arg(long)]
    sigma: Option<f64>,
    /// Epochs over the training rows [default: the protocol's: flock 80, deep-ensembles 40].
    #[arg(long)]
    epochs: Option<usize>,
    /// Examples per step [default: 100].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam's learning rate [default: 1e-2].
    #[arg(long)]
    lr: Option<f64>,
    /// How the rate moves [default: the protocol's: flock cosine, deep-ensembles constant].
    #[arg(long, value_enum)]
    schedule: Option<LearningRateSchedule>,
    /// Weight of a standard-normal prior on the weights, 0 = maximum likelihood [default: 0].
    #[arg(long)]
    prior_weight: Option<f64>,
    /// Fraction of the training rows held out for early stopping: each member ends at the epoch
    /// of its best held-out NLL, 0 = none [default: the protocol's: flock 0.1,
    /// deep-ensembles 0].
    #[arg(long)]
    validation_fraction: Option<f64>,
    /// `map`: a point estimate per member (Deep Ensembles); `vi`: a Gaussian guide per member
    /// over every weight (mean-field, or low-rank with --rank; standard-normal prior, tempered
    /// ELBO), the predictive mixing --samples draws per member.
    #[arg(long, value_enum, default_value_t = MethodKind::Map)]
    method: MethodKind,
    /// VI: β of the tempered ELBO E[log p(y|θ)] − β·KL [default: 1, the ELBO].
    #[arg(long)]
    kl_weight: Option<f64>,
    /// VI: the guides' initial scale on the standardised weights [default: 0.01].
    #[arg(long)]
    init_scale: Option<f64>,
    /// VI: networks drawn from each member's guide for the predictive [default: 10].
    #[arg(long)]
    samples: Option<usize>,
    /// VI: columns of a low-rank factor over all of a member's weights [default: 0, mean-field].
    #[arg(long)]
    rank: Option<usize>,
    /// Seed (data split, held-out rows, initialisation, batches, noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LikelihoodKind {
    Heteroscedastic,
    Learned,
    Fixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MethodKind {
    Map,
    Vi,
}

/// `--activation`: one of [`Activation::ALL`]'s names.
fn activation_parser() -> impl TypedValueParser<Value = Activation> {
    PossibleValuesParser::new(Activation::ALL.map(Activation::name))
        .map(|name| name.parse::<Activation>().expect("a listed name"))
}

impl RecipeArgs {
    /// `base` with every setting given on the command line, checked; the hidden layers as given
    /// (`None`: the base's, or for `uci` the dataset's).
    fn spec(&self, base: FitSpec) -> Result<(FitSpec, Option<Vec<usize>>), BoxError> {
        let mut spec = base;
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {
                $(if let Some(value) = self.$flag.clone() {
                    spec.$field = value;
                })*
            };
        }
        set!(members => members, activation => activation, epochs => epochs,
            batch_size => batch_size, lr => learning_rate, schedule => schedule,
            prior_weight => prior_weight, validation_fraction => validation_fraction);
        spec.seed = self.seed;
        if let Some(hidden) = &self.hidden {
            spec.hidden = hidden.clone();
        }
        spec.likelihood = match (self.likelihood, self.sigma) {
            (None | Some(LikelihoodKind::Fixed), Some(sigma)) => Likelihood::Fixed { sigma },
            (None, None) => spec.likelihood,
            (Some(LikelihoodKind::Heteroscedastic), None) => Likelihood::Heteroscedastic,
            (Some(LikelihoodKind::Learned), None) => Likelihood::Learned,
            (Some(LikelihoodKind::Fixed), None) => {
                return Err("--likelihood fixed needs --sigma".into());
            }
            (Some(kind), Some(_)) => {
                let name = kind.to_possible_value().map(|v| v.get_name().to_owned());
                return Err(format!(
                    "--sigma fixes σ; it cannot be used with --likelihood {}",
                    name.unwrap_or_default()
                )
                .into());
            }
        };
        spec.method = match self.method {
            MethodKind::Map => {
                // VI settings with point estimates would be ignored: refuse them instead.
                for (given, flag) in [
                    (self.kl_weight.is_some(), "--kl-weight"),
                    (self.init_scale.is_some(), "--init-scale"),
                    (self.samples.is_some(), "--samples"),
                    (self.rank.is_some(), "--rank"),
                ] {
                    if given {
                        return Err(format!("{flag} is a VI setting: add --method vi").into());
                    }
                }
                FitMethod::Map
            }
            MethodKind::Vi => {
                let default = ViFit::default();
                FitMethod::Vi(ViFit {
                    kl_weight: self.kl_weight.unwrap_or(default.kl_weight),
                    init_scale: self.init_scale.unwrap_or(default.init_scale),
                    samples: self.samples.unwrap_or(default.samples),
                    rank: self.rank.unwrap_or(default.rank),
                })
            }
        };
        spec.validate().map_err(with_flag_names)?;
        Ok((spec, self.hidden.clone()))
    }
}

/// A setting's error with the setting called by its flag (`learning_rate` → `--lr`).
fn with_flag_names(e: Error) -> BoxError {
    match e {
        Error::InvalidArgument {
            name,
            value,
            expected,
        } => {
            let flag = match name {
                "learning_rate" => "--lr".to_owned(),
                other => format!("--{}", other.replace('_', "-")),
            };
            format!("{flag} {value}: expected {expected}").into()
        }
        other => other.into(),
    }
}

/// `--threads`: the given count (not 0), or every core.
fn threads(given: Option<usize>) -> Result<usize, BoxError> {
    match given {
        Some(0) => Err("--threads 0: expected at least one thread".into()),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The `flock` command: parses the arguments, runs the command, reports an error in one line
/// and exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { fixture, out, seed } => demo(fixture, &out, seed),
        Command::Fit(args) => match args.dtype {
            Dtype::F64 => fit_command::<f64>(&args),
            Dtype::F32 => fit_command::<f32>(&args),
        },
        Command::Predict {
            model,
            data,
            features,
            quantiles,
            out,
        } => predict_command(&model, &data, features.as_deref(), &quantiles, &out),
        Command::Uci(args) => uci_command(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flock: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(fixture: bool, out: &Path, seed: u64) -> Result<(), BoxError> {
    let data = if fixture {
        SeedData::from_fixture()?
    } else {
        SeedData::generate(SeedData::DATA_SEED.wrapping_add(seed))
    };
    let init = if fixture {
        Init::Fixture
    } else {
        Init::Seed(seed)
    };
    tutorial(&data, init, seed, out)?;
    Ok(())
}

/// Feature columns: the named ones, or every column but `exclude`.
fn feature_columns(
    table: &NamedTable,
    path: &Path,
    features: Option<&[String]>,
    exclude: Option<usize>,
) -> Result<Vec<usize>, DataError> {
    match features {
        Some(names) => names.iter().map(|n| table.column(n, path)).collect(),
        None => Ok((0..table.table.cols)
            .filter(|&c| Some(c) != exclude)
            .collect()),
    }
}

/// The cells of `rows` × `columns`, row-major, in the element type.
fn gather<T: Element>(table: &NamedTable, rows: &[usize], columns: &[usize]) -> Vec<T> {
    let cols = table.table.cols;
    rows.iter()
        .flat_map(|&r| {
            columns
                .iter()
                .map(move |&c| T::from_f64(table.table.values[r * cols + c]))
        })
        .collect()
}

fn fit_command<T: Element>(args: &FitArgs) -> Result<(), BoxError> {
    let protocol = args.protocol.unwrap_or(Protocol::Flock);
    let (spec, _) = args.recipe.spec(protocol.spec())?;
    let data = &args.data;
    let table = read_named_table(data)?;
    let target_column = table.column(&args.target, data)?;
    let columns = feature_columns(&table, data, args.features.as_deref(), Some(target_column))?;
    if columns.is_empty() {
        return Err(format!("{}: no feature columns besides the target", data.display()).into());
    }
    let all: Vec<usize> = (0..table.table.rows).collect();
    let (train_rows, test_table, test_rows) = match &args.test {
        Some(path) => {
            let t = read_named_table(path)?;
            let rows = (0..t.table.rows).collect();
            (all, Some((t, path.clone())), rows)
        }
        None => {
            let f = args.test_fraction;
            if !(0.0..1.0).contains(&f) {
                return Err(format!("--test-fraction {f}: expected 0 ≤ f < 1").into());
            }
            let mut order = all;
            shuffle(&mut SeedStream::TestRows.rng(spec.seed), &mut order);
            let n_test = (order.len() as f64 * f).round() as usize;
            let test_rows = order.split_off(order.len() - n_test);
            (order, None, test_rows)
        }
    };
    if train_rows.len() < 2 {
        return Err(DataError::TooFewRows {
            path: data.clone(),
            rows: train_rows.len(),
            needed: 2,
        }
        .into());
    }
    let features = columns.len();
    let x_train: Vec<T> = gather(&table, &train_rows, &columns);
    let y_train: Vec<T> = gather(&table, &train_rows, &[target_column]);
    if y_train.iter().all(|&v| v == y_train[0]) {
        return Err(format!(
            "{}: the target column {:?} is constant on the training rows",
            data.display(),
            args.target
        )
        .into());
    }
    let mut regressor = Regressor::<T>::from_spec(spec.clone()).threads(threads(args.threads)?);
    if table.has_header {
        regressor =
            regressor.feature_names(columns.iter().map(|&c| table.names[c].clone()).collect());
    }
    // OUT.state: the model's name with `.state` appended.
    let state_file = {
        let mut name = args.out.as_os_str().to_owned();
        name.push(".state");
        PathBuf::from(name)
    };
    let hooks = FitHooks {
        state_file: Some(state_file.clone()),
        resume: args.resume,
        max_epochs_this_call: args.max_epochs_this_run,
        progress: (!args.quiet)
            .then(|| Box::new(TrainingBar::new("fit")) as Box<dyn crate::train::ProgressHook>),
    };
    let start = Instant::now();
    let model = match regressor.fit_with(&Matrix::new(&x_train, features)?, &y_train, hooks)? {
        FitOutcome::Fitted(model) => model,
        FitOutcome::Paused { steps, .. } => {
            println!(
                "stopped after {steps} steps as asked; the training state is in {} (continue with --resume)",
                state_file.display()
            );
            return Ok(());
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let what = match spec.method {
        FitMethod::Map => "members".to_owned(),
        FitMethod::Vi(vi) => format!(
            "VI members ({} guides, β = {}; the predictive mixes {} draws each)",
            match vi.rank {
                0 => "mean-field".to_owned(),
                rank => format!("rank-{rank} plus diagonal"),
            },
            vi.kl_weight,
            vi.samples
        ),
    };
    println!(
        "trained {} {what} on {} rows × {features} features ({} recipe, {} epochs, {} T): {} steps in {seconds:.2} s",
        spec.members,
        train_rows.len(),
        protocol.name(),
        spec.epochs,
        T::NAME,
        model.result().steps,
    );
    if !model.diverged().is_empty() {
        println!(
            "diverged members (kept at their last finite parameters): {:?}",
            model.diverged()
        );
    }
    if !test_rows.is_empty() {
        let (x_test, y_test): (Vec<T>, Vec<T>) = match &test_table {
            Some((t, path)) => {
                let target_column = t.column(&args.target, path)?;
                let cols = match model.feature_names() {
                    Some(names) if t.has_header => t.columns_named(names, path)?,
                    _ => feature_columns(t, path, args.features.as_deref(), Some(target_column))?,
                };
                (
                    gather(t, &test_rows, &cols),
                    gather(t, &test_rows, &[target_column]),
                )
            }
            None => (
                gather(&table, &test_rows, &columns),
                gather(&table, &test_rows, &[target_column]),
            ),
        };
        let s = model.score(&Matrix::new(&x_test, features)?, &y_test)?;
        if let Some(path) = &args.figure {
            write_figure(path, calibration_svg(&s, y_test.len()))?;
            println!("figure: {}", path.display());
        }
        println!(
            "test ({} rows, original scale): RMSE {:.4}  NLL {:.4}  cov95 {:.3}  sharp95 {:.4}  CRPS {:.4}  calibration error {:.4}",
            y_test.len(),
            s.rmse_obs,
            s.nll,
            s.coverage_95,
            s.sharpness_95,
            s.crps,
            s.calibration_error
        );
    }
    model.save(&args.out)?;
    let _ = std::fs::remove_file(&state_file);
    println!("model: {}", args.out.display());
    Ok(())
}

/// The held-out calibration curve of `scores` over `rows` test rows.
fn calibration_svg(scores: &ExactScores, rows: usize) -> String {
    line_chart_svg(
        &format!("held-out calibration ({rows} rows)"),
        "nominal coverage",
        "empirical coverage",
        &scores.alphas,
        &[
            Series {
                label: "empirical coverage",
                values: &scores.coverage_curve,
                dashed: false,
            },
            Series {
                label: "perfect calibration",
                values: &scores.alphas,
                dashed: true,
            },
        ],
        false,
    )
}

fn predict_command(
    model_path: &Path,
    data: &Path,
    features: Option<&[String]>,
    quantiles: &[f64],
    out: &Path,
) -> Result<(), BoxError> {
    let model = AnyRegressor::load(model_path)?;
    let table = read_named_table(data)?;
    // The model's features by name when both sides have names; else the columns given, or all.
    let columns = match (features, model.feature_names()) {
        (None, Some(names)) if table.has_header => table.columns_named(names, data)?,
        _ => feature_columns(&table, data, features, None)?,
    };
    if columns.len() != model.features() {
        return Err(format!(
            "{}: {} feature columns, the model takes {} (choose them with --features)",
            data.display(),
            columns.len(),
            model.features()
        )
        .into());
    }
    if let Some(q) = quantiles.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
        return Err(format!("--quantiles: {q} is not strictly between 0 and 1").into());
    }
    let rows: Vec<usize> = (0..table.table.rows).collect();
    let x: Vec<f64> = gather(&table, &rows, &columns);
    let prediction = model.predict(Matrix::new(&x, columns.len())?)?;
    let quantile_values = quantiles
        .iter()
        .map(|&q| prediction.quantile(q))
        .collect::<Result<Vec<_>, _>>()?;
    let (epistemic, aleatoric) = (prediction.epistemic_std(), prediction.aleatoric_std());
    let mut csv = String::from("mean,total_std,epistemic_std,aleatoric_std");
    for q in quantiles {
        csv.push_str(&format!(",q{q}"));
    }
    csv.push('\n');
    for i in 0..prediction.len() {
        csv.push_str(&format!(
            "{},{},{},{}",
            prediction.mean()[i],
            prediction.std()[i],
            epistemic[i],
            aleatoric[i]
        ));
        for values in &quantile_values {
            csv.push_str(&format!(",{}", values[i]));
        }
        csv.push('\n');
    }
    write_atomically(out, csv.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{} predictions: {}", prediction.len(), out.display());
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn uci_command(args: &UciArgs) -> Result<(), BoxError> {
    let (spec, hidden) = args.recipe.spec(args.protocol.spec())?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if args.threads.is_some() {
        pool = pool.num_threads(threads(args.threads)?);
    }
    let pool = pool.build()?;
    pool.install(|| {
        uci(
            &args.dir,
            args.splits.as_deref(),
            args.datasets.as_deref(),
            (&spec, hidden.as_deref(), args.protocol),
            !args.quiet,
        )
    })
    .map_err(|e| -> BoxError { e })
}

fn uci(
    dir: &Path,
    splits: Option<&[usize]>,
    datasets: Option<&[String]>,
    (spec, hidden, protocol): (&FitSpec, Option<&[usize]>, Protocol),
    show_progress: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let folders: Vec<PathBuf> = if dir.join("data.txt").exists() {
        vec![dir.to_owned()]
    } else {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.join("data.txt").exists())
            .collect();
        found.sort();
        found
    };
    if folders.is_empty() {
        return Err(format!("{}: no dataset folder (with data.txt) found", dir.display()).into());
    }
    // VI fits are set beside the published Bayesian network (PBP), point estimates beside Deep
    // Ensembles.
    let reference = match spec.method {
        FitMethod::Map => Reference::DeepEnsembles,
        FitMethod::Vi(_) => Reference::Pbp,
    };
    println!(
        "protocol {}: {} {}, {} epochs of batches of {}, Adam {} {}, {} of the training rows held out for early stopping, seed {}",
        protocol.name(),
        spec.members,
        match spec.method {
            FitMethod::Map => "point-estimate members".to_owned(),
            FitMethod::Vi(vi) => format!("VI members (β = {}, rank {})", vi.kl_weight, vi.rank),
        },
        spec.epochs,
        spec.batch_size,
        spec.learning_rate,
        match spec.schedule {
            LearningRateSchedule::Constant => "constant",
            LearningRateSchedule::CosineDecay => "cosine-decayed",
        },
        spec.validation_fraction,
        spec.seed,
    );
    let label = reference.label();
    println!(
        "{:<28} {:>6} {:>17} {:>17} {:>6} {:>7} {:>8}   {:>15} {:>15}",
        "dataset",
        "splits",
        "RMSE",
        "NLL",
        "cov95",
        "CRPS",
        "time",
        format!("{label} RMSE"),
        format!("{label} NLL")
    );
    for folder in folders {
        let data = Dataset::load(&folder)?;
        if datasets.is_some_and(|names| !names.contains(&data.name)) {
            continue;
        }
        let chosen: Vec<usize> = match splits {
            Some(s) => s
                .iter()
                .copied()
                .filter(|&k| k < data.splits.len())
                .collect(),
            None => (0..data.splits.len()).collect(),
        };
        let start = Instant::now();
        let bar = Mutex::new(
            show_progress.then(|| ProgressBar::new(data.name.clone(), "splits", chosen.len())),
        );
        let done = AtomicUsize::new(0);
        let scores: Vec<SplitScores> = chosen
            .par_iter()
            .map(|&k| {
                let scores = run_split(&data, k, spec, hidden)
                    .map_err(|e| format!("{} split {k}: {e}", data.name))?;
                let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(bar) = bar.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    bar.update(done, None);
                }
                Ok::<_, String>(scores)
            })
            .collect::<Result<_, _>>()?;
        drop(bar);
        let wall = start.elapsed().as_secs_f64();
        let pick = |f: fn(&SplitScores) -> f64| scores.iter().map(f).collect::<Vec<_>>();
        let (rmse, rmse_sd) = mean_std(&pick(|s| s.rmse));
        let (nll, nll_sd) = mean_std(&pick(|s| s.nll));
        let (cov, _) = mean_std(&pick(|s| s.coverage_95));
        let (crps, _) = mean_std(&pick(|s| s.crps));
        let numbers = dir
            .parent()
            .and_then(|p| published(p, &data.name, reference))
            .or_else(|| published(dir, &data.name, reference));
        let (de_rmse, de_nll) = match numbers {
            Some((r, rp, n, np)) => (format!("{r:.2} ± {rp:.2}"), format!("{n:.2} ± {np:.2}")),
            None => ("—".into(), "—".into()),
        };
        println!(
            "{:<28} {:>6} {:>8.3} ± {:<6.3} {:>8.3} ± {:<6.3} {:>6.3} {:>7.3} {:>7.1}s   {:>15} {:>15}",
            data.name,
            scores.len(),
            rmse,
            rmse_sd,
            nll,
            nll_sd,
            cov,
            crps,
            wall,
            de_rmse,
            de_nll
        );
    }
    println!(
        "(mean ± std over splits, original target scale; {})",
        match reference {
            Reference::DeepEnsembles => "DE = Deep Ensembles, Table 1",
            Reference::Pbp => "PBP = probabilistic backpropagation, as in Deep Ensembles' Table 1",
        }
    );
    Ok(())
}
