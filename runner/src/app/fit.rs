//! `flock fit`: an ensemble on a table — a regressor of a numeric target, or (`--task classify`)
//! a classifier of class labels written as words or numbers — scored on test rows, optionally
//! calibrated for conformal prediction, and saved.

use std::path::{Path, PathBuf};
use std::time::Instant;

use flock_ensemble::{SeedStream, shuffle};
use flock_kernels::Element;
use flock_metrics::{ExactScores, Series, line_chart_svg};
use serde_json::{Value, json};

use super::cli::{BoxError, FitArgs, Task, threads};
use super::progress::TrainingBar;
use super::uci::Protocol;
use super::{refuse_to_overwrite, write_figure};
use crate::classifier::Classifier;
use crate::distributed::Communicator;
use crate::regressor::{FitHooks, FitMethod, FitOutcome, FitSpec, Matrix, Regressor};
use crate::table::{
    DataError, LabelledTable, NamedTable, class_names, csv_field, parse_columns_named,
    parse_named_table, read, read_labelled_table,
};
use crate::train::ProgressHook;

/// Feature columns: the named ones, or every column but `exclude` (the target).
///
/// # Errors
/// [`DataError::MissingColumn`] for a name the file lacks, [`DataError::FeatureClash`] for the
/// target or a column named twice.
pub(crate) fn feature_columns(
    table: &NamedTable,
    path: &Path,
    features: Option<&[String]>,
    exclude: Option<usize>,
) -> Result<Vec<usize>, DataError> {
    let Some(names) = features else {
        return Ok((0..table.table.cols)
            .filter(|&c| Some(c) != exclude)
            .collect());
    };
    let mut columns: Vec<usize> = Vec::with_capacity(names.len());
    for name in names {
        let c = table.column(name, path)?;
        if Some(c) == exclude || columns.contains(&c) {
            return Err(DataError::FeatureClash {
                path: path.to_owned(),
                column: name.clone(),
                is_target: Some(c) == exclude,
            });
        }
        columns.push(c);
    }
    Ok(columns)
}

/// The cells of `rows` × `columns`, row-major, in the element type.
pub(crate) fn gather<T: Element>(table: &NamedTable, rows: &[usize], columns: &[usize]) -> Vec<T> {
    let cols = table.table.cols;
    rows.iter()
        .flat_map(|&r| {
            columns
                .iter()
                .map(move |&c| T::from_f64(table.table.values[r * cols + c]))
        })
        .collect()
}

/// The rows of a fit: those it trains on, those it calibrates conformal prediction on (with
/// `--conformal`), and the test rows — of the data file, or of the `--test` file.
struct Rows {
    train: Vec<usize>,
    calibration: Vec<usize>,
    test: Vec<usize>,
}

/// `count` rows split into training, calibration (`calibration_fraction` of what is not test)
/// and test rows (`test_fraction`, or every row of a separate test file of `test_count` rows):
/// seeded random choices, each part in file order within it.
fn split_rows(
    count: usize,
    test_count: Option<usize>,
    args: &FitArgs,
    seed: u64,
) -> Result<Rows, BoxError> {
    let mut train: Vec<usize> = (0..count).collect();
    let test = match test_count {
        Some(n) => (0..n).collect(),
        None => {
            let f = args.test_fraction; // checked by `fit_settings`
            shuffle(&mut SeedStream::TestRows.rng(seed), &mut train);
            let n_test = (train.len() as f64 * f).round() as usize;
            train.split_off(train.len() - n_test)
        }
    };
    let calibration = match args.conformal {
        None => Vec::new(),
        Some(_) => {
            let f = args.calibration_fraction; // checked by `fit_settings`
            shuffle(&mut SeedStream::CalibrationRows.rng(seed), &mut train);
            let n_cal = (train.len() as f64 * f).round() as usize;
            let mut calibration = train.split_off(train.len() - n_cal);
            calibration.sort_unstable();
            calibration
        }
    };
    train.sort_unstable();
    Ok(Rows {
        train,
        calibration,
        test,
    })
}

