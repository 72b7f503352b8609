//! `cargo xtask ab OLD NEW`: two commits' benchmarks run alternately on one machine, compared
//! pair by pair.
//!
//! On a shared machine a whole run can land on a host several percent — sometimes twice —
//! slower than the run before, so one record per commit cannot show a change of a few percent.
//! What can: building both commits' bench binaries, then running them in pairs, alternating
//! which goes first (`A B`, `B A`, `A B`, …), and reading each figure as the median over the
//! pairs of its `B / A` ratio — a slow spell moves both runs of a pair alike, and spoils only
//! the pairs it straddles. A change is called only when a two-sided sign test puts the pairs'
//! split (how many had `B` faster, how many slower) below a 5 % chance: with ten pairs, nine
//! one way. The test is per figure: of twenty figures that did not change, about one is called
//! by chance (a null run of the `gflops` bench's eighteen 32→32 figures called one). (Quartiles
//! of the ratios on one side of 1 are not enough: two builds of the same
//! commit, ten pairs of the seed step on an Intel Xeon whose samples spread 0.64–1.73 between
//! pairs, had the two-thread f32 figure's quartiles at 0.875–0.998; the sign test: 7 to 3,
//! p = 0.34.) This is how the speed figures of the README and the closing notes are measured.
//!
//! Each commit is checked out in a git worktree under `<target>/ab/worktrees` (reused by later
//! runs; `git worktree prune` after deleting them) and built into `<target>/ab/target/<commit>`
//! with the environment's `RUSTFLAGS` — so `RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=target/v3
//! cargo xtask ab OLD NEW` compares the AVX2 builds. The binaries are copied to
//! `<target>/ab/bin/<bench>-<commit>`. The `gflops` bench's figures are rates and shares of the
//! peak: their ratio is taken the other way (`A / B`), so that below 1 `B` is faster for every
//! figure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::figures::{Figure, parse_bench_lines, parse_beside_lines, parse_divan, parse_gflops};
use crate::workspace_root;

/// A benchmark `ab` can run: its name, its package and how its output is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bench {
    pub name: &'static str,
    package: &'static str,
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// divan's table (`fastest │ slowest │ median …`).
    Divan,
    /// Lines `bench <id> <median µs> <min µs> <max µs> <name…>`.
    BenchLines,
    /// The `gflops` table: rates (GFLOP/s, values/ns) and shares of the peak.
    Gflops,
}

/// The benchmarks `ab` runs, by name.
pub const BENCHES: [Bench; 5] = [
    Bench {
        name: "seed_step",
        package: "flock-runner",
        format: Format::Divan,
    },
    Bench {
        name: "workloads",
        package: "flock-runner",
        format: Format::BenchLines,
    },
    Bench {
        name: "kernels",
        package: "flock-kernels",
        format: Format::Divan,
    },
    Bench {
        name: "log_joint",
        package: "flock-autograd",
        format: Format::Divan,
    },
    Bench {
        name: "gflops",
        package: "flock-kernels",
        format: Format::Gflops,
    },
];

/// Whether a larger value of a figure in `unit` is the faster one (a rate or a share of the
/// peak, not a time).
fn higher_is_faster(unit: &str) -> bool {
    unit.ends_with("/s") || unit.ends_with("/ns") || unit == "% of peak"
}

/// The bench called `name`, or a message listing the known ones.
pub fn bench_named(name: &str) -> Result<Bench, String> {
    BENCHES
        .iter()
        .copied()
        .find(|b| b.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
            format!("unknown bench {name:?} for ab: one of {}", names.join(", "))
        })
}

/// One figure of one run: its fastest sample and its median (in the figure's unit; a rate's
/// fastest is its largest).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    fastest: f64,
    median: f64,
}

/// A figure over all pairs: its unit and `(A, B)` per pair, in pair order.
#[derive(Debug, PartialEq)]
struct Series {
    unit: &'static str,
    pairs: Vec<(Sample, Sample)>,
}

/// The median and quartiles of some ratios (sorted in place).
pub(crate) fn quartiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        // Linear interpolation between the closest ranks.
        let pos = q * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
    };
    (at(0.25), at(0.5), at(0.75))
}

/// The two-sided sign test of the pairs' ratios against "no change": `(pairs with B faster,
/// pairs with B slower, p)`, where `p` is the probability of a split at least this uneven if
/// each pair were a fair coin (ties left out).
fn sign_test(ratios: &[f64]) -> (usize, usize, f64) {
    let faster = ratios.iter().filter(|&&r| r < 1.0).count();
    let slower = ratios.iter().filter(|&&r| r > 1.0).count();
    let n = faster + slower;
    // P(X ≤ k) for X ~ Binomial(n, 1/2).
    let at_most = |k: usize| {
        let mut term = 0.5f64.powi(n as i32); // C(n, 0) / 2ⁿ
        let mut sum = term;
        for i in 1..=k {
            term *= (n + 1 - i) as f64 / i as f64;
            sum += term;
        }
        sum
    };
    let p = (2.0 * at_most(faster.min(slower))).min(1.0);
    (faster, slower, p)
}

