//! `flock`: deep ensembles from the command line.
//!
//! - `flock demo`: the seed tutorial — three 16-member fits of the sinc problem, the table, the
//!   figure.
//! - `flock uci DIR`: the UCI regression benchmark protocol on a dataset folder (or a folder of
//!   them), beside the published Deep Ensembles numbers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use rayon::prelude::*;

use flock_runner::patterns::{Init, tutorial};
use flock_runner::seed::SeedData;
use flock_runner::uci::{Dataset, SplitScores, UciConfig, published, run_split};

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
        /// Epochs over the training rows.
        #[arg(long, default_value_t = 40)]
        epochs: usize,
        /// Examples per step.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 1e-2)]
        lr: f64,
        /// Hidden units (default: the dataset's n_hidden.txt, else 50).
        #[arg(long)]
        hidden: Option<usize>,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { fixture, out, seed } => demo(fixture, &out, seed),
        Command::Uci {
            dir,
            splits,
            datasets,
            members,
            epochs,
            batch_size,
            lr,
            hidden,
            seed,
        } => {
            let config = UciConfig {
                members,
                hidden,
                epochs,
                batch_size,
                learning_rate: lr,
                seed,
            };
            uci(&dir, splits.as_deref(), datasets.as_deref(), &config)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flock: {e}");
            ExitCode::FAILURE
        }
    }
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
) -> Result<(), Box<dyn std::error::Error>> {
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
    println!(
        "{:<28} {:>6} {:>17} {:>17} {:>6} {:>7} {:>8}   {:>15} {:>15}",
        "dataset", "splits", "RMSE", "NLL", "cov95", "CRPS", "time", "DE RMSE", "DE NLL"
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
        let scores: Vec<SplitScores> = chosen
            .par_iter()
            .map(|&k| {
                run_split(&data, k, config).map_err(|e| format!("{} split {k}: {e}", data.name))
            })
            .collect::<Result<_, _>>()?;
        let wall = start.elapsed().as_secs_f64();
        let pick = |f: fn(&SplitScores) -> f64| scores.iter().map(f).collect::<Vec<_>>();
        let (rmse, rmse_sd) = mean_std(&pick(|s| s.rmse));
        let (nll, nll_sd) = mean_std(&pick(|s| s.nll));
        let (cov, _) = mean_std(&pick(|s| s.coverage_95));
        let (crps, _) = mean_std(&pick(|s| s.crps));
        let reference = dir
            .parent()
            .and_then(|p| published(p, &data.name))
            .or_else(|| published(dir, &data.name));
        let (de_rmse, de_nll) = match reference {
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
    println!("(mean ± std over splits, original target scale; DE = Deep Ensembles, Table 1)");
    Ok(())
}
