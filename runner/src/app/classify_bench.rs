//! `flock classify-bench DIR`: the Deep Ensembles paper's classification experiment on
//! Fashion-MNIST — ensembles of 3 × 200 ReLU networks on the standard split, scored for
//! `M = 1, 2, 5, 10` members (accuracy, NLL, Brier, ECE), with the reliability diagram, and the
//! out-of-distribution experiment: the same ensemble's predictive entropy and mutual
//! information on MNIST digits it never saw, against the Fashion-MNIST test images.

use std::path::{Path, PathBuf};
use std::time::Instant;

use flock_metrics::{
    ClassPredictive, OodScores, Series, class_scores, histogram_svg, line_chart_svg, ood_scores,
    reliability, reliability_svg,
};
use serde_json::json;

use super::cli::{BoxError, threads};
use super::progress::TrainingBar;
use super::{create_output_folder, write_figure};
use crate::classifier::Classifier;
use crate::idx::{LabelledImages, read_labelled_images, read_maybe_gzip};
use crate::regressor::{
    DataOrder, FitHooks, FitOutcome, InputScaling, LearningRateSchedule, Matrix, WeightInit,
};
use crate::train::{ProgressHook, StepOrder};

/// Fashion-MNIST's classes, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// The settings of `flock classify-bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct ClassifyBenchArgs {
    /// The Fashion-MNIST folder (train-images-idx3-ubyte.gz and the other three IDX files).
    pub(crate) dir: PathBuf,
    /// Out-of-distribution images: a CSV (gzip or not) of 784 grey levels and a label per line
    /// [default: DIR/../mnist-5k/mnist_5k.csv.gz when it exists].
    #[arg(long)]
    pub(crate) ood: Option<PathBuf>,
    /// Members to train (the table scores the first 1, 2, 5 and 10 of them).
    #[arg(long, default_value_t = 10)]
    pub(crate) members: usize,
    /// Epochs over the training images.
    #[arg(long, default_value_t = 20)]
    pub(crate) epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f64,
    /// How the rate moves.
    #[arg(long, value_enum, default_value_t = LearningRateSchedule::CosineDecay)]
    pub(crate) schedule: LearningRateSchedule,
    /// Images per step.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch_size: usize,
    /// Weight of a standard-normal prior on the weights (L2 weight decay; 0 = maximum
    /// likelihood).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) prior_weight: f64,
    /// How the weights are first drawn.
    #[arg(long, value_parser = super::cli::weight_init_parser(), default_value = "he")]
    pub(crate) weight_init: WeightInit,
    /// Whether the members step through the images in one shared order or each in its own (and
    /// then each holds out its own validation images).
    #[arg(long, value_parser = super::cli::data_order_parser(), default_value = "per-member")]
    pub(crate) data_order: DataOrder,
    /// Fraction of the training images held out for per-member early stopping (each member its
    /// own with a per-member data order, one split for all with a shared one).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) validation_fraction: f64,
    /// Train on the first N training images only (a quick run).
    #[arg(long)]
    pub(crate) train_images: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Threads (default: every core; results do not depend on it).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Members stepped together or each on its own for runs of steps (the same results;
    /// `auto` picks the faster).
    #[arg(long, value_parser = super::cli::step_order_parser(), default_value = "auto")]
    pub(crate) step_order: StepOrder,
    /// Where the figures go.
    #[arg(long, default_value = "target/flock-figures")]
    pub(crate) out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Reads out-of-distribution images: lines of 784 grey levels (and a label, ignored).
fn read_ood(path: &Path, features: usize) -> Result<Vec<f32>, BoxError> {
    let text = read_maybe_gzip(path)?;
    let mut pixels = Vec::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() < features {
            return Err(format!(
                "{}:{}: {} values, expected {features} pixels",
                path.display(),
                number + 1,
                cells.len()
            )
            .into());
        }
        for (c, cell) in cells[..features].iter().enumerate() {
            let v: f32 = cell.trim().parse().map_err(|_| {
                format!(
                    "{}:{}: column {} is {cell:?}, not a grey level",
                    path.display(),
                    number + 1,
                    c + 1
                )
            })?;
            pixels.push(v / 255.0);
        }
    }
    Ok(pixels)
}

