//! `flock`: deep ensembles from the command line.
//!
//! - `flock demo`: the seed tutorial — three 16-member fits of the sinc problem, the table, the
//!   figure.
//! - `flock fit DATA --target COL`: an ensemble on a table, scored on held-out rows, saved.
//! - `flock predict MODEL DATA`: the predictive mean, spread and quantiles as CSV.
//! - `flock uci DIR`: the UCI regression benchmark protocol on a dataset folder (or a folder of
//!   them), beside the published Deep Ensembles numbers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};
use rayon::prelude::*;

use flock_metrics::{Series, exact_scores, line_chart_svg, svg_to_png};
use flock_runner::fit::{
    FitMethod, FitProgress, FitSpec, FittedModel, LearningRateSchedule, Likelihood, ViFit,
    fit_with_progress, parse_activation,
};
use flock_runner::patterns::{Init, tutorial};
use flock_runner::progress::ProgressBar;
use flock_runner::seed::SeedData;
use flock_runner::table::{DataError, NamedTable, read_named_table};
use flock_runner::uci::{
    Dataset, Protocol, Reference, SplitScores, UciConfig, published, run_split,
};

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
    Fit {
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
        /// Ensemble members.
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// Units per hidden layer.
        #[arg(long, default_value_t = 50)]
        hidden: usize,
        /// Hidden layers.
        #[arg(long, default_value_t = 1)]
        depth: usize,
        /// Hidden activation: relu, tanh, sigmoid, softplus.
        #[arg(long, default_value = "relu")]
        activation: String,
        /// The noise model: `heteroscedastic` (a second output, the variance), `learned` (one σ
        /// per member, learned) or `fixed` (with --sigma).
        #[arg(long)]
        likelihood: Option<String>,
        /// A fixed noise σ in target units (implies --likelihood fixed).
        #[arg(long)]
        sigma: Option<f64>,
        /// Epochs.
        #[arg(long, default_value_t = 40)]
        epochs: usize,
        /// Examples per step.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 1e-2)]
        lr: f64,
        /// The learning-rate schedule: `constant` or `cosine` (decay to 0 over the fit).
        #[arg(long, default_value = "constant")]
        schedule: String,
        /// Weight of a standard-normal prior on the weights (0 = maximum likelihood).
        #[arg(long, default_value_t = 0.0)]
        prior_weight: f64,
        /// Fraction of the training rows held out for early stopping: each member ends at the epoch
        /// of its best held-out NLL (0 = train on every row, keep the last epoch).
        #[arg(long, default_value_t = 0.0)]
        validation_fraction: f64,
        #[command(flatten)]
        method: MethodArgs,
        /// Seed (data split, initialisation, batches).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Threads to split members over (default: every core; results are the same for any
        /// value).
        #[arg(long)]
        threads: Option<usize>,
        /// Where the fitted model goes (its training state is kept in OUT.state during the
        /// fit).
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
    },
    /// Predict with a fitted model: mean, total / epistemic / aleatoric std and quantiles as CSV.
    Predict {
        /// A model written by `flock fit`.
        model: PathBuf,
        /// Inputs (the model's feature columns, by --features or all columns in order).
        data: PathBuf,
        /// Feature columns (names or indices).
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
    Uci {
        /// A dataset folder (with data.txt) or a folder of dataset folders.
        dir: PathBuf,
        /// Only these splits (e.g. --splits 0,1,2).
        #[arg(long, value_delimiter = ',')]
        splits: Option<Vec<usize>>,
        /// Only these datasets (folder names).
        #[arg(long, value_delimiter = ',')]
        datasets: Option<Vec<String>>,
        /// Ensemble members.
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// The configuration: `deep-ensembles` (the paper's: 40 epochs, constant Adam 1e-2, every
        /// training row) or `flock` (80 epochs, cosine-decayed Adam 1e-2, 10 % of the training rows
        /// held out for per-member early stopping). The flags below override single settings.
        #[arg(long, default_value = "deep-ensembles")]
        protocol: String,
        /// Epochs over the training rows (default: the protocol's).
        #[arg(long)]
        epochs: Option<usize>,
        /// Examples per step.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Adam's learning rate (default: the protocol's).
        #[arg(long)]
        lr: Option<f64>,
        /// The learning-rate schedule, `constant` or `cosine` (default: the protocol's).
        #[arg(long)]
        schedule: Option<String>,
        /// Hidden units (default: the dataset's n_hidden.txt, else 50).
        #[arg(long)]
        hidden: Option<usize>,
        /// Weight of a standard-normal prior on the weights (0 = maximum likelihood).
        #[arg(long, default_value_t = 0.0)]
        prior_weight: f64,
        /// Fraction of the training rows held out for early stopping: each member ends at the epoch
        /// of its best held-out NLL (0 = train on every row; default: the protocol's).
        #[arg(long)]
        validation_fraction: Option<f64>,
        #[command(flatten)]
        method: MethodArgs,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Threads to run splits on (default: every core; results do not depend on it).
        #[arg(long)]
        threads: Option<usize>,
        /// No progress lines on stderr.
        #[arg(long)]
        quiet: bool,
    },
}

