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

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};

use flock_autograd::Activation;

use super::classify_bench::{ClassifyBenchArgs, classify_bench};
use super::fit::fit_command;
use super::patterns::{Init, tutorial};
use super::predict::predict_command;
use super::seed::SeedData;
use super::uci::{Protocol, UciRun};
use crate::distributed::SingleProcess;
use crate::error::Error;
use crate::regressor::{
    DataOrder, FitMethod, FitSpec, InputScaling, LearningRateSchedule, Likelihood, ViFit,
    WeightInit,
};
use crate::train::StepOrder;

pub(crate) type BoxError = Box<dyn std::error::Error>;

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
    /// Fit an ensemble to a CSV (commas, or semicolons with decimal commas) or
    /// whitespace-separated table and score it on held-out rows.
    Fit(FitArgs),
    /// Predict with a fitted model, as CSV: a regressor's mean, total / epistemic / aleatoric std
    /// and quantiles; a classifier's predicted class, class probabilities, entropy and mutual
    /// information.
    Predict(PredictArgs),
    /// The UCI regression benchmark on DIR (one dataset folder, or a folder of them).
    Uci(UciArgs),
    /// The Deep Ensembles classification experiment on Fashion-MNIST (DIR), with MNIST digits
    /// as out-of-distribution inputs.
    ClassifyBench(ClassifyBenchArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct PredictArgs {
    /// A model written by `flock fit`.
    pub(crate) model: PathBuf,
    /// Inputs: a table with the model's feature columns (picked by name when both have a
    /// header; other columns, such as the target, are ignored).
    pub(crate) data: PathBuf,
    /// Feature columns (names or indices), for files without the model's column names.
    #[arg(long, value_delimiter = ',')]
    pub(crate) features: Option<Vec<String>>,
    /// A regressor's predictive quantiles to add [default: 0.025,0.975].
    #[arg(long, allow_hyphen_values = true, value_delimiter = ',')]
    pub(crate) quantiles: Option<Vec<f64>>,
    /// Add conformal intervals (regressor) or prediction sets (classifier) for this miscoverage
    /// α, from the calibration the fit kept (`flock fit --conformal`).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) conformal: Option<f64>,
    /// The CSV to write (never the model or the data file).
    #[arg(long, default_value = "predictions.csv")]
    pub(crate) out: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What `flock fit` fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Task {
    /// A numeric target: a regressor with Gaussian likelihoods.
    Regress,
    /// Class labels (words or numbers): a classifier with a categorical likelihood.
    Classify,
}

#[derive(clap::Args, Debug)]
pub(crate) struct FitArgs {
    /// The data file (a first line with non-numeric cells is a header).
    pub(crate) data: PathBuf,
    /// The target column (name or 0-based index): numbers to regress, or class labels to
    /// classify.
    #[arg(long)]
    pub(crate) target: String,
    /// Regress a numeric target, or classify labels.
    #[arg(long, value_enum, default_value_t = Task::Regress)]
    pub(crate) task: Task,
    /// Feature columns (names or indices, each once, never the target; default: every other
    /// column).
    #[arg(long, value_delimiter = ',')]
    pub(crate) features: Option<Vec<String>>,
    /// A separate test file with the same columns (default: hold out --test-fraction).
    #[arg(long)]
    pub(crate) test: Option<PathBuf>,
    /// Fraction of rows held out for testing when no --test file is given.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub(crate) test_fraction: f64,
    #[command(flatten)]
    pub(crate) recipe: RecipeArgs,
    /// The recipe the settings start from [default: flock].
    #[arg(long, value_enum)]
    pub(crate) protocol: Option<Protocol>,
    /// The element type of the fit.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub(crate) dtype: Dtype,
    /// Threads to split members over (default: every core, or 1 per rank with --distributed;
    /// results are the same for any value).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Members stepped together at every step, or each on its own for runs of steps (one member
    /// per core at a time); the same model bytes either way, `auto` picks the faster (on several
    /// threads: apart for members of 1 MiB or more of parameters and Adam state, or when the
    /// members do not share out evenly as blocks).
    #[arg(long, value_parser = step_order_parser(), default_value = "auto")]
    pub(crate) step_order: StepOrder,
    /// Run under `mpirun`/`srun`: each rank trains a contiguous block of the members, every
    /// rank ends with the whole ensemble, rank 0 prints and writes the model and OUT.state —
    /// the same bytes as one process; --resume continues on any number of ranks. Needs a flock
    /// built with `--features mpi`.
    #[arg(long)]
    pub(crate) distributed: bool,
    /// Shard rows instead of members: each batch's gradient is summed over chunks of CHUNK rows
    /// (default 32) in chunk order, the chunks shared by the ranks of --distributed. The model
    /// bytes depend on CHUNK, not on the number of ranks (without --distributed, one process
    /// gives them). MAP fits only.
    #[arg(long, value_name = "CHUNK", num_args = 0..=1, default_missing_value = "32")]
    pub(crate) shard_rows: Option<usize>,
    /// With --shard-rows and --distributed: how many ranks share each member group's rows (a
    /// divisor of the ranks; default every rank). The ranks / K groups share the members — a
    /// 2-D layout, with the bits of any other.
    #[arg(long, value_name = "K")]
    pub(crate) row_ranks: Option<usize>,
    /// Where the fitted model goes (its training state is kept in OUT.state during the fit); never
    /// the data or the test file.
    #[arg(long, default_value = "flock-model.safetensors")]
    pub(crate) out: PathBuf,
    /// Continue an interrupted fit from OUT.state, to the bits an uninterrupted fit gives.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Stop after this many epochs, keeping OUT.state for --resume (for testing resumption).
    #[arg(long, hide = true)]
    pub(crate) max_epochs_this_run: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Also draw the held-out calibration curve to this file (.png or .svg; regression).
    #[arg(long)]
    pub(crate) figure: Option<PathBuf>,
    /// Calibrate conformal prediction for miscoverage α on `--calibration-fraction` of the
    /// training rows (held out of the fit): intervals (regression) or prediction sets
    /// (classification), reported on the test rows and kept in the model for `predict`.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) conformal: Option<f64>,
    /// With --conformal: the fraction of the training rows set aside to calibrate on.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub(crate) calibration_fraction: f64,
    /// Print the scores as one JSON object (instead of lines of text).
    #[arg(long)]
    pub(crate) json: bool,
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
    /// Threads to run splits on (default: every core, or 1 per rank with --distributed;
    /// results do not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Print the scores as one JSON object (instead of the table).
    #[arg(long)]
    json: bool,
    /// Run under `mpirun`/`srun`: each rank runs a contiguous block of every dataset's splits,
    /// rank 0 gathers the scores and prints (the same numbers as one process). Needs a flock
    /// built with `--features mpi`.
    #[arg(long)]
    distributed: bool,
    /// With --distributed: ranks that share each split's members (a divisor of the ranks). The
    /// ranks form ranks / M groups, each running a block of the splits one at a time with the
    /// members sharded over the group — the same numbers again.
    #[arg(long, value_name = "M", default_value_t = 1)]
    member_ranks: usize,
}

/// The element type of a fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Dtype {
    F32,
    F64,
}

/// The settings of a fit (`fit` and `uci`); each overrides the protocol's.
#[derive(clap::Args, Debug)]
pub(crate) struct RecipeArgs {
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
    pub(crate) likelihood: Option<LikelihoodKind>,
    /// A fixed noise σ in target units (implies --likelihood fixed).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) sigma: Option<f64>,
    /// Epochs over the training rows [default: the protocol's: flock 80, deep-ensembles 40].
    #[arg(long)]
    epochs: Option<usize>,
    /// Examples per step [default: 100].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam's learning rate [default: 1e-2].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// How the rate moves [default: the protocol's: flock cosine, deep-ensembles constant].
    #[arg(long, value_enum)]
    schedule: Option<LearningRateSchedule>,
    /// Weight of a standard-normal prior on the weights, 0 = maximum likelihood [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    prior_weight: Option<f64>,
    /// Fraction of the training rows held out for early stopping: each member ends at the epoch
    /// of its best held-out NLL, 0 = none [default: the protocol's: flock 0.1,
    /// deep-ensembles 0].
    #[arg(long, allow_negative_numbers = true)]
    validation_fraction: Option<f64>,
    /// `map`: a point estimate per member (Deep Ensembles); `vi`: a Gaussian guide per member
    /// over every weight (mean-field, or low-rank with --rank; standard-normal prior, tempered
    /// ELBO), the predictive mixing --samples draws per member.
    #[arg(long, value_enum, default_value_t = MethodKind::Map)]
    method: MethodKind,
    /// VI: β of the tempered ELBO E[log p(y|θ)] − β·KL [default: 1, the ELBO].
    #[arg(long, allow_negative_numbers = true)]
    kl_weight: Option<f64>,
    /// VI: the guides' initial scale on the standardised weights [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    init_scale: Option<f64>,
    /// VI: networks drawn from each member's guide for the predictive [default: 10].
    #[arg(long)]
    samples: Option<usize>,
    /// VI: columns of a low-rank factor over all of a member's weights [default: 0, mean-field].
    #[arg(long)]
    rank: Option<usize>,
    /// How the inputs are scaled: standardised per column (for tabular data), or as given
    /// (for features already on one scale, such as pixels) [default: standardise].
    #[arg(long, value_enum)]
    input_scaling: Option<InputScaling>,
    /// Whether the members step through the rows in one shared order or each in its own (and
    /// then each holds out its own validation rows) [default: the task's: regression shared,
    /// classification per-member].
    #[arg(long, value_parser = data_order_parser())]
    data_order: Option<DataOrder>,
    /// How the weights are first drawn: equinox's U(±1/√in), or He's U(±√(6/in)) for deep
    /// ReLU stacks [default: the task's: regression equinox, classification he].
    #[arg(long, value_parser = weight_init_parser())]
    weight_init: Option<WeightInit>,
    /// Seed (data split, held-out rows, initialisation, batches, noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LikelihoodKind {
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

/// `--data-order`: one of [`DataOrder::ALL`]'s names.
pub(crate) fn data_order_parser() -> impl TypedValueParser<Value = DataOrder> {
    PossibleValuesParser::new(DataOrder::ALL.map(DataOrder::name))
        .map(|name| DataOrder::from_name(&name).expect("a listed name"))
}

/// `--step-order`: one of [`StepOrder::ALL`]'s names.
pub(crate) fn step_order_parser() -> impl TypedValueParser<Value = StepOrder> {
    PossibleValuesParser::new(StepOrder::ALL.map(StepOrder::name))
        .map(|name| StepOrder::from_name(&name).expect("a listed name"))
}

/// `--weight-init`: one of [`WeightInit::ALL`]'s names.
pub(crate) fn weight_init_parser() -> impl TypedValueParser<Value = WeightInit> {
    PossibleValuesParser::new(WeightInit::ALL.map(WeightInit::name))
        .map(|name| WeightInit::from_name(&name).expect("a listed name"))
}

impl RecipeArgs {
    /// `base` with every setting given on the command line, checked; the hidden layers as given
    /// (`None`: the base's, or for `uci` the dataset's).
    pub(crate) fn spec(&self, base: FitSpec) -> Result<(FitSpec, Option<Vec<usize>>), BoxError> {
        let mut spec = base;
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {
                $(if let Some(value) = self.$flag.clone() {
                    spec.$field = value;
                })*
            };
        }
        set!(members => members, activation => activation, epochs => epochs,
            input_scaling => input_scaling, data_order => data_order, weight_init => weight_init,
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
pub(crate) fn threads(given: Option<usize>) -> Result<usize, BoxError> {
    match given {
        Some(0) => Err("--threads 0: expected at least one thread".into()),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The settings `flock fit …` or `flock uci …` would train with, for `args` (the arguments
/// after the program name), checked as those commands check them — without reading data or
/// training. Any other command, or arguments that do not parse or do not check, give the
/// message the command would print. The entry point of the `cli_options` fuzz target.
#[doc(hidden)]
pub fn training_settings(args: &[String]) -> Result<FitSpec, String> {
    let argv = std::iter::once("flock".to_owned()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Fit(fit) => super::fit::fit_settings(&fit)
            .map(|(spec, _)| spec)
            .map_err(|e| e.to_string()),
        Command::Uci(uci) => {
            threads(uci.threads).map_err(|e| e.to_string())?;
            let (spec, _) = uci
                .recipe
                .spec(uci.protocol.spec())
                .map_err(|e| e.to_string())?;
            Ok(spec)
        }
        _ => Err("neither fit nor uci".to_owned()),
    }
}

/// The `flock` command: parses the arguments, runs the command, reports an error in one line
/// and exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { fixture, out, seed } => demo(fixture, &out, seed),
        Command::Fit(args) => match (args.dtype, args.distributed) {
            (Dtype::F64, false) => fit_command::<f64>(&args, &SingleProcess),
            (Dtype::F32, false) => fit_command::<f32>(&args, &SingleProcess),
            (Dtype::F64, true) => fit_distributed::<f64>(&args),
            (Dtype::F32, true) => fit_distributed::<f32>(&args),
        },
        Command::Predict(args) => predict_command(&args),
        Command::Uci(args) => uci_command(&args),
        Command::ClassifyBench(args) => classify_bench(&args),
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

fn uci_command(args: &UciArgs) -> Result<(), BoxError> {
    let (spec, hidden) = args.recipe.spec(args.protocol.spec())?;
    if args.distributed {
        return uci_distributed(args, &spec, hidden.as_deref());
    }
    uci_on(args, &spec, hidden.as_deref(), &SingleProcess)
}

/// `flock uci --distributed`: MPI's processes share the splits.
fn uci_distributed(
    args: &UciArgs,
    spec: &FitSpec,
    hidden: Option<&[usize]>,
) -> Result<(), BoxError> {
    on_mpi(|comm| uci_on(args, spec, hidden, comm))
}

/// `flock fit --distributed`: MPI's processes share the members.
fn fit_distributed<T: flock_kernels::Element>(args: &FitArgs) -> Result<(), BoxError> {
    on_mpi(|comm| fit_command::<T>(args, comm))
}

/// Runs `command` on MPI's processes; an error on any rank stops them all (no rank waits for
/// one that has failed).
#[cfg(feature = "mpi")]
fn on_mpi(
    command: impl FnOnce(&dyn crate::distributed::Communicator) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    use crate::distributed::{Communicator, Mpi};
    let comm = Mpi::initialize().ok_or("MPI was initialised twice")?;
    match command(&comm) {
        Err(e) if comm.size() > 1 => {
            eprintln!("flock (rank {} of {}): {e}", comm.rank(), comm.size());
            comm.abort(1)
        }
        other => other,
    }
}

#[cfg(not(feature = "mpi"))]
fn on_mpi(
    _: impl FnOnce(&dyn crate::distributed::Communicator) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    Err(
        "--distributed: this flock was built without MPI (cargo build --release -p flock-runner \
         --features mpi, with Open MPI's libopenmpi-dev and libclang-dev installed)"
            .into(),
    )
}

fn uci_on(
    args: &UciArgs,
    spec: &FitSpec,
    hidden: Option<&[usize]>,
    comm: &dyn crate::distributed::Communicator,
) -> Result<(), BoxError> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    match (args.threads, args.distributed) {
        (Some(_), _) => pool = pool.num_threads(threads(args.threads)?),
        (None, true) => pool = pool.num_threads(1),
        (None, false) => {}
    }
    let pool = pool.build()?;
    let run = UciRun {
        dir: &args.dir,
        splits: args.splits.as_deref(),
        datasets: args.datasets.as_deref(),
        spec,
        hidden,
        protocol: args.protocol,
        show_progress: !args.quiet && !args.json,
        json: args.json,
        comm,
        member_ranks: args.member_ranks,
        pool: Some(&pool),
    };
    run.run().map_err(|e| -> BoxError { e })
}