/// A regression fit's table: when the file has a header naming every `--features` column and
/// the target, only those columns are read (the others may hold anything, text included);
/// otherwise every column, which must then all be numbers.
fn read_fit_table(path: &Path, args: &FitArgs) -> Result<NamedTable, DataError> {
    let text = read(path)?;
    if let Some(features) = &args.features {
        let mut wanted = features.clone();
        wanted.push(args.target.clone());
        match parse_columns_named(&text, path, &wanted) {
            Ok(Some(table)) => return Ok(table),
            // No header, or columns given by index: read them all.
            Ok(None) => {}
            Err(DataError::MissingFeatures { missing, .. })
                if missing.iter().all(|m| m.parse::<usize>().is_ok()) => {}
            Err(DataError::MissingFeatures {
                path,
                missing,
                available,
            }) => {
                return Err(DataError::MissingColumn {
                    path,
                    column: missing.join(", "),
                    available,
                });
            }
            Err(e) => return Err(e),
        }
    }
    parse_named_table(&text, path)
}

/// `OUT.state`: the model's name with `.state` appended.
fn state_file(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// The hooks of a command-line fit: the state file (rank 0 writes a distributed fit's), resumption,
/// the progress bar (rank 0's), the ranks sharing the members.
fn hooks<'c>(args: &FitArgs, comm: &'c dyn Communicator) -> FitHooks<'c> {
    FitHooks {
        state_file: Some(state_file(&args.out)),
        resume: args.resume,
        max_epochs_this_call: args.max_epochs_this_run,
        progress: (!args.quiet && !args.json && comm.is_root())
            .then(|| Box::new(TrainingBar::new("fit")) as Box<dyn ProgressHook>),
        ranks: Some(comm),
        row_chunks: args.shard_rows,
        row_ranks: args.row_ranks,
        step_order: args.step_order,
    }
}

/// A fit's threads: `--threads`, or every core — one per rank in a distributed fit.
fn fit_threads(args: &FitArgs) -> Result<usize, BoxError> {
    match (args.threads, args.distributed) {
        (None, true) => Ok(1),
        (given, _) => threads(given),
    }
}

/// The fitted model, on the rank that reports (every rank trained it); `None` elsewhere, and
/// for a fit paused by `--max-epochs-this-run` (said, with where its state is, on that rank).
fn fitted_on_root<M>(
    outcome: FitOutcome<M>,
    args: &FitArgs,
    comm: &dyn Communicator,
) -> Option<Box<M>> {
    if !comm.is_root() {
        return None;
    }
    match outcome {
        FitOutcome::Fitted(model) => Some(model),
        FitOutcome::Paused { steps, .. } => {
            println!(
                "stopped after {steps} steps as asked; the training state is in {} (continue with --resume)",
                state_file(&args.out).display()
            );
            None
        }
    }
}

/// What a fit trained: the report's first entries (`task`, the recipe, the rows, steps and
/// seconds) and its first printed line.
fn trained_report<T: Element>(
    task: &str,
    spec: &FitSpec,
    protocol: Protocol,
    (rows, features): (usize, usize),
    steps: usize,
    seconds: f64,
) -> (Value, String) {
    let report = json!({
        "task": task,
        "protocol": protocol.name(),
        "dtype": T::NAME,
        "members": spec.members,
        "train_rows": rows,
        "features": features,
        "steps": steps,
        "seconds": seconds,
    });
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
    let line = format!(
        "trained {} {what} on {rows} rows × {features} features ({} epochs): {steps} steps in {seconds:.2} s ({} recipe, {})",
        spec.members,
        spec.epochs,
        protocol.name(),
        T::NAME
    );
    (report, line)
}

