//! The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Deep Ensembles,
//! Lakshminarayanan et al. 2017): per split, standardise on the training rows, train an ensemble
//! of heteroscedastic MLPs, score the test rows on the original target scale.
//!
//! A dataset folder holds `data.txt` (whitespace-separated numbers), `index_features.txt`,
//! `index_target.txt`, `index_train_K.txt` / `index_test_K.txt` (0-based rows) and `n_splits.txt`;
//! `n_hidden.txt` is read when present.

use std::path::Path;
use std::time::Instant;

use flock_metrics::exact_scores;

use crate::fit::{FitMethod, FitSpec, LearningRateSchedule, fit};
pub use crate::table::{DataError, Table, parse_table};
use crate::table::{read, read_indices};

/// A UCI dataset folder, loaded.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder's name.
    pub name: String,
    /// Feature matrix `[N, D]`.
    pub x: Vec<f64>,
    /// Targets `[N]`.
    pub y: Vec<f64>,
    /// `D`.
    pub features: usize,
    /// `(train rows, test rows)` per split.
    pub splits: Vec<(Vec<usize>, Vec<usize>)>,
    /// Hidden units the protocol uses (`n_hidden.txt`, else 50).
    pub hidden: usize,
}

impl Dataset {
    /// Loads a dataset folder.
    ///
    /// # Errors
    /// [`DataError`]s naming the file, line and column.
    pub fn load(dir: &Path) -> Result<Dataset, DataError> {
        let table = parse_table(&read(&dir.join("data.txt"))?, &dir.join("data.txt"))?;
        let features = read_indices(&dir.join("index_features.txt"), table.cols)?;
        let target = read_indices(&dir.join("index_target.txt"), table.cols)?;
        let target = *target.first().ok_or_else(|| DataError::Empty {
            path: dir.join("index_target.txt"),
        })?;
        let n_splits = read_indices(&dir.join("n_splits.txt"), usize::MAX)?
            .first()
            .copied()
            .unwrap_or(0);
        let hidden = read_indices(&dir.join("n_hidden.txt"), usize::MAX)
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(50);
        let mut x = Vec::with_capacity(table.rows * features.len());
        let mut y = Vec::with_capacity(table.rows);
        for r in 0..table.rows {
            let row = &table.values[r * table.cols..(r + 1) * table.cols];
            x.extend(features.iter().map(|&c| row[c]));
            y.push(row[target]);
        }
        let mut splits = Vec::with_capacity(n_splits);
        for k in 0..n_splits {
            splits.push((
                read_indices(&dir.join(format!("index_train_{k}.txt")), table.rows)?,
                read_indices(&dir.join(format!("index_test_{k}.txt")), table.rows)?,
            ));
        }
        Ok(Dataset {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            x,
            y,
            features: features.len(),
            splits,
            hidden,
        })
    }
}

/// The protocol's configuration (Deep Ensembles' defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UciConfig {
    /// Point estimates or variational guides.
    pub method: FitMethod,
    /// Members.
    pub members: usize,
    /// Hidden units (`None` = the dataset's `n_hidden.txt`).
    pub hidden: Option<usize>,
    /// Epochs over the training rows.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// How the learning rate moves over each fit.
    pub schedule: LearningRateSchedule,
    /// Weight of a standard-normal prior on the (standardised-scale) weights (0 = MLE).
    pub prior_weight: f64,
    /// Fraction of each split's training rows held out for early stopping (0 = none).
    pub validation_fraction: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for UciConfig {
    /// 5 members, one hidden ReLU layer (the dataset's width), heteroscedastic head, 40 epochs,
    /// batch 100, Adam 1e-2 (constant).
    fn default() -> Self {
        UciConfig {
            method: FitMethod::Map,
            members: 5,
            hidden: None,
            epochs: 40,
            batch_size: 100,
            learning_rate: 1e-2,
            schedule: LearningRateSchedule::Constant,
            prior_weight: 0.0,
            validation_fraction: 0.0,
            seed: 0,
        }
    }
}

/// A named UCI configuration: the paper's protocol or flock's recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Deep Ensembles' settings: 40 epochs at a constant Adam rate of 1e-2, every training row
    /// trained on, the last epoch kept.
    DeepEnsembles,
    /// The same networks, batches and members, trained 80 epochs with a cosine-decayed Adam
    /// rate from 1e-2, 10 % of each split's *training* rows held out and each member kept at
    /// its best held-out epoch (the test rows are never seen).
    Flock,
}

