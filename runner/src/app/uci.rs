//! The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Deep Ensembles,
//! Lakshminarayanan et al. 2017): per split, standardise on the training rows, train an ensemble
//! of heteroscedastic MLPs, score the test rows on the original target scale.
//!
//! A dataset folder holds `data.txt` (whitespace-separated numbers), `index_features.txt`,
//! `index_target.txt`, `index_train_K.txt` / `index_test_K.txt` (0-based rows) and `n_splits.txt`;
//! `n_hidden.txt` is read when present.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde_json::json;

use super::progress::ProgressBar;
use crate::distributed::{Communicator, block, bytes_f64, f64_bytes};
use crate::regressor::{FitMethod, LearningRateSchedule};

use crate::error::Error;
use crate::regressor::{FitHooks, FitOutcome, FitSpec, Matrix, Regressor};
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
    ranks: Option<&dyn Communicator>,
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
    let hooks = FitHooks {
        ranks,
        ..FitHooks::default()
    };
    let model = match Regressor::from_spec(spec).threads(1).fit_with(
        &Matrix::new(&x_train, d)?,
        &y_train,
        hooks,
    )? {
        FitOutcome::Fitted(model) => model,
        FitOutcome::Paused { .. } => unreachable!("no epoch limit was set"),
    };
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

/// A `flock uci` run: which datasets and splits, with which recipe, on which processes.
pub struct UciRun<'a> {
    /// A dataset folder (with `data.txt`) or a folder of them.
    pub dir: &'a Path,
    /// Only these splits (`None` = every split).
    pub splits: Option<&'a [usize]>,
    /// Only these datasets (folder names).
    pub datasets: Option<&'a [String]>,
    /// The recipe.
    pub spec: &'a FitSpec,
    /// Hidden layers (`None` = one layer of the dataset's width).
    pub hidden: Option<&'a [usize]>,
    /// The protocol the recipe started from (for the report).
    pub protocol: Protocol,
    /// Draw a progress bar per dataset on stderr.
    pub show_progress: bool,
    /// Print one JSON object instead of the table.
    pub json: bool,
    /// The processes sharing the splits ([`SingleProcess`](crate::distributed::SingleProcess)
    /// for one): each runs a contiguous block of every dataset's chosen splits, the scores are
    /// gathered in split order, and only rank 0 prints.
    pub comm: &'a dyn Communicator,
    /// Ranks that share each split's members (a divisor of `comm`'s size; 1 = splits only):
    /// the ranks form `size / member_ranks` groups, each running a block of the splits one
    /// after the other with the split's members sharded over the group.
    pub member_ranks: usize,
    /// The threads a rank runs its splits on (`None`: rayon's global pool).
    pub pool: Option<&'a rayon::ThreadPool>,
}

impl std::fmt::Debug for UciRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UciRun")
            .field("dir", &self.dir)
            .field("splits", &self.splits)
            .field("datasets", &self.datasets)
            .field("protocol", &self.protocol)
            .field("ranks", &self.comm.size())
            .field("member_ranks", &self.member_ranks)
            .finish_non_exhaustive()
    }
}

impl SplitScores {
    fn to_values(self) -> [f64; 5] {
        [
            self.rmse,
            self.nll,
            self.coverage_95,
            self.crps,
            self.seconds,
        ]
    }
    fn from_values(v: &[f64]) -> SplitScores {
        SplitScores {
            rmse: v[0],
            nll: v[1],
            coverage_95: v[2],
            crps: v[3],
            seconds: v[4],
        }
    }
}