/// The settings of a `flock fit`, every argument checked that can be checked before the data
/// is read: the recipe (`FitSpec::validate`), the task's settings and the row fractions.
pub(crate) fn fit_settings(args: &FitArgs) -> Result<(FitSpec, Protocol), BoxError> {
    let protocol = args.protocol.unwrap_or(Protocol::Flock);
    let base = match (protocol, args.task) {
        (Protocol::Flock, Task::Classify) => FitSpec::classification(),
        _ => protocol.spec(),
    };
    let (spec, _) = args.recipe.spec(base)?;
    if args.task == Task::Classify
        && (args.recipe.likelihood.is_some() || args.recipe.sigma.is_some())
    {
        return Err(
            "--likelihood and --sigma are regression settings: a classifier's likelihood is \
             categorical"
                .into(),
        );
    }
    let f = args.test_fraction;
    if args.test.is_none() && !(0.0..1.0).contains(&f) {
        return Err(format!("--test-fraction {f}: expected 0 ≤ f < 1").into());
    }
    if let Some(alpha) = args.conformal {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(format!("--conformal {alpha}: expected a miscoverage in (0, 1)").into());
        }
        let f = args.calibration_fraction;
        if !(f > 0.0 && f < 1.0) {
            return Err(
                format!("--calibration-fraction {f}: expected a fraction in (0, 1)").into(),
            );
        }
    }
    let mut inputs = vec![("data file", args.data.as_path())];
    inputs.extend(args.test.as_deref().map(|test| ("test file", test)));
    refuse_to_overwrite("--out", &args.out, &inputs)?;
    threads(args.threads)?;
    match (args.shard_rows, spec.method) {
        (Some(0), _) => return Err("--shard-rows 0: expected at least one row per chunk".into()),
        (None, _) if args.row_ranks.is_some() => {
            return Err("--row-ranks: rows are shared only with --shard-rows".into());
        }
        (Some(_), FitMethod::Vi(_)) => {
            return Err(
                "--shard-rows: VI draws its noise per evaluation, so its rows cannot be \
                 sharded; shard its members (--distributed alone)"
                    .into(),
            );
        }
        _ => {}
    }
    Ok((spec, protocol))
}

/// `flock fit` on the processes of `comm` (one, or MPI's with `--distributed`: they share the
/// members; rank 0 prints and writes files).
pub(crate) fn fit_command<T: Element>(
    args: &FitArgs,
    comm: &dyn Communicator,
) -> Result<(), BoxError> {
    let (spec, protocol) = fit_settings(args)?;
    match args.task {
        Task::Regress => fit_regressor::<T>(args, spec, protocol, comm),
        Task::Classify => fit_classifier::<T>(args, spec, protocol, comm),
    }
}

fn fit_regressor<T: Element>(
    args: &FitArgs,
    spec: FitSpec,
    protocol: Protocol,
    comm: &dyn Communicator,
) -> Result<(), BoxError> {
    let data = &args.data;
    let table = read_fit_table(data, args)?;
    let target_column = table.column(&args.target, data)?;
    let columns = feature_columns(&table, data, args.features.as_deref(), Some(target_column))?;
    if columns.is_empty() {
        return Err(format!("{}: no feature columns besides the target", data.display()).into());
    }
    let test_table = match &args.test {
        Some(path) => Some(read_fit_table(path, args)?),
        None => None,
    };
    let rows = split_rows(
        table.table.rows,
        test_table.as_ref().map(|t| t.table.rows),
        args,
        spec.seed,
    )?;
    if rows.train.len() < 2 {
        return Err(DataError::TooFewRows {
            path: data.clone(),
            rows: rows.train.len(),
            needed: 2,
        }
        .into());
    }
    let features = columns.len();
    let x_train: Vec<T> = gather(&table, &rows.train, &columns);
    let y_train: Vec<T> = gather(&table, &rows.train, &[target_column]);
    if y_train.iter().all(|&v| v == y_train[0]) {
        return Err(format!(
            "{}: the target column {:?} is constant on the training rows",
            data.display(),
            args.target
        )
        .into());
    }
    let mut regressor = Regressor::<T>::from_spec(spec.clone()).threads(fit_threads(args)?);
    if table.has_header {
        regressor =
            regressor.feature_names(columns.iter().map(|&c| table.names[c].clone()).collect());
    }
    let start = Instant::now();
    let fitted = regressor.fit_with(
        &Matrix::new(&x_train, features)?,
        &y_train,
        hooks(args, comm),
    )?;
    let Some(mut model) = fitted_on_root(fitted, args, comm) else {
        return Ok(());
    };
    let (mut report, trained) = trained_report::<T>(
        "regress",
        &spec,
        protocol,
        (rows.train.len(), features),
        model.result().steps,
        start.elapsed().as_secs_f64(),
    );
    let mut lines = vec![trained];
    if !model.diverged().is_empty() {
        lines.push(format!(
            "diverged members (kept at their last finite parameters): {:?}",
            model.diverged()
        ));
    }
    if let Some(alpha) = args.conformal {
        let x_cal: Vec<T> = gather(&table, &rows.calibration, &columns);
        let y_cal: Vec<T> = gather(&table, &rows.calibration, &[target_column]);
        model.calibrate_conformal(&Matrix::new(&x_cal, features)?, &y_cal)?;
        report["calibration_rows"] = json!(rows.calibration.len());
        lines.push(format!(
            "conformal: calibrated on {} held-out training rows for α = {alpha}",
            rows.calibration.len()
        ));
    }
    if !rows.test.is_empty() {
        let (x_test, y_test): (Vec<T>, Vec<T>) = match (&test_table, &args.test) {
            (Some(t), Some(path)) => {
                let target_column = t.column(&args.target, path)?;
                let cols = match model.feature_names() {
                    Some(names) if t.has_header => t.columns_named(names, path)?,
                    _ => feature_columns(t, path, args.features.as_deref(), Some(target_column))?,
                };
                (
                    gather(t, &rows.test, &cols),
                    gather(t, &rows.test, &[target_column]),
                )
            }
            _ => (
                gather(&table, &rows.test, &columns),
                gather(&table, &rows.test, &[target_column]),
            ),
        };
        let x_test = Matrix::new(&x_test, features)?;
        let s = model.score(&x_test, &y_test)?;
        if let Some(path) = &args.figure {
            write_figure(path, calibration_svg(&s, y_test.len()))?;
            lines.push(format!("figure: {}", path.display()));
        }
        lines.push(format!(
            "test ({} rows, original scale): RMSE {:.4}  NLL {:.4}  cov95 {:.3}  sharp95 {:.4}  CRPS {:.4}  calibration error {:.4}",
            y_test.len(),
            s.rmse_obs,
            s.nll,
            s.coverage_95,
            s.sharpness_95,
            s.crps,
            s.calibration_error
        ));
        report["test"] = json!({
            "rows": y_test.len(), "rmse": s.rmse_obs, "nll": s.nll, "coverage_95": s.coverage_95,
            "sharpness_95": s.sharpness_95, "crps": s.crps,
            "calibration_error": s.calibration_error,
        });
        if let Some(alpha) = args.conformal {
            let (lo, hi) = model.conformal_interval(&x_test, alpha)?;
            let covered = y_test
                .iter()
                .zip(lo.iter().zip(&hi))
                .filter(|&(y, (l, h))| *l <= y.to_f64() && y.to_f64() <= *h)
                .count();
            let coverage = covered as f64 / y_test.len() as f64;
            let width = hi.iter().zip(&lo).map(|(h, l)| h - l).sum::<f64>() / lo.len() as f64;
            lines.push(format!(
                "conformal {:.0} % intervals on the test rows: coverage {coverage:.3}, mean width {width:.4}",
                100.0 * (1.0 - alpha)
            ));
            report["test"]["conformal"] =
                json!({"alpha": alpha, "coverage": coverage, "mean_width": width});
        }
    }
    model.save(&args.out)?;
    finish(args, lines, report)
}

