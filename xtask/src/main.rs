//! `cargo xtask`: project automation.
//!
//! `cargo xtask bench [--compare] [--history FILE]` builds the benchmarks in release for the
//! native CPU, runs the suite (kernels, the seed log-joint, one Adam step, the seed-workload
//! step on one and two threads, the scale / wide / VI workloads and the scaling curves — drawn to
//! `target/flock-figures/scaling_*.png` —, the exact metrics, and the cold 1,500-step seed run),
//! prints one table and appends a JSON record (commit, date, CPU, SIMD level, threads, every figure's
//! median / min / max) to `bench/history.jsonl`. `--compare` prints each figure's change against
//! the previous record and flags moves larger than that run's own spread. `--vs-jax` also runs the
//! same workloads written in JAX + optax (`xtask/jax/workloads.py`, in a virtualenv under
//! `target/jax-venv` created on first use) and prints JAX / flock ratios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// One measured figure.
#[derive(Clone, Debug)]
struct Figure {
    name: String,
    unit: &'static str,
    median: f64,
    min: f64,
    max: f64,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the workspace root, returning its stdout (stderr passes through).
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A duration like `196.3 µs`, `1.2 ms`, `20 ns` or `1.5 s`, in microseconds.
fn micros(text: &str) -> Option<f64> {
    let text = text.trim();
    let (value, unit) = text.split_at(text.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let value: f64 = value.trim().parse().ok()?;
    Some(match unit.trim() {
        "ns" => value / 1e3,
        "µs" | "us" => value,
        "ms" => value * 1e3,
        "s" => value * 1e6,
        _ => return None,
    })
}

/// Parses divan's table: rows `├─ name  fastest │ slowest │ median │ mean │ samples │ iters`
/// below a tree prefix whose width gives the nesting; figure names join the path with `/`.
fn parse_divan(prefix: &str, output: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    for line in output.lines() {
        let Some(branch) = line.find("├─").or_else(|| line.find("╰─")) else {
            continue;
        };
        let depth = line[..branch].chars().count();
        let rest = &line[branch + "├─".len()..];
        let cells: Vec<&str> = rest.split('│').collect();
        let head = cells[0].trim();
        let (name, fastest) = match head.find("  ") {
            Some(i) => (head[..i].trim(), head[i..].trim()),
            None => (head, ""),
        };
        while path.last().is_some_and(|(d, _)| *d >= depth) {
            path.pop();
        }
        path.push((depth, name.to_owned()));
        if cells.len() < 3 {
            continue;
        }
        if let (Some(min), Some(max), Some(median)) =
            (micros(fastest), micros(cells[1]), micros(cells[2]))
        {
            let full: Vec<&str> = path.iter().map(|(_, n)| n.as_str()).collect();
            figures.push(Figure {
                name: format!("{prefix}/{}", full.join("/")),
                unit: "µs",
                median,
                min,
                max,
            });
        }
    }
    figures
}

/// The kernels' GFLOP/s table: `shape … 1 thread % peak all threads % peak`.
fn parse_gflops(output: &str) -> (Vec<Figure>, String) {
    let mut figures = Vec::new();
    let mut precision = "";
    let mut simd = String::new();
    for line in output.lines() {
        if let Some(level) = line.split("SIMD level ").nth(1) {
            simd = level.split(' ').next().unwrap_or("").to_owned();
        }
        if line.starts_with("f32 —") {
            precision = "f32";
        } else if line.starts_with("f64 —") {
            precision = "f64";
        }
        if line.starts_with("E=") {
            let numbers: Vec<f64> = line
                .split_whitespace()
                .filter_map(|w| w.trim_end_matches('%').parse().ok())
                .collect();
            if let Some(&one) = numbers.get(numbers.len().saturating_sub(4)) {
                let name = line[..line.find("  ").unwrap_or(line.len())].trim();
                figures.push(Figure {
                    name: format!("kernels/gemm {precision} {name} (1 thread)"),
                    unit: "GFLOP/s",
                    median: one,
                    min: one,
                    max: one,
                });
            }
        }
    }
    (figures, simd)
}

/// The Adam bench's lines: `adam step f32  E=16  P=1153  14.42 µs  0.782 ns per parameter …`.
fn parse_adam(output: &str) -> Vec<Figure> {
    output
        .lines()
        .filter(|l| l.starts_with("adam step"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().rposition(|w| *w == "ns")?;
            let ns: f64 = words.get(at.checked_sub(1)?)?.parse().ok()?;
            let name = l
                .split("  ")
                .filter(|s| !s.trim().is_empty())
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            Some(Figure {
                name: format!("optim/{}", name.trim()),
                unit: "ns/param",
                median: ns,
                min: ns,
                max: ns,
            })
        })
        .collect()
}

/// Lines `bench <name> <median µs> <min µs> <max µs>` (the workloads bench).
fn parse_bench_lines(prefix: &str, output: &str) -> Vec<Figure> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("bench "))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let n = words.len();
            if n < 4 {
                return None;
            }
            let number = |i: usize| words[i].parse::<f64>().ok();
            Some(Figure {
                name: format!("{prefix}/{}", words[..n - 3].join(" ")),
                unit: "µs",
                median: number(n - 3)?,
                min: number(n - 2)?,
                max: number(n - 1)?,
            })
        })
        .collect()
}