/// What the pairs say about `B` against `A`: faster or slower when the sign test puts the
/// split of the pairs below a 5 % chance, otherwise no change beyond the noise.
fn verdict(ratios: &[f64]) -> String {
    let (faster, slower, p) = sign_test(ratios);
    let word = if p >= 0.05 {
        "within noise"
    } else if faster > slower {
        "B faster"
    } else {
        "B slower"
    };
    format!("{word} ({faster} faster / {slower} slower, p = {p:.3})")
}

impl Series {
    /// `B`'s time over `A`'s from two values of the figure: `b / a` for a time, `a / b` for a
    /// rate — below 1, `B` is faster either way.
    fn time_ratio(&self, a: f64, b: f64) -> f64 {
        if higher_is_faster(self.unit) {
            a / b
        } else {
            b / a
        }
    }

    /// The pairs' time ratios ([`Series::time_ratio`]) of their fastest samples, in pair order.
    fn fastest_ratios(&self) -> Vec<f64> {
        self.pairs
            .iter()
            .map(|(a, b)| self.time_ratio(a.fastest, b.fastest))
            .collect()
    }

    /// Each side's fastest sample over all its runs: `(A, B)`.
    fn best(&self) -> (f64, f64) {
        let pick = |side: fn(&(Sample, Sample)) -> f64| {
            let values = self.pairs.iter().map(side);
            if higher_is_faster(self.unit) {
                values.fold(f64::NEG_INFINITY, f64::max)
            } else {
                values.fold(f64::INFINITY, f64::min)
            }
        };
        (pick(|p| p.0.fastest), pick(|p| p.1.fastest))
    }

    /// `(median, lower quartile, upper quartile)` of the pairs' time ratios of the fastest
    /// samples, and the median of their ratios of medians.
    fn ratios(&self) -> ((f64, f64, f64), f64) {
        let mut fastest = self.fastest_ratios();
        let mut medians: Vec<f64> = self
            .pairs
            .iter()
            .map(|(a, b)| self.time_ratio(a.median, b.median))
            .collect();
        let (lo, mid, hi) = quartiles(&mut fastest);
        ((mid, lo, hi), quartiles(&mut medians).1)
    }
}

/// The commit a revision names, in full.
fn commit_of(revision: &str) -> Result<String, String> {
    let out = Command::new("git")
        .args(["rev-parse", "--verify", &format!("{revision}^{{commit}}")])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!("{revision:?} names no commit of this repository"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The target directory of `ab`'s builds: `<CARGO_TARGET_DIR or target>/ab`.
fn ab_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |d| root.join(d))
        .join("ab")
}