impl Protocol {
    /// Its command-line name (`deep-ensembles`, `flock`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::DeepEnsembles => "deep-ensembles",
            Protocol::Flock => "flock",
        }
    }

    /// Parses a command-line name (`deep-ensembles`, `flock`).
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "deep-ensembles" => Some(Protocol::DeepEnsembles),
            "flock" => Some(Protocol::Flock),
            _ => None,
        }
    }

    /// The configuration it names.
    ///
    /// ```
    /// use flock_runner::uci::{Protocol, UciConfig};
    /// assert_eq!(Protocol::DeepEnsembles.config(), UciConfig::default());
    /// assert_eq!(Protocol::Flock.config().epochs, 80);
    /// ```
    pub fn config(self) -> UciConfig {
        match self {
            Protocol::DeepEnsembles => UciConfig::default(),
            Protocol::Flock => UciConfig {
                epochs: 80,
                schedule: LearningRateSchedule::CosineDecay,
                validation_fraction: 0.1,
                ..UciConfig::default()
            },
        }
    }
}

/// One split's test scores on the original target scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitScores {
    /// Test RMSE of the predictive mean.
    pub rmse: f64,
    /// Mean test NLL of the mixture predictive.
    pub nll: f64,
    /// Coverage of the central 95 % interval.
    pub coverage_95: f64,
    /// Mean CRPS.
    pub crps: f64,
    /// Seconds spent training and scoring.
    pub seconds: f64,
}

/// Runs split `k` of `data` with `config`: [`fit`] on the training rows
/// (standardised with their own statistics), exact scores of the test rows on the original scale.
///
/// # Errors
/// [`DataError::ConstantTarget`]; training errors are reported as text.
pub fn run_split(
    data: &Dataset,
    k: usize,
    config: &UciConfig,
) -> Result<SplitScores, Box<dyn std::error::Error + Send + Sync>> {
    let start = Instant::now();
    let (train, test) = &data.splits[k];
    let d = data.features;
    let rows = |idx: &[usize]| -> (Vec<f64>, Vec<f64>) {
        let x = idx
            .iter()
            .flat_map(|&r| data.x[r * d..(r + 1) * d].iter().copied())
            .collect();
        let y = idx.iter().map(|&r| data.y[r]).collect();
        (x, y)
    };
    let (x_train, y_train) = rows(train);
    let (x_test, y_test) = rows(test);
    if y_train.iter().all(|&v| v == y_train[0]) {
        return Err(Box::new(DataError::ConstantTarget { split: k }));
    }
    let spec = FitSpec {
        method: config.method,
        members: config.members,
        hidden: config.hidden.unwrap_or(data.hidden),
        epochs: config.epochs,
        batch_size: config.batch_size,
        learning_rate: config.learning_rate,
        schedule: config.schedule,
        prior_weight: config.prior_weight,
        validation_fraction: config.validation_fraction,
        seed: config.seed.wrapping_add(k as u64),
        ..FitSpec::default()
    };
    let (model, _) = fit(&spec, &x_train, &y_train, d)?;
    let predictive = model.predict(&x_test)?;
    let scores = exact_scores(&predictive, &y_test, None)?;
    Ok(SplitScores {
        rmse: scores.rmse_obs,
        nll: scores.nll,
        coverage_95: scores.coverage_95,
        crps: scores.crps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A method of the published table (`published_table1.csv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Deep Ensembles (Lakshminarayanan et al. 2017), the point-estimate ensembles.
    DeepEnsembles,
    /// Probabilistic backpropagation (Hernández-Lobato & Adams 2015), a Bayesian neural network
    /// with a factorised Gaussian posterior — the published counterpart of a VI fit.
    Pbp,
}

impl Reference {
    /// Its short name in tables (`DE`, `PBP`).
    pub fn label(self) -> &'static str {
        match self {
            Reference::DeepEnsembles => "DE",
            Reference::Pbp => "PBP",
        }
    }

    fn column_suffix(self) -> &'static str {
        match self {
            Reference::DeepEnsembles => "de",
            Reference::Pbp => "pbp",
        }
    }
}

/// `reference`'s published `(rmse, rmse ±, nll, nll ±)` for `dataset`, from
/// `published_table1.csv` next to the dataset folders.
pub fn published(root: &Path, dataset: &str, reference: Reference) -> Option<(f64, f64, f64, f64)> {
    let text = std::fs::read_to_string(root.join("published_table1.csv")).ok()?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let col = |metric: &str, pm: &str| {
        let name = format!("{metric}_{}{pm}", reference.column_suffix());
        header.iter().position(|h| *h == name)
    };
    let (r, rp, n, np) = (
        col("rmse", "")?,
        col("rmse", "_pm")?,
        col("nll", "")?,
        col("nll", "_pm")?,
    );
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.first() == Some(&dataset) {
            let num = |i: usize| cells.get(i)?.parse::<f64>().ok();
            return Some((num(r)?, num(rp)?, num(n)?, num(np)?));
        }
    }
    None
}