/// Wall time of a process, `repeats` times: the cold seed workload from process start.
fn cold(name: &str, program: &Path, args: &[&str], repeats: usize) -> Result<Figure, String> {
    let mut times = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        let status = Command::new(program)
            .args(args)
            .current_dir(workspace_root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !status.status.success() {
            return Err(format!("{} failed", program.display()));
        }
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(Figure {
        name: name.to_owned(),
        unit: "µs",
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
    })
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn record(figures: &[Figure], simd: &str) -> String {
    let commit = run("git", &["rev-parse", "HEAD"]).unwrap_or_default();
    let date = run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!(
        "{{\"commit\":{},\"date\":{},\"cpu\":{},\"simd\":{},\"threads\":{threads},\"figures\":[",
        json_string(commit.trim()),
        json_string(date.trim()),
        json_string(&cpu),
        json_string(simd)
    );
    for (i, f) in figures.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"unit\":{},\"median\":{},\"min\":{},\"max\":{}}}",
            json_string(&f.name),
            json_string(f.unit),
            f.median,
            f.min,
            f.max
        );
    }
    out.push_str("]}");
    out
}

/// `(name, median, min, max)` of every figure in a history record (a tiny reader for the
/// records this file writes).
fn read_record(line: &str) -> Vec<(String, f64, f64, f64)> {
    let mut out = Vec::new();
    for part in line.split("{\"name\":").skip(1) {
        let name = part.split('"').nth(1).unwrap_or("").to_owned();
        let number = |key: &str| -> Option<f64> {
            let after = part.split(&format!("\"{key}\":")).nth(1)?;
            after.split([',', '}']).next()?.parse().ok()
        };
        if let (Some(m), Some(lo), Some(hi)) = (number("median"), number("min"), number("max")) {
            out.push((name, m, lo, hi));
        }
    }
    out
}

/// The Python packages `xtask/jax/workloads.py` imports (pip names and module names).
const JAX_PACKAGES: [(&str, &str); 4] = [
    ("jax", "jax"),
    ("optax", "optax"),
    ("equinox", "equinox"),
    ("numpyro", "numpyro"),
];

/// The Python environment for `--vs-jax`: `target/jax-venv`, created on first use; packages
/// missing from an older environment are added.
fn jax_python() -> Result<PathBuf, String> {
    let venv = workspace_root().join("target/jax-venv");
    let python = venv.join("bin/python");
    let start = Instant::now();
    if !python.exists() {
        eprintln!(
            "xtask: creating {} with jax, optax, equinox and numpyro from the package registry \
             (once; a minute or two)",
            venv.display()
        );
        run(
            "python3",
            &["-m", "venv", venv.to_str().unwrap_or("target/jax-venv")],
        )?;
    }
    let python_str = python.to_str().unwrap_or("python");
    let missing: Vec<&str> = JAX_PACKAGES
        .iter()
        .filter(|(_, module)| run(python_str, &["-c", &format!("import {module}")]).is_err())
        .map(|(package, _)| *package)
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: installing {} into {}",
            missing.join(", "),
            venv.display()
        );
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend(&missing);
        run(python_str, &args)?;
        eprintln!(
            "xtask: environment ready in {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(python)
}

/// JAX's figures (`jax <name> <µs>` lines of `xtask/jax/workloads.py`) for both precisions.
fn jax_figures() -> Result<Vec<(String, f64)>, String> {
    let python = jax_python()?;
    let script = workspace_root().join("xtask/jax/workloads.py");
    let mut out = Vec::new();
    for precision in ["f32", "f64"] {
        let text = run(
            python.to_str().unwrap_or("python"),
            &[
                script.to_str().unwrap_or("xtask/jax/workloads.py"),
                precision,
            ],
        )?;
        for line in text.lines().filter_map(|l| l.strip_prefix("jax ")) {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            if let Some(value) = words.pop().and_then(|v| v.parse::<f64>().ok()) {
                out.push((words.join(" "), value));
            }
        }
    }
    Ok(out)
}