/// Removes the state file, then prints the lines and the model's path — or, with `--json`, the
/// report as one JSON object.
fn finish(args: &FitArgs, mut lines: Vec<String>, mut report: Value) -> Result<(), BoxError> {
    let _ = std::fs::remove_file(state_file(&args.out));
    lines.push(format!("model: {}", args.out.display()));
    report["model"] = json!(args.out.display().to_string());
    if args.json {
        println!("{report}");
    } else {
        for line in lines {
            println!("{line}");
        }
    }
    Ok(())
}

/// Each row's class index among `names`, or the row's line named in an error.
fn label_indices(
    table: &LabelledTable,
    path: &Path,
    names: &[String],
) -> Result<Vec<usize>, DataError> {
    table
        .labels
        .iter()
        .zip(&table.lines)
        .map(|(label, &line)| {
            names
                .iter()
                .position(|n| n == label)
                .ok_or_else(|| DataError::UnknownLabel {
                    path: path.to_owned(),
                    line,
                    label: label.clone(),
                    known: names.join(", "),
                })
        })
        .collect()
}

fn fit_classifier<T: Element>(
    args: &FitArgs,
    spec: FitSpec,
    protocol: Protocol,
    comm: &dyn Communicator,
) -> Result<(), BoxError> {
    let data = &args.data;
    let labelled = read_labelled_table(data, &args.target)?;
    let table = &labelled.table;
    let columns = feature_columns(table, data, args.features.as_deref(), Some(labelled.target))?;
    if columns.is_empty() {
        return Err(format!("{}: no feature columns besides the target", data.display()).into());
    }
    let test_labelled = match &args.test {
        Some(path) => Some(read_labelled_table(path, &args.target)?),
        None => None,
    };
    let rows = split_rows(
        table.table.rows,
        test_labelled.as_ref().map(|t| t.table.table.rows),
        args,
        spec.seed,
    )?;
    // The classes are the training rows' labels.
    let train_labels: Vec<String> = rows
        .train
        .iter()
        .map(|&r| labelled.labels[r].clone())
        .collect();
    let (names, _) = class_names(&train_labels);
    if names.len() < 2 {
        return Err(DataError::SingleClass {
            path: data.clone(),
            label: names.first().cloned().unwrap_or_default(),
        }
        .into());
    }
    let all_labels = label_indices(&labelled, data, &names)?;
    let pick = |rows: &[usize]| rows.iter().map(|&r| all_labels[r]).collect::<Vec<_>>();
    let features = columns.len();
    let x_train: Vec<T> = gather(table, &rows.train, &columns);
    let mut classifier = Classifier::<T>::from_spec(spec.clone())
        .threads(fit_threads(args)?)
        .class_names(names.clone());
    if table.has_header {
        classifier =
            classifier.feature_names(columns.iter().map(|&c| table.names[c].clone()).collect());
    }
    let start = Instant::now();
    let fitted = classifier.fit_with(
        &Matrix::new(&x_train, features)?,
        &pick(&rows.train),
        hooks(args, comm),
    )?;
    let Some(mut model) = fitted_on_root(fitted, args, comm) else {
        return Ok(());
    };
    let (mut report, trained) = trained_report::<T>(
        "classify",
        &spec,
        protocol,
        (rows.train.len(), features),
        model.result().steps,
        start.elapsed().as_secs_f64(),
    );
    report["classes"] = json!(names);
    let mut lines = vec![format!(
        "{trained}; {} classes: {}",
        names.len(),
        names
            .iter()
            .map(|n| csv_field(n))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    if let Some(alpha) = args.conformal {
        let x_cal: Vec<T> = gather(table, &rows.calibration, &columns);
        model.calibrate_conformal(&Matrix::new(&x_cal, features)?, &pick(&rows.calibration))?;
        report["calibration_rows"] = json!(rows.calibration.len());
        lines.push(format!(
            "conformal: calibrated on {} held-out training rows for α = {alpha}",
            rows.calibration.len()
        ));
    }
    if !rows.test.is_empty() {
        let (x_test, y_test): (Vec<T>, Vec<usize>) = match (&test_labelled, &args.test) {
            (Some(t), Some(path)) => {
                let cols = match model.feature_names() {
                    Some(names) if t.table.has_header => t.table.columns_named(names, path)?,
                    _ => feature_columns(&t.table, path, args.features.as_deref(), Some(t.target))?,
                };
                (
                    gather(&t.table, &rows.test, &cols),
                    label_indices(t, path, &names)?,
                )
            }
            _ => (gather(table, &rows.test, &columns), pick(&rows.test)),
        };
        let x_test = Matrix::new(&x_test, features)?;
        let s = model.score(&x_test, &y_test)?;
        lines.push(format!(
            "test ({} rows): accuracy {:.4}  NLL {:.4}  Brier {:.4}  ECE {:.4}  adaptive ECE {:.4}  classwise ECE {:.4}",
            y_test.len(),
            s.accuracy,
            s.nll,
            s.brier,
            s.ece,
            s.adaptive_ece,
            s.classwise_ece
        ));
        report["test"] = json!({
            "rows": y_test.len(), "accuracy": s.accuracy, "nll": s.nll, "brier": s.brier,
            "ece": s.ece, "adaptive_ece": s.adaptive_ece, "classwise_ece": s.classwise_ece,
        });
        if let Some(alpha) = args.conformal {
            let sets = model.prediction_sets(&x_test, alpha)?;
            let covered = sets
                .iter()
                .zip(&y_test)
                .filter(|(s, y)| s.contains(y))
                .count();
            let coverage = covered as f64 / y_test.len() as f64;
            let size = sets.iter().map(Vec::len).sum::<usize>() as f64 / sets.len() as f64;
            lines.push(format!(
                "conformal {:.0} % prediction sets on the test rows: coverage {coverage:.3}, mean size {size:.2}",
                100.0 * (1.0 - alpha)
            ));
            report["test"]["conformal"] =
                json!({"alpha": alpha, "coverage": coverage, "mean_size": size});
        }
    }
    model.save(&args.out)?;
    finish(args, lines, report)
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
