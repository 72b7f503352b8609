//! The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Deep Ensembles,
//! Lakshminarayanan et al. 2017): per split, standardise on the training rows, train an ensemble
//! of heteroscedastic MLPs, score the test rows on the original target scale.
//!
//! A dataset folder holds `data.txt` (whitespace-separated numbers), `index_features.txt`,
//! `index_target.txt`, `index_train_K.txt` / `index_test_K.txt` (0-based rows) and `n_splits.txt`;
//! `n_hidden.txt` is read when present.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flock_autograd::{Activation, Batch, Graph, Mlp, MlpConfig, ParamLayout, TapeLogJoint};
use flock_ensemble::{MemberRng, Sampling, ensemble_predict};
use flock_metrics::{MixturePredictive, Sigma, exact_scores};
use flock_optim::{AdamConfig, adam};

use crate::map::{EnsembleMAP, RunOptions};

/// Why a dataset could not be used; every variant names the file and, for data, the line and
/// column.
#[derive(Debug)]
pub enum DataError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A cell is not a number.
    NotANumber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The text found.
        text: String,
    },
    /// A cell is NaN or infinite.
    NonFinite {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A row has another number of columns than the first.
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Columns found.
        found: usize,
        /// Columns of the first row.
        expected: usize,
    },
    /// The file holds no rows.
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// An index (row or column) out of range.
    Index {
        /// The file it came from.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The index.
        index: usize,
        /// The number of rows or columns it indexes.
        limit: usize,
    },
    /// The target is constant on the training rows (nothing to learn, no scale).
    ConstantTarget {
        /// The split.
        split: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::NotANumber {
                path,
                line,
                column,
                text,
            } => write!(
                f,
                "{}:{line}: column {column} is {text:?}, not a number",
                path.display()
            ),
            DataError::NonFinite { path, line, column } => write!(
                f,
                "{}:{line}: column {column} is not finite (NaN or infinite)",
                path.display()
            ),
            DataError::Ragged {
                path,
                line,
                found,
                expected,
            } => write!(
                f,
                "{}:{line}: {found} columns, but the first row has {expected}",
                path.display()
            ),
            DataError::Empty { path } => write!(f, "{}: no data rows", path.display()),
            DataError::Index {
                path,
                line,
                index,
                limit,
            } => write!(
                f,
                "{}:{line}: index {index} is out of range (there are {limit})",
                path.display()
            ),
            DataError::ConstantTarget { split } => {
                write!(
                    f,
                    "split {split}: the target is constant on the training rows"
                )
            }
        }
    }
}

impl std::error::Error for DataError {}

/// A numeric table read from whitespace-separated text (blank lines skipped).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Values, row-major.
    pub values: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Parses whitespace-separated numbers; the error names the line and column of a bad cell.
///
/// ```
/// use flock_runner::uci::parse_table;
/// let t = parse_table("1 2\n\n 3\t4\n".as_ref(), "inline".as_ref())?;
/// assert_eq!((t.rows, t.cols, t.values), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
/// assert!(parse_table("1 2\n3\n".as_ref(), "inline".as_ref()).is_err());
/// # Ok::<(), flock_runner::uci::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::NotANumber`], [`DataError::NonFinite`], [`DataError::Ragged`], [`DataError::Empty`].
pub fn parse_table(text: &str, path: &Path) -> Result<Table, DataError> {
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0, 0);
    for (number, line) in text.lines().enumerate() {
        let line_no = number + 1;
        let start = values.len();
        for (c, cell) in line.split_whitespace().enumerate() {
            let v: f64 = cell.parse().map_err(|_| DataError::NotANumber {
                path: path.to_owned(),
                line: line_no,
                column: c + 1,
                text: cell.chars().take(40).collect(),
            })?;
            if !v.is_finite() {
                return Err(DataError::NonFinite {
                    path: path.to_owned(),
                    line: line_no,
                    column: c + 1,
                });
            }
            values.push(v);
        }
        let found = values.len() - start;
        if found == 0 {
            continue;
        }
        if rows == 0 {
            cols = found;
        } else if found != cols {
            return Err(DataError::Ragged {
                path: path.to_owned(),
                line: line_no,
                found,
                expected: cols,
            });
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Table { values, rows, cols })
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file of non-negative integer indices, one per line, each below `limit`.
fn read_indices(path: &Path, limit: usize) -> Result<Vec<usize>, DataError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let cell = line.trim();
        if cell.is_empty() {
            continue;
        }
        let index: usize = cell.parse().map_err(|_| DataError::NotANumber {
            path: path.to_owned(),
            line: number + 1,
            column: 1,
            text: cell.chars().take(40).collect(),
        })?;
        if index >= limit {
            return Err(DataError::Index {
                path: path.to_owned(),
                line: number + 1,
                index,
                limit,
            });
        }
        out.push(index);
    }
    Ok(out)
}

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
    /// Seed.
    pub seed: u64,
}