/// The side-by-side table: for each workload, flock's figure, JAX's, and JAX / flock.
fn print_vs_jax(figures: &[Figure], jax: &[(String, f64)]) {
    let flock = |name: &str| figures.iter().find(|f| f.name == name).map(|f| f.median);
    let jax_of = |name: &str| jax.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let rows = [
        (
            "seed step f32, flock 1 thread",
            "runner/seed_step/f32/1",
            "seed step f32",
        ),
        (
            "seed step f32, flock 2 threads",
            "runner/seed_step/f32/2",
            "seed step f32",
        ),
        (
            "seed step f64, flock 1 thread",
            "runner/seed_step/f64/1",
            "seed step f64",
        ),
        (
            "seed step f64, flock 2 threads",
            "runner/seed_step/f64/2",
            "seed step f64",
        ),
        (
            "seed cold f64, flock on 2 threads",
            "runner/seed workload cold (process start to result, 1,500 steps f64, all cores)",
            "seed workload cold f64",
        ),
        (
            "seed cold f32, flock on 2 threads",
            "runner/seed workload cold (process start to result, 1,500 steps f32, all cores)",
            "seed workload cold f32",
        ),
        (
            "scale step f32, flock 2 threads",
            "runner/scale workload E=64 N=4096 B=256 1-64-64-1 f32 2 thread(s)",
            "scale step f32",
        ),
        (
            "scale step f64, flock 2 threads",
            "runner/scale workload E=64 N=4096 B=256 1-64-64-1 f64 2 thread(s)",
            "scale step f64",
        ),
        (
            "wide step f32, flock 1 thread",
            "runner/wide workload E=16 N=80 hidden 128 f32",
            "wide step f32",
        ),
        (
            "wide step f64, flock 1 thread",
            "runner/wide workload E=16 N=80 hidden 128 f64",
            "wide step f64",
        ),
        (
            "wide step f32, flock 2 threads",
            "runner/wide workload E=16 N=80 hidden 128 f32 2 threads",
            "wide step f32",
        ),
        (
            "wide step f64, flock 2 threads",
            "runner/wide workload E=16 N=80 hidden 128 f64 2 threads",
            "wide step f64",
        ),
        (
            "VI step f32, flock 1 thread",
            "runner/VI step seed model E=16 1 particle f32",
            "VI step f32",
        ),
        (
            "VI step f32, flock 2 threads",
            "runner/VI step seed model E=16 1 particle f32 2 threads",
            "VI step f32",
        ),
        (
            "VI step f64, flock 1 thread",
            "runner/VI step seed model E=16 1 particle f64",
            "VI step f64",
        ),
        (
            "VI step f64, flock 2 threads",
            "runner/VI step seed model E=16 1 particle f64 2 threads",
            "VI step f64",
        ),
    ];
    println!(
        "\nside by side with JAX (lax.scan over steps, vmap over members; JAX uses every core)\n"
    );
    println!(
        "{:<44} {:>14} {:>14} {:>12}",
        "workload", "flock µs", "JAX µs", "JAX / flock"
    );
    for (label, flock_name, jax_name) in rows {
        if let (Some(f), Some(j)) = (flock(flock_name), jax_of(jax_name)) {
            println!("{label:<44} {f:>14.1} {j:>14.1} {:>11.2}×", j / f);
        }
    }
}