/// How members are fitted (`fit` and `uci`).
#[derive(clap::Args, Debug)]
struct MethodArgs {
    /// `map`: a point estimate per member (Deep Ensembles); `vi`: a Gaussian guide per member
    /// over every weight (mean-field, or low-rank with --rank; standard-normal prior, tempered
    /// ELBO), the predictive mixing --samples draws per member.
    #[arg(long, default_value = "map")]
    method: String,
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
}

impl MethodArgs {
    fn method(&self) -> Result<FitMethod, String> {
        match self.method.as_str() {
            "map" => {
                // VI settings with point estimates would be ignored: refuse them instead.
                for (given, flag) in [
                    (self.kl_weight.is_some(), "--kl-weight"),
                    (self.init_scale.is_some(), "--init-scale"),
                    (self.samples.is_some(), "--samples"),
                    (self.rank.is_some(), "--rank"),
                ] {
                    if given {
                        return Err(format!("{flag} is a VI setting: add --method vi"));
                    }
                }
                Ok(FitMethod::Map)
            }
            "vi" => {
                let default = ViFit::default();
                let vi = ViFit {
                    kl_weight: self.kl_weight.unwrap_or(default.kl_weight),
                    init_scale: self.init_scale.unwrap_or(default.init_scale),
                    samples: self.samples.unwrap_or(default.samples),
                    rank: self.rank.unwrap_or(default.rank),
                };
                if !(vi.kl_weight.is_finite() && vi.kl_weight >= 0.0) {
                    return Err(format!("--kl-weight {}: expected β ≥ 0", vi.kl_weight));
                }
                if !(vi.init_scale.is_finite() && vi.init_scale > 0.0) {
                    return Err(format!(
                        "--init-scale {}: expected a positive scale",
                        vi.init_scale
                    ));
                }
                if vi.samples == 0 {
                    return Err("--samples 0: expected at least one draw per member".into());
                }
                Ok(FitMethod::Vi(vi))
            }
            other => Err(format!("--method {other:?}: expected map or vi")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run_command(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flock: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Demo { fixture, out, seed } => demo(fixture, &out, seed),
        Command::Fit {
            data,
            target,
            features,
            test,
            test_fraction,
            members,
            hidden,
            depth,
            activation,
            likelihood,
            sigma,
            epochs,
            batch_size,
            lr,
            schedule,
            prior_weight,
            validation_fraction,
            method,
            seed,
            threads,
            out,
            resume,
            max_epochs_this_run,
            quiet,
            figure,
        } => (|| {
            let activation = parse_activation(&activation).ok_or_else(|| {
                format!("--activation {activation:?}: expected relu, tanh, sigmoid or softplus")
            })?;
            let spec = FitSpec {
                method: method.method()?,
                members,
                hidden,
                depth,
                activation,
                likelihood: parse_likelihood(likelihood.as_deref(), sigma)?,
                epochs,
                batch_size,
                learning_rate: lr,
                schedule: parse_schedule(&schedule)?,
                prior_weight,
                seed,
                threads: match threads {
                    Some(0) => return Err("--threads 0: expected at least one thread".into()),
                    Some(n) => n,
                    None => std::thread::available_parallelism().map_or(1, |n| n.get()),
                },
                validation_fraction,
            };
            let mut state_file = out.as_os_str().to_owned();
            state_file.push(".state");
            let progress = FitProgress {
                state_file: PathBuf::from(state_file),
                resume,
                max_epochs_this_run,
                show: !quiet,
            };
            fit_command(
                &data,
                &target,
                features.as_deref(),
                test.as_deref(),
                test_fraction,
                &spec,
                &out,
                &progress,
                figure.as_deref(),
            )
        })(),
        Command::Predict {
            model,
            data,
            features,
            quantiles,
            out,
        } => predict_command(&model, &data, features.as_deref(), &quantiles, &out),
        Command::Uci {
            dir,
            splits,
            datasets,
            members,
            epochs,
            batch_size,
            protocol,
            lr,
            schedule,
            hidden,
            prior_weight,
            validation_fraction,
            method,
            seed,
            threads,
            quiet,
        } => (|| {
            let method = method.method()?;
            let preset = Protocol::parse(&protocol)
                .ok_or_else(|| {
                    format!("--protocol {protocol:?}: expected deep-ensembles or flock")
                })?
                .config();
            let config = UciConfig {
                members,
                hidden,
                epochs: epochs.unwrap_or(preset.epochs),
                batch_size,
                learning_rate: lr.unwrap_or(preset.learning_rate),
                schedule: match schedule {
                    Some(name) => parse_schedule(&name)?,
                    None => preset.schedule,
                },
                prior_weight,
                validation_fraction: validation_fraction.unwrap_or(preset.validation_fraction),
                method,
                seed,
            };
            let mut pool = rayon::ThreadPoolBuilder::new();
            if let Some(threads) = threads {
                if threads == 0 {
                    return Err("--threads 0: expected at least one thread".into());
                }
                pool = pool.num_threads(threads);
            }
            let pool = pool.build()?;
            pool.install(|| {
                uci(
                    &dir,
                    splits.as_deref(),
                    datasets.as_deref(),
                    &config,
                    !quiet,
                )
            })
            .map_err(|e| -> Box<dyn std::error::Error> { e })
        })(),
    }
}

/// `--likelihood` and `--sigma` together.
fn parse_likelihood(
    name: Option<&str>,
    sigma: Option<f64>,
) -> Result<Likelihood, Box<dyn std::error::Error>> {
    if let Some(sigma) = sigma
        && !(sigma > 0.0 && sigma.is_finite())
    {
        return Err(format!("--sigma {sigma}: expected a positive number").into());
    }
    Ok(match (name, sigma) {
        (None | Some("fixed"), Some(sigma)) => Likelihood::Fixed { sigma },
        (None | Some("heteroscedastic"), None) => Likelihood::Heteroscedastic,
        (Some("learned"), None) => Likelihood::Learned,
        (Some("fixed"), None) => return Err("--likelihood fixed needs --sigma".into()),
        (Some(name @ ("heteroscedastic" | "learned")), Some(_)) => {
            return Err(
                format!("--sigma fixes σ; it cannot be used with --likelihood {name}").into(),
            );
        }
        (Some(other), _) => {
            return Err(format!(
                "--likelihood {other:?}: expected heteroscedastic, learned or fixed"
            )
            .into());
        }
    })
}

/// `--schedule`.
fn parse_schedule(name: &str) -> Result<LearningRateSchedule, Box<dyn std::error::Error>> {
    LearningRateSchedule::parse(name)
        .ok_or_else(|| format!("--schedule {name:?}: expected cosine or constant").into())
}

fn demo(fixture: bool, out: &Path, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let data = if fixture {
        SeedData::from_fixture()?
    } else {
        SeedData::generate(666u64.wrapping_add(seed))
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

fn gather(table: &NamedTable, rows: &[usize], columns: &[usize]) -> Vec<f64> {
    let cols = table.table.cols;
    rows.iter()
        .flat_map(|&r| {
            columns
                .iter()
                .map(move |&c| table.table.values[r * cols + c])
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn fit_command(
    data: &Path,
    target: &str,
    features: Option<&[String]>,
    test: Option<&Path>,
    test_fraction: f64,
    spec: &FitSpec,
    out: &Path,
    progress: &FitProgress,
    figure: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let table = read_named_table(data)?;
    let target_column = table.column(target, data)?;
    let columns = feature_columns(&table, data, features, Some(target_column))?;
    if columns.is_empty() {
        return Err(format!("{}: no feature columns besides the target", data.display()).into());
    }
    let all: Vec<usize> = (0..table.table.rows).collect();
    let (train_rows, test_table, test_rows) = match test {
        Some(path) => {
            let t = read_named_table(path)?;
            let rows = (0..t.table.rows).collect();
            (all, Some((t, path.to_owned())), rows)
        }
        None => {
            if !(0.0..1.0).contains(&test_fraction) {
                return Err(format!("--test-fraction {test_fraction}: expected 0 ≤ f < 1").into());
            }
            let mut order = all;
            let mut rng = flock_ensemble::member_rng(spec.seed, usize::MAX - 1);
            for i in (1..order.len()).rev() {
                let j = rand::RngExt::random_range(&mut rng, 0..=i);
                order.swap(i, j);
            }
            let n_test = (order.len() as f64 * test_fraction).round() as usize;
            let test_rows = order.split_off(order.len() - n_test);
            (order, None, test_rows)
        }
    };
    if train_rows.len() < 2 {
        return Err(DataError::TooFewRows {
            path: data.to_owned(),
            rows: train_rows.len(),
            needed: 2,
        }
        .into());
    }
    let x_train = gather(&table, &train_rows, &columns);
    let y_train = gather(&table, &train_rows, &[target_column]);
    if y_train.iter().all(|&v| v == y_train[0]) {
        return Err(format!(
            "{}: the target column {target:?} is constant on the training rows",
            data.display()
        )
        .into());
    }
    let start = Instant::now();
    let (model, result) =
        fit_with_progress(spec, &x_train, &y_train, columns.len(), Some(progress))
            .map_err(|e| e.to_string())?;
    if result.stopped_early {
        println!(
            "stopped after {} steps as asked; the training state is in {} (continue with --resume)",
            result.steps,
            progress.state_file.display()
        );
        return Ok(());
    }
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
        "trained {} {what} on {} rows × {} features: {} steps in {seconds:.2} s",
        spec.members,
        train_rows.len(),
        columns.len(),
        result.steps
    );
    if !result.diverged.is_empty() {
        println!(
            "diverged members (kept at their last finite parameters): {:?}",
            result.diverged
        );
    }
    if !test_rows.is_empty() {
        let (x_test, y_test) = match &test_table {
            Some((t, path)) => {
                let target_column = t.column(target, path)?;
                let cols = feature_columns(t, path, features, Some(target_column))?;
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
        let predictive = model.predict(&x_test).map_err(|e| e.to_string())?;
        let s = exact_scores(&predictive, &y_test, None)?;
        if let Some(path) = figure {
            let diagonal = s.alphas.clone();
            let svg = line_chart_svg(
                &format!("held-out calibration ({} rows)", y_test.len()),
                "nominal coverage",
                "empirical coverage",
                &s.alphas,
                &[
                    Series {
                        label: "empirical coverage",
                        values: &s.coverage_curve,
                        dashed: false,
                    },
                    Series {
                        label: "perfect calibration",
                        values: &diagonal,
                        dashed: true,
                    },
                ],
                false,
            );
            let bytes = match path.extension().and_then(|e| e.to_str()) {
                Some("svg") => svg.into_bytes(),
                Some("png") => svg_to_png(&svg, 2.0)?,
                _ => {
                    return Err(
                        format!("--figure {}: use a .png or .svg name", path.display()).into(),
                    );
                }
            };
            let mut temporary = path.as_os_str().to_owned();
            temporary.push(".partial");
            std::fs::write(&temporary, bytes)?;
            std::fs::rename(&temporary, path)?;
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
    model.save(out, &result)?;
    let _ = std::fs::remove_file(&progress.state_file);
    println!("model: {}", out.display());
    Ok(())
}

fn predict_command(
    model_path: &Path,
    data: &Path,
    features: Option<&[String]>,
    quantiles: &[f64],
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let model = FittedModel::load(model_path)?;
    let table = read_named_table(data)?;
    let columns = feature_columns(&table, data, features, None)?;
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
    let predictive = model
        .predict(&gather(&table, &rows, &columns))
        .map_err(|e| e.to_string())?;
    let band = predictive.band();
    let mut csv = String::from("mean,total_std,epistemic_std,aleatoric_std");
    for q in quantiles {
        csv.push_str(&format!(",q{q}"));
    }
    csv.push('\n');
    for i in 0..predictive.points() {
        csv.push_str(&format!(
            "{},{},{},{}",
            band.mean[i],
            band.total_std[i],
            band.epistemic_var[i].sqrt(),
            band.aleatoric_var[i].sqrt()
        ));
        for &q in quantiles {
            csv.push_str(&format!(",{}", predictive.quantile(i, q)?));
        }
        csv.push('\n');
    }
    let mut temporary = out.as_os_str().to_owned();
    temporary.push(".partial");
    std::fs::write(&temporary, csv)?;
    std::fs::rename(&temporary, out)?;
    println!("{} predictions: {}", predictive.points(), out.display());
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn uci(
    dir: &Path,
    splits: Option<&[usize]>,
    datasets: Option<&[String]>,
    config: &UciConfig,
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
    let reference = match config.method {
        FitMethod::Map => Reference::DeepEnsembles,
        FitMethod::Vi(_) => Reference::Pbp,
    };
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
                let scores = run_split(&data, k, config)
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