impl Default for UciConfig {
    /// 5 members, one hidden ReLU layer (the dataset's width), heteroscedastic head, 40 epochs,
    /// batch 100, Adam 1e-2.
    fn default() -> Self {
        UciConfig {
            members: 5,
            hidden: None,
            epochs: 40,
            batch_size: 100,
            learning_rate: 1e-2,
            seed: 0,
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

/// `(mean, std)` per column of the training rows (std 0 → 1, as the benchmark code does).
fn moments(values: &[f64], cols: usize, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() as f64;
    let mut mean = vec![0.0; cols];
    for &r in rows {
        for c in 0..cols {
            mean[c] += values[r * cols + c] / n;
        }
    }
    let mut var = vec![0.0; cols];
    for &r in rows {
        for c in 0..cols {
            var[c] += (values[r * cols + c] - mean[c]).powi(2) / n;
        }
    }
    let std = var
        .into_iter()
        .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, std)
}

/// Runs split `k` of `data` with `config`.
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
    let (x_mean, x_std) = moments(&data.x, d, train);
    let (y_mean, y_std) = moments(&data.y, 1, train);
    let (y_mean, y_std) = (y_mean[0], y_std[0]);
    if train.iter().all(|&r| data.y[r] == data.y[train[0]]) {
        return Err(Box::new(DataError::ConstantTarget { split: k }));
    }
    let (x_mean, x_std) = (&x_mean, &x_std);
    let standardise = |rows: &[usize]| {
        let x: Vec<f64> = rows
            .iter()
            .flat_map(|&r| (0..d).map(move |c| (data.x[r * d + c] - x_mean[c]) / x_std[c]))
            .collect();
        let y: Vec<f64> = rows.iter().map(|&r| (data.y[r] - y_mean) / y_std).collect();
        (x, y)
    };
    let (x_train, y_train) = standardise(train);
    let (x_test, _) = standardise(test);
    let hidden = config.hidden.unwrap_or(data.hidden);

    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(d, 2, hidden, 1, Activation::Relu),
    )?;
    let net = mlp.clone();
    let log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
        let (mu, sigma) = heteroscedastic_head(g, &net, x)?;
        let ll = g.normal_log_density(y, mu, sigma)?;
        Ok((ll, ll))
    });
    let l2 = layout.clone();
    let init_mlp = mlp.clone();
    let init = move |rng: &mut MemberRng| {
        let mut block = vec![0.0; l2.member_size()];
        init_mlp
            .init_member(&l2, rng, &mut block)
            .expect("the layout is the MLP's own");
        block
    };
    let optimizer = adam(config.learning_rate, AdamConfig::default())?;
    let mut map = EnsembleMAP::new(log_joint, init, optimizer, config.members, 0.0)
        .map_err(|e| e.to_string())?;
    let batch_size = config.batch_size.min(train.len());
    let steps = config.epochs * train.len().div_ceil(batch_size);
    let result = map
        .run(
            config.seed.wrapping_add(k as u64),
            steps,
            Batch::new(&x_train, &y_train, train.len())?,
            RunOptions {
                batch_size: Some(batch_size),
                sampling: Sampling::WithoutReplacement,
                ..RunOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;

    // Predict: per member a mean and a scale, then back to the original target scale.
    let n_test = test.len();
    let preds = ensemble_predict(
        &result.params,
        |g, x| {
            let (mu, sigma) = heteroscedastic_head(g, &mlp, x)?;
            // [N, 2] = (μ, σ) side by side.
            let mu = g.unsqueeze_last(mu)?;
            let sigma = g.unsqueeze_last(sigma)?;
            stack_two(g, mu, sigma)
        },
        &x_test,
        n_test,
    )?;
    let m = config.members;
    let mut means = vec![0.0; m * n_test];
    let mut sigmas = vec![0.0; m * n_test];
    for e in 0..m {
        let block = preds.member(e);
        for i in 0..n_test {
            means[e * n_test + i] = block[2 * i] * y_std + y_mean;
            sigmas[e * n_test + i] = block[2 * i + 1] * y_std;
        }
    }
    let y_test: Vec<f64> = test.iter().map(|&r| data.y[r]).collect();
    let pred = MixturePredictive::new(&means, m, n_test, Sigma::PerComponent(sigmas))?;
    let scores = exact_scores(&pred, &y_test, None)?;
    Ok(SplitScores {
        rmse: scores.rmse_obs,
        nll: scores.nll,
        coverage_95: scores.coverage_95,
        crps: scores.crps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The heteroscedastic head: `μ = out[:, 0]`, `σ = √(softplus(out[:, 1]) + 1e-6)` (Deep
/// Ensembles' variance parameterisation).
fn heteroscedastic_head(
    g: &mut Graph<'_, f64>,
    mlp: &Mlp,
    x: flock_autograd::Var,
) -> Result<(flock_autograd::Var, flock_autograd::Var), flock_autograd::AutogradError> {
    let out = mlp.forward(g, x)?;
    let mu = g.select_column(out, 0)?;
    let raw = g.select_column(out, 1)?;
    let var = g.softplus(raw);
    let var = g.offset(var, 1e-6);
    let sigma = g.sqrt(var);
    Ok((mu, sigma))
}

/// `[N, 1]` and `[N, 1]` side by side as `[N, 2]`: `a·[1, 0] + b·[0, 1]`.
fn stack_two(
    g: &mut Graph<'_, f64>,
    a: flock_autograd::Var,
    b: flock_autograd::Var,
) -> Result<flock_autograd::Var, flock_autograd::AutogradError> {
    let left = g.input(&[1.0, 0.0], [1, 2])?;
    let right = g.input(&[0.0, 1.0], [1, 2])?;
    let a2 = g.matmul(a, left)?;
    let b2 = g.matmul(b, right)?;
    g.add(a2, b2)
}

/// Deep Ensembles' published `(rmse, rmse ±, nll, nll ±)` for `dataset`, from
/// `published_table1.csv` next to the dataset folders.
pub fn published(root: &Path, dataset: &str) -> Option<(f64, f64, f64, f64)> {
    let text = std::fs::read_to_string(root.join("published_table1.csv")).ok()?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (r, rp, n, np) = (
        col("rmse_de")?,
        col("rmse_de_pm")?,
        col("nll_de")?,
        col("nll_de_pm")?,
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