fn bench(compare: bool, history: &Path, vs_jax: bool) -> Result<(), String> {
    let mut figures = Vec::new();
    let gflops = run(
        "cargo",
        &["bench", "-p", "flock-kernels", "--bench", "gflops"],
    )?;
    let (kernel_figures, simd) = parse_gflops(&gflops);
    figures.extend(kernel_figures);
    let log_joint = run(
        "cargo",
        &["bench", "-p", "flock-autograd", "--bench", "log_joint"],
    )?;
    figures.extend(parse_divan("autograd", &log_joint));
    let adam = run("cargo", &["bench", "-p", "flock-optim", "--bench", "adam"])?;
    figures.extend(parse_adam(&adam));
    let step = run(
        "cargo",
        &["bench", "-p", "flock-runner", "--bench", "seed_step"],
    )?;
    figures.extend(parse_divan("runner", &step));
    let workloads = run(
        "cargo",
        &["bench", "-p", "flock-runner", "--bench", "workloads"],
    )?;
    figures.extend(parse_bench_lines("runner", &workloads));
    let scores = run(
        "cargo",
        &["bench", "-p", "flock-metrics", "--bench", "scores"],
    )?;
    figures.extend(parse_divan("metrics", &scores));
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "flock-runner",
            "--example",
            "seed_cold",
        ],
    )?;
    // The cold seed workload: process start → 1,500 `EnsembleMAP.run` steps → printed result,
    // members on every core (JAX's XLA also uses every core).
    let example = workspace_root().join("target/release/examples/seed_cold");
    for precision in ["f64", "f32"] {
        figures.push(cold(
            &format!(
                "runner/seed workload cold (process start to result, 1,500 steps {precision}, all cores)"
            ),
            &example,
            &[precision],
            7,
        )?);
    }

    let previous: Vec<(String, f64, f64, f64)> = std::fs::read_to_string(history)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(read_record)
        })
        .unwrap_or_default();
    println!("flock benchmark suite — SIMD level {simd}\n");
    println!(
        "{:<72} {:>12} {:>12} {:>12}{}",
        "figure",
        "median",
        "min",
        "max",
        if compare { "   vs previous" } else { "" }
    );
    for f in &figures {
        let mut line = format!(
            "{:<72} {:>9.2} {:<2} {:>12.2} {:>12.2}",
            f.name, f.median, f.unit, f.min, f.max
        );
        if compare {
            if let Some((_, m, lo, hi)) = previous.iter().find(|(n, ..)| *n == f.name) {
                let change = (f.median - m) / m;
                let noise = ((hi - lo) / m).max((f.max - f.min) / f.median).max(0.03);
                let flag = if change.abs() > noise {
                    "  ← beyond noise"
                } else {
                    ""
                };
                let _ = write!(line, "   {:+6.1} %{flag}", 100.0 * change);
            } else {
                line.push_str("   (new)");
            }
        }
        println!("{line}");
    }
    if let Some(dir) = history.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let mut text = std::fs::read_to_string(history).unwrap_or_default();
    if vs_jax {
        let jax = jax_figures()?;
        print_vs_jax(&figures, &jax);
        figures.extend(jax.iter().map(|(name, value)| Figure {
            name: format!("jax/{name}"),
            unit: "µs",
            median: *value,
            min: *value,
            max: *value,
        }));
    }
    text.push_str(&record(&figures, &simd));
    text.push('\n');
    std::fs::write(history, text).map_err(|e| format!("{}: {e}", history.display()))?;
    println!("\nrecord appended to {}", history.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => {
            let compare = args.iter().any(|a| a == "--compare");
            let history = args
                .iter()
                .position(|a| a == "--history")
                .and_then(|i| args.get(i + 1))
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("bench/history.jsonl"));
            let vs_jax = args.iter().any(|a| a == "--vs-jax");
            bench(compare, &history, vs_jax)
        }
        _ => Err("usage: cargo xtask bench [--compare] [--vs-jax] [--history FILE]".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let f = parse_bench_lines(
            "runner",
            "bench wide workload f32 2044.9 2038.1 2088.2\nnoise\n",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "runner/wide workload f32");
        assert_eq!((f[0].median, f[0].min, f[0].max), (2044.9, 2038.1, 2088.2));
    }

    #[test]
    fn parses_adam_lines() {
        let f = parse_adam(
            "adam step f32  E=16  P=1153      14.42 µs  0.782 ns per parameter per member\n",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].median, 0.782);
        assert_eq!(f[0].name, "optim/adam step f32 E=16 P=1153");
    }

    #[test]
    fn parses_divan_rows_and_units() {
        let out = concat!(
            "seed_step     fastest       │ slowest       │ median        │ mean          │ samples │ iters\n",
            "╰─ seed_step                │               │               │               │         │\n",
            "   ├─ f32                   │               │               │               │         │\n",
            "   │  ├─ 1    196.3 µs      │ 266 µs        │ 223.8 µs      │ 226.6 µs      │ 60      │ 1200\n",
            "   │  ╰─ 2    1.2 ms        │ 2 ms          │ 1.5 ms        │ 1.6 ms        │ 60      │ 1200\n",
            "   ╰─ f64                   │               │               │               │         │\n",
            "      ╰─ 1    459.1 µs      │ 507.8 µs      │ 462.7 µs      │ 470 µs        │ 60      │ 1200\n",
        );
        let f = parse_divan("runner", out);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, "runner/seed_step/f32/1");
        assert_eq!((f[0].min, f[0].median, f[0].max), (196.3, 223.8, 266.0));
        assert_eq!(f[1].median, 1500.0);
        assert_eq!(f[2].name, "runner/seed_step/f64/1");
        assert_eq!(micros("20 ns"), Some(0.02));
    }

    #[test]
    fn records_round_trip() {
        let figures = vec![Figure {
            name: "a/b \"c\"".into(),
            unit: "µs",
            median: 2.5,
            min: 2.0,
            max: 3.0,
        }];
        let line = record(&figures, "avx512f+fma");
        let back = read_record(&line);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].1, back[0].2, back[0].3), (2.5, 2.0, 3.0));
    }
}