/// A worktree of `commit` (made once, reused).
fn worktree(commit: &str) -> Result<PathBuf, String> {
    let dir = ab_dir().join("worktrees").join(&commit[..12]);
    if !dir.join("Cargo.toml").exists() {
        let status = Command::new("git")
            .args(["worktree", "add", "--detach", "--force"])
            .arg(&dir)
            .arg(commit)
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run git worktree: {e}"))?;
        if !status.success() {
            return Err(format!(
                "git worktree add {} {commit} failed",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

/// The executables cargo reports building (`--message-format=json`'s `"executable"` fields).
fn executables(cargo_json: &str) -> Vec<PathBuf> {
    cargo_json
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let len = l[start..].find('"')?;
            Some(PathBuf::from(&l[start..start + len]))
        })
        .collect()
}

/// The executables of bench `name` among those cargo reports building (the package's other
/// targets, e.g. a binary, may be built too).
pub(crate) fn bench_executables(cargo_json: &str, name: &str) -> Vec<PathBuf> {
    executables(cargo_json)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
        })
        .collect()
}

/// Builds `bench` at `commit` and copies its binary to `<ab>/bin/<bench>-<commit>`.
fn build(bench: Bench, commit: &str) -> Result<PathBuf, String> {
    let dir = worktree(commit)?;
    eprintln!("xtask: building {} at {}", bench.name, &commit[..12]);
    let out = Command::new("cargo")
        .args(["bench", "--no-run", "--message-format=json", "-p"])
        .args([bench.package, "--bench", bench.name])
        // A target directory per commit: cargo takes a workspace member's build in another
        // checkout of the same target directory for fresh (its hash leaves the path out).
        .env(
            "CARGO_TARGET_DIR",
            ab_dir().join("target").join(&commit[..12]),
        )
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {} at {commit} failed:\n{}",
            bench.name,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let built = bench_executables(&String::from_utf8_lossy(&out.stdout), bench.name);
    let [binary] = &built[..] else {
        return Err(format!(
            "building {} at {commit} gave {} executables, not one",
            bench.name,
            built.len()
        ));
    };
    let bin_dir = ab_dir().join("bin");
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?;
    let copy = bin_dir.join(format!("{}-{}", bench.name, &commit[..12]));
    std::fs::copy(binary, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    Ok(copy)
}

/// One run of a bench binary: its figures by name.
fn run_once(bench: Bench, binary: &Path, filter: Option<&str>) -> Result<Vec<Figure>, String> {
    let mut command = Command::new(binary);
    command.arg("--bench");
    if let Some(filter) = filter {
        command.arg(filter);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed:\n{}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(match bench.format {
        Format::Divan => parse_divan(bench.name, &text),
        Format::BenchLines => {
            let mut figures = parse_bench_lines(bench.name, &text);
            let beside = parse_beside_lines(&text);
            figures.extend(beside.iter().map(|b| b.figure(bench.name)));
            figures
        }
        Format::Gflops => parse_gflops(&text).figures,
    })
}

/// `(name, series)` in the order figures first appeared.
type Table = Vec<(String, Series)>;

/// Adds one pair's runs to `table` (figures present in both runs only).
fn add_pair(table: &mut Table, a: &[Figure], b: &[Figure]) {
    for fa in a {
        let Some(fb) = b.iter().find(|f| f.name == fa.name) else {
            continue;
        };
        let sample = |f: &Figure| Sample {
            fastest: if higher_is_faster(f.unit) {
                f.max
            } else {
                f.min
            },
            median: f.median,
        };
        let pair = (sample(fa), sample(fb));
        match table.iter_mut().find(|(name, _)| *name == fa.name) {
            Some((_, series)) => series.pairs.push(pair),
            None => table.push((
                fa.name.clone(),
                Series {
                    unit: fa.unit,
                    pairs: vec![pair],
                },
            )),
        }
    }
}

/// `v` to four significant digits, and at least one decimal (a step's time in GFLOP of the peak
/// beside it is ≈ 0.02).
fn four_digits(v: f64) -> String {
    let decimals = if v == 0.0 || !v.is_finite() {
        1
    } else {
        (3 - v.abs().log10().floor() as i32).clamp(1, 8) as usize
    };
    format!("{v:.decimals$}")
}

/// The comparison table: per figure, each side's fastest sample over all its runs, the pairs'
/// time ratio `B / A` (a rate's `A / B`: below 1, `B` is faster) of fastest samples (median and
/// quartiles) and of medians, the verdict, and every pair's ratio.
fn report(table: &Table, old: &str, new: &str) -> String {
    let width = table
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "A = {old}, B = {new}; time ratio B / A per pair (a rate's A / B: below 1, B is faster; A \
         and B alternate which runs first); a sign test at 5 % per figure, so of twenty unchanged \
         figures about one is called by chance\n\
         {:<width$} {:>16} {:>16} {:>22} {:>9}  verdict\n",
        "figure", "A fastest", "B fastest", "fastest B/A [quartiles]", "median"
    );
    for (name, series) in table {
        let (a, b) = series.best();
        let value = |v: f64| format!("{} {}", four_digits(v), series.unit);
        let ((mid, lo, hi), medians) = series.ratios();
        out.push_str(&format!(
            "{name:<width$} {:>16} {:>16} {mid:>8.3} [{lo:.3}–{hi:.3}] {medians:>9.3}  {}\n",
            value(a),
            value(b),
            verdict(&series.fastest_ratios()),
        ));
        let each: Vec<String> = series
            .fastest_ratios()
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect();
        out.push_str(&format!("    fastest B/A by pair: {}\n", each.join(" ")));
    }
    out
}

/// `cargo xtask ab OLD NEW`: builds each bench at both commits, runs `pairs` alternated pairs
/// and prints the comparison.
pub fn ab(
    old: &str,
    new: &str,
    benches: &[Bench],
    filter: Option<&str>,
    pairs: usize,
) -> Result<(), String> {
    let (a, b) = (commit_of(old)?, commit_of(new)?);
    let mut binaries = Vec::new();
    for &bench in benches {
        binaries.push((bench, build(bench, &a)?, build(bench, &b)?));
    }
    for (bench, bin_a, bin_b) in &binaries {
        let mut table = Table::new();
        for pair in 0..pairs {
            eprintln!("xtask: {} pair {} of {pairs}", bench.name, pair + 1);
            let (first, second) = if pair % 2 == 0 {
                (bin_a, bin_b)
            } else {
                (bin_b, bin_a)
            };
            let first = run_once(*bench, first, filter)?;
            let second = run_once(*bench, second, filter)?;
            let (fa, fb) = if pair % 2 == 0 {
                (first, second)
            } else {
                (second, first)
            };
            add_pair(&mut table, &fa, &fb);
        }
        if table.is_empty() {
            return Err(format!("{}: no figure matched the filter", bench.name));
        }
        println!("{}", report(&table, old, new));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(name: &str, min: f64, median: f64) -> Figure {
        Figure {
            id: None,
            name: name.to_owned(),
            unit: "µs",
            median,
            min,
            max: median * 1.2,
        }
    }

    #[test]
    fn quartiles_interpolate_between_ranks() {
        let mut v = vec![1.0, 0.9, 1.2, 1.1];
        assert_eq!(quartiles(&mut v), (0.975, 1.05, 1.125));
        assert_eq!(quartiles(&mut [2.0]), (2.0, 2.0, 2.0));
    }

    #[test]
    fn the_sign_test_counts_pairs() {
        // 8 of 8 one way: 2 / 2⁸.
        let (f, s, p) = sign_test(&[0.9; 8]);
        assert_eq!((f, s), (8, 0));
        assert!((p - 2.0 / 256.0).abs() < 1e-12);
        // 7 of 8: 2·(1 + 8) / 2⁸; ties are left out.
        let (f, s, p) = sign_test(&[1.1, 1.2, 1.05, 1.3, 0.99, 1.01, 1.02, 1.04, 1.0]);
        assert_eq!((f, s), (1, 7));
        assert!((p - 18.0 / 256.0).abs() < 1e-12);
        assert!(verdict(&[0.97; 6]).starts_with("B faster (6 faster / 0 slower, p = 0.031)"));
        assert!(verdict(&[1.03; 6]).starts_with("B slower"));
        assert!(verdict(&[0.9, 1.1, 0.95, 1.05]).starts_with("within noise"));
        assert!(
            verdict(&[0.9; 4]).starts_with("within noise"),
            "4 pairs cannot tell"
        );
    }

    #[test]
    fn pairs_are_matched_by_name() {
        let mut table = Table::new();
        add_pair(
            &mut table,
            &[figure("x", 10.0, 11.0), figure("only a", 1.0, 1.0)],
            &[figure("x", 9.0, 11.0)],
        );
        add_pair(
            &mut table,
            &[figure("x", 10.0, 12.0)],
            &[figure("x", 11.0, 12.0)],
        );
        assert_eq!(table.len(), 1);
        let ((mid, lo, hi), medians) = table[0].1.ratios();
        assert!(
            (mid - 1.0).abs() < 1e-12 && (lo - 0.95).abs() < 1e-12 && (hi - 1.05).abs() < 1e-12
        );
        assert_eq!(medians, 1.0);
        let text = report(&table, "old", "new");
        assert!(text.contains("within noise (1 faster / 1 slower"), "{text}");
        assert!(text.contains("by pair: 0.900 1.100"), "{text}");
    }

    #[test]
    fn a_rate_is_faster_when_larger() {
        let rate = |name: &str, v: f64| Figure {
            id: None,
            name: name.to_owned(),
            unit: "GFLOP/s",
            median: v,
            min: v,
            max: v,
        };
        let mut table = Table::new();
        for _ in 0..6 {
            add_pair(&mut table, &[rate("gemm", 80.0)], &[rate("gemm", 100.0)]);
        }
        assert_eq!(table[0].1.fastest_ratios(), vec![0.8; 6]);
        assert_eq!(table[0].1.best(), (80.0, 100.0));
        let text = report(&table, "old", "new");
        assert!(text.contains("B faster (6 faster / 0 slower"), "{text}");
        assert!(text.contains("100.0 GFLOP/s"), "{text}");
        assert_eq!(four_digits(0.016_54), "0.01654");
        assert_eq!(four_digits(204.33), "204.3");
        assert_eq!(four_digits(1.5), "1.500");
    }

    #[test]
    fn finds_the_executable_in_cargo_messages() {
        let json = concat!(
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"flock_kernels\"},\"executable\":null}\n",
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"seed_step\"},",
            "\"executable\":\"/w/target/ab/release/deps/seed_step-0123\",\"fresh\":false}\n",
            "{\"reason\":\"build-finished\",\"success\":true}\n",
        );
        assert_eq!(
            executables(json),
            vec![PathBuf::from("/w/target/ab/release/deps/seed_step-0123")]
        );
    }

    #[test]
    fn benches_are_known_by_name() {
        assert_eq!(bench_named("seed_step").unwrap().package, "flock-runner");
        assert!(
            bench_named("gflop")
                .unwrap_err()
                .contains("seed_step, workloads")
        );
    }
}