/// `flock classify-bench`.
pub(crate) fn classify_bench(args: &ClassifyBenchArgs) -> Result<(), BoxError> {
    create_output_folder(&args.out)?;
    let file = |name: &str| args.dir.join(name);
    let mut train = read_labelled_images(
        &file("train-images-idx3-ubyte.gz"),
        &file("train-labels-idx1-ubyte.gz"),
    )?;
    let test = read_labelled_images(
        &file("t10k-images-idx3-ubyte.gz"),
        &file("t10k-labels-idx1-ubyte.gz"),
    )?;
    if let Some(n) = args.train_images {
        let n = n.min(train.len());
        train.pixels.truncate(n * train.features);
        train.labels.truncate(n);
    }
    let LabelledImages {
        pixels: ref train_pixels,
        features,
        labels: ref train_labels,
    } = train;
    let classifier = Classifier::<f32>::new()
        .members(args.members)
        .hidden(&[200, 200, 200])
        .activation(flock_autograd::Activation::Relu)
        .epochs(args.epochs)
        .batch_size(args.batch_size)
        .learning_rate(args.lr)
        .schedule(args.schedule)
        .validation_fraction(args.validation_fraction)
        .input_scaling(InputScaling::AsGiven)
        .data_order(args.data_order)
        .weight_init(args.weight_init)
        .prior_weight(args.prior_weight)
        .seed(args.seed)
        .threads(threads(args.threads)?)
        .class_names(FASHION_CLASSES.map(str::to_owned).to_vec());
    let hooks = FitHooks {
        progress: (!args.quiet && !args.json)
            .then(|| Box::new(TrainingBar::new("fashion-mnist")) as Box<dyn ProgressHook>),
        step_order: args.step_order,
        ..FitHooks::default()
    };
    let start = Instant::now();
    let model =
        match classifier.fit_with(&Matrix::new(train_pixels, features)?, train_labels, hooks)? {
            FitOutcome::Fitted(model) => model,
            FitOutcome::Paused { .. } => unreachable!("no epoch limit"),
        };
    let train_seconds = start.elapsed().as_secs_f64();
    let per_epoch = train_seconds / args.epochs as f64;
    let start = Instant::now();
    let prediction = model.predict_proba(&Matrix::new(&test.pixels, features)?)?;
    let predict_seconds = start.elapsed().as_secs_f64();
    let all = prediction.predictive();
    let sizes: Vec<usize> = [1, 2, 5, 10]
        .into_iter()
        .filter(|&m| m <= args.members)
        .collect();
    let mut rows = Vec::new();
    for &m in &sizes {
        let sub = all.select(&(0..m).collect::<Vec<_>>())?;
        rows.push((m, class_scores(&sub, &test.labels)?));
    }
    let x: Vec<f64> = sizes.iter().map(|&m| m as f64).collect();
    let nll: Vec<f64> = rows.iter().map(|(_, s)| s.nll).collect();
    let brier: Vec<f64> = rows.iter().map(|(_, s)| s.brier).collect();
    let curve = args.out.join("fashion_members.png");
    write_figure(
        &curve,
        line_chart_svg(
            "Fashion-MNIST test: more members, better NLL",
            "members M",
            "score (lower is better)",
            &x,
            &[
                Series {
                    label: "NLL",
                    values: &nll,
                    dashed: false,
                },
                Series {
                    label: "Brier score",
                    values: &brier,
                    dashed: false,
                },
            ],
            false,
        ),
    )?;
    let headline = sizes.iter().copied().filter(|&m| m <= 5).max().unwrap_or(1);
    let main = all.select(&(0..headline).collect::<Vec<_>>())?;
    let diagram = args.out.join("fashion_reliability.png");
    write_figure(
        &diagram,
        reliability_svg(
            &format!("Fashion-MNIST test, M = {headline}: reliability"),
            &reliability(main.probs(), main.classes(), &test.labels, 15)?,
        ),
    )?;
    // Out of distribution.
    let ood_path = args.ood.clone().or_else(|| {
        let default = args.dir.join("../mnist-5k/mnist_5k.csv.gz");
        default.exists().then_some(default)
    });
    let mut ood = None;
    if let Some(path) = &ood_path {
        let pixels = read_ood(path, features)?;
        let out = model.predict_proba(&Matrix::new(&pixels, features)?)?;
        let out = out
            .predictive()
            .select(&(0..headline).collect::<Vec<_>>())?;
        let (h_in, h_out) = (main.entropy(), out.entropy());
        let (mi_in, mi_out) = (main.mutual_information(), out.mutual_information());
        let figures = [
            (
                "fashion_ood_entropy.png",
                "predictive entropy (nats)",
                &h_in,
                &h_out,
            ),
            (
                "fashion_ood_mutual_information.png",
                "mutual information (nats)",
                &mi_in,
                &mi_out,
            ),
        ];
        for (name, label, inside, outside) in figures {
            write_figure(
                &args.out.join(name),
                histogram_svg(
                    &format!("M = {headline}: {label}"),
                    label,
                    &[
                        ("Fashion-MNIST test (in distribution)", inside),
                        ("MNIST digits (out of distribution)", outside),
                    ],
                    40,
                ),
            )?;
        }
        ood = Some((
            path.clone(),
            out.points(),
            ood_scores(&h_in, &h_out)?,
            ood_scores(&mi_in, &mi_out)?,
        ));
    }
    report(
        args,
        Report {
            train: train_labels.len(),
            test: test.len(),
            per_epoch,
            train_seconds,
            predict_seconds,
            rows: &rows,
            headline,
            main: &main,
            ood: ood.as_ref(),
            figures: [curve, diagram],
        },
    );
    Ok(())
}

