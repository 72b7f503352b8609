//! The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Deep Ensembles,
//! Lakshminarayanan et al. 2017): per split, standardise on the training rows, train an ensemble
//! of heteroscedastic MLPs, score the test rows on the original target scale.
//!
//! A dataset folder holds `data.txt` (whitespace-separated numbers), `index_features.txt`,
//! `index_target.txt`, `index_train_K.txt` / `index_test_K.txt` (0-based rows) and `n_splits.txt`;
//! `n_hidden.txt` is read when present.

use std::path::Path;
use std::time::Instant;

use crate::error::Error;
use crate::regressor::{FitSpec, Matrix, Regressor};
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

/// A named UCI recipe: the paper's protocol or flock's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Deep Ensembles' settings ([`FitSpec::deep_ensembles`]): 40 epochs at a constant Adam rate
    /// of 1e-2, every training row trained on, the last epoch kept.
    DeepEnsembles,
    /// flock's recipe ([`FitSpec::default`]): the same networks, batches and members, trained
    /// 80 epochs with a cosine-decayed Adam rate from 1e-2, 10 % of each split's *training* rows
    /// held out and each member kept at its best held-out epoch (the test rows are never seen).
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

    /// The settings it names.
    ///
    /// ```
    /// use flock_runner::FitSpec;
    /// use flock_runner::app::uci::Protocol;
    /// assert_eq!(Protocol::DeepEnsembles.spec(), FitSpec::deep_ensembles());
    /// assert_eq!(Protocol::Flock.spec(), FitSpec::default());
    /// ```
    pub fn spec(self) -> FitSpec {
        match self {
            Protocol::DeepEnsembles => FitSpec::deep_ensembles(),
            Protocol::Flock => FitSpec::default(),
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

/// Runs split `k` of `data` with `spec` (its hidden layers `hidden`, or one layer of the
/// dataset's width; its seed plus `k`): a [`Regressor`] fitted on the training rows
/// (standardised with their own statistics) on one thread, the test rows scored exactly on the
/// original scale.
///
/// # Errors
/// The fit's [`Error`]s (e.g. [`Error::ConstantTarget`]).
pub fn run_split(
    data: &Dataset,
    k: usize,
    spec: &FitSpec,
    hidden: Option<&[usize]>,
) -> Result<SplitScores, Error> {
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
    let spec = FitSpec {
        hidden: hidden.map_or_else(|| vec![data.hidden], <[usize]>::to_vec),
        seed: spec.seed.wrapping_add(k as u64),
        ..spec.clone()
    };
    let model = Regressor::from_spec(spec)
        .threads(1)
        .fit(&Matrix::new(&x_train, d)?, &y_train)?;
    let scores = model.score(&Matrix::new(&x_test, d)?, &y_test)?;
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