/// Every rank's scores (or first error) in rank order, so in split order: a rank's message is
/// a tag byte (0: scores, 1: an error) and then five f64 per split or the error's text.
fn gather_scores(
    comm: &dyn Communicator,
    local: Result<Vec<SplitScores>, String>,
) -> Result<Vec<SplitScores>, String> {
    let message = match &local {
        Ok(scores) => {
            let values: Vec<f64> = scores.iter().flat_map(|s| s.to_values()).collect();
            [vec![0u8], f64_bytes(&values)].concat()
        }
        Err(e) => [vec![1u8], e.as_bytes().to_vec()].concat(),
    };
    let mut all = Vec::new();
    for (rank, part) in comm.all_gather(&message).iter().enumerate() {
        match part.split_first() {
            Some((0, values)) => all.extend(
                bytes_f64(values)
                    .chunks_exact(5)
                    .map(SplitScores::from_values),
            ),
            Some((_, text)) => {
                let text = String::from_utf8_lossy(text);
                return Err(if comm.size() > 1 {
                    format!("rank {rank}: {text}")
                } else {
                    text.into_owned()
                });
            }
            None => return Err(format!("rank {rank} sent nothing")),
        }
    }
    Ok(all)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl UciRun<'_> {
    /// Runs every chosen split of every chosen dataset (this rank's block of them, in parallel
    /// on `pool`) and prints the table beside the published numbers (rank 0).
    ///
    /// # Errors
    /// A dataset's [`DataError`]s, a split's fit errors (naming dataset and split).
    pub fn run(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let UciRun {
            dir,
            splits,
            datasets,
            spec,
            hidden,
            protocol,
            show_progress,
            json,
            comm,
            member_ranks,
            pool,
        } = *self;
        let root = comm.is_root();
        if member_ranks == 0 || !comm.size().is_multiple_of(member_ranks) {
            return Err(format!(
                "--member-ranks {member_ranks}: expected a divisor of the {} ranks",
                comm.size()
            )
            .into());
        }
        // Split groups: each runs a block of the splits; its ranks share each split's members.
        let groups = comm.size() / member_ranks;
        let group = comm.rank() / member_ranks;
        let members_over = (member_ranks > 1).then(|| comm.split(group));
        let members_over = members_over.as_deref();
        let group_root = members_over.is_none_or(|g| g.is_root());
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
            return Err(
                format!("{}: no dataset folder (with data.txt) found", dir.display()).into(),
            );
        }
        // VI fits are set beside the published Bayesian network (PBP), point estimates beside Deep
        // Ensembles.
        let reference = match spec.method {
            FitMethod::Map => Reference::DeepEnsembles,
            FitMethod::Vi(_) => Reference::Pbp,
        };
        let mut rows_json = Vec::new();
        let header = format!(
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
        if !json && root {
            println!("{header}");
        }
        let label = reference.label();
        if !json && root {
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
        }
        for folder in folders {
            let data = Dataset::load(&folder)?;
            if datasets.is_some_and(|names| !names.contains(&data.name)) {
                continue;
            }
            let chosen: Vec<usize> = match splits {
                Some(s) => {
                    // A folder's datasets have different split counts (protein 5, most 20):
                    // splits a dataset lacks are skipped with a note, none at all is an error.
                    let n = data.splits.len();
                    let (have, lack): (Vec<usize>, Vec<usize>) = s.iter().partition(|&&k| k < n);
                    if have.is_empty() {
                        return Err(format!(
                            "--splits {}: {} has {n} splits (0 to {})",
                            join(&lack),
                            data.name,
                            n.saturating_sub(1)
                        )
                        .into());
                    }
                    if !lack.is_empty() && root {
                        eprintln!(
                            "{}: has {n} splits; skipping split(s) {}",
                            data.name,
                            join(&lack)
                        );
                    }
                    have
                }
                None => (0..data.splits.len()).collect(),
            };
            let start = Instant::now();
            let mine = &chosen[block(chosen.len(), group, groups)];
            let bar = Mutex::new(
                (show_progress && root)
                    .then(|| ProgressBar::new(data.name.clone(), "splits", mine.len())),
            );
            let done = AtomicUsize::new(0);
            let one_split = |k: usize, ranks: Option<&dyn Communicator>| {
                let scores = run_split(&data, k, spec, hidden, ranks)
                    .map_err(|e| format!("{} split {k}: {e}", data.name))?;
                let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(bar) = bar.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    bar.update(done, None);
                }
                Ok(scores)
            };
            let local: Result<Vec<SplitScores>, String> = match (members_over, pool) {
                // A group's fits talk among its ranks: one split at a time, in order.
                (Some(group), _) => mine.iter().map(|&k| one_split(k, Some(group))).collect(),
                (None, Some(pool)) => {
                    pool.install(|| mine.par_iter().map(|&k| one_split(k, None)).collect())
                }
                (None, None) => mine.par_iter().map(|&k| one_split(k, None)).collect(),
            };
            // One rank per group reports the group's splits.
            let local = if group_root {
                local
            } else {
                local.map(|_| Vec::new())
            };
            drop(bar);
            let scores = gather_scores(comm, local)?;
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
            rows_json.push(json!({
                "dataset": data.name, "splits": scores.len(), "rmse": rmse, "rmse_std": rmse_sd,
                "nll": nll, "nll_std": nll_sd, "coverage_95": cov, "crps": crps, "seconds": wall,
                "published": numbers.map(|(r, rp, n, np)| json!({
                    "method": reference.label(), "rmse": r, "rmse_pm": rp, "nll": n, "nll_pm": np,
                })),
            }));
            if json || !root {
                continue;
            }
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
        if !root {
            return Ok(());
        }
        if json {
            println!(
                "{}",
                json!({"protocol": protocol.name(), "recipe": header, "datasets": rows_json})
            );
            return Ok(());
        }
        println!(
            "(mean ± std over splits, original target scale; {})",
            match reference {
                Reference::DeepEnsembles => "DE = Deep Ensembles, Table 1",
                Reference::Pbp =>
                    "PBP = probabilistic backpropagation, as in Deep Ensembles' Table 1",
            }
        );
        Ok(())
    }
}

/// `0,1,2`.
fn join(splits: &[usize]) -> String {
    splits
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