struct Report<'a> {
    train: usize,
    test: usize,
    per_epoch: f64,
    train_seconds: f64,
    predict_seconds: f64,
    rows: &'a [(usize, flock_metrics::ClassScores)],
    headline: usize,
    main: &'a ClassPredictive,
    ood: Option<&'a (PathBuf, usize, OodScores, OodScores)>,
    figures: [PathBuf; 2],
}

fn report(args: &ClassifyBenchArgs, r: Report<'_>) {
    if args.json {
        let rows: Vec<_> = r
            .rows
            .iter()
            .map(|(m, s)| {
                json!({"members": m, "accuracy": s.accuracy, "nll": s.nll, "brier": s.brier,
                       "ece": s.ece, "adaptive_ece": s.adaptive_ece,
                       "classwise_ece": s.classwise_ece})
            })
            .collect();
        let ood = r.ood.map(|(path, n, h, mi)| {
            json!({"file": path.display().to_string(), "images": n,
                   "entropy": {"auroc": h.auroc, "aupr": h.aupr, "fpr_at_95_tpr": h.fpr_at_95_tpr},
                   "mutual_information": {"auroc": mi.auroc, "aupr": mi.aupr,
                                          "fpr_at_95_tpr": mi.fpr_at_95_tpr}})
        });
        println!(
            "{}",
            json!({"train_images": r.train, "test_images": r.test, "members_trained": args.members,
                   "simd": flock_kernels::SIMD_LEVEL, "threads": threads(args.threads).ok(),
                   "epochs": args.epochs, "seconds_per_epoch": r.per_epoch,
                   "train_seconds": r.train_seconds, "predict_seconds": r.predict_seconds,
                   "ensembles": rows, "ood_members": r.headline, "ood": ood})
        );
        return;
    }
    println!(
        "Fashion-MNIST: {} members of 784→200→200→200→10 (ReLU, f32; pixels / 255 as given), trained together on {} images, {} epochs of batches of {} (Adam {}, {:?}, {} held out): {:.1} s, {:.2} s per epoch; test predictions for {} images in {:.2} s",
        args.members,
        r.train,
        args.epochs,
        args.batch_size,
        args.lr,
        args.schedule,
        args.validation_fraction,
        r.train_seconds,
        r.per_epoch,
        r.test,
        r.predict_seconds
    );
    println!(
        "\n{:>3}  {:>8}  {:>7}  {:>7}  {:>7}  {:>9}  {:>10}",
        "M", "accuracy", "NLL", "Brier", "ECE", "adapt ECE", "class ECE"
    );
    for (m, s) in r.rows {
        println!(
            "{m:>3}  {:>8.4}  {:>7.4}  {:>7.4}  {:>7.4}  {:>9.4}  {:>10.4}",
            s.accuracy, s.nll, s.brier, s.ece, s.adaptive_ece, s.classwise_ece
        );
    }
    if let Some((path, n, h, mi)) = r.ood {
        println!(
            "\nout of distribution: {n} images of {} against the {} test images, M = {}",
            path.display(),
            r.main.points(),
            r.headline
        );
        println!(
            "{:<20} {:>7} {:>7} {:>11}",
            "score", "AUROC", "AUPR", "FPR@95TPR"
        );
        for (name, s) in [("predictive entropy", h), ("mutual information", mi)] {
            println!(
                "{name:<20} {:>7.4} {:>7.4} {:>11.4}",
                s.auroc, s.aupr, s.fpr_at_95_tpr
            );
        }
    }
    println!(
        "\nfigures: {}, {}",
        r.figures[0].display(),
        r.figures[1].display()
    );
}
