//! `cargo xtask`: project automation.
//!
//! `cargo xtask bench [--compare] [--vs-jax] [--history FILE]` builds the benchmarks in release for the
//! native CPU, runs the suite (kernels, the seed log-joint, one Adam step, the seed-workload
//! step on one and two threads, the scale / wide / VI workloads and the scaling curves — drawn to
//! `target/flock-figures/scaling_*.png` —, the exact metrics, and the cold 1,500-step seed run),
//! prints one table and appends a JSON record (commit, date, CPU, SIMD level, threads, one core's
//! measured FMA peak, every figure's median / min / max, and each step workload's floor: its
//! matrix products at that peak on every thread it used) to `bench/history.jsonl`; the table shows
//! every step figure as a multiple of its floor, and records each step workload's multiple of its
//! floor against the FMA peak measured beside it batch by batch (`seed_step.f32.t2.beside`, the
//! workloads bench's `beside` lines). `--compare` prints each figure's change against
//! the last record of the same CPU and SIMD level, also with the two runs' measured FMA peaks
//! taken out (a run on a slower host moves every figure and the peak alike), and flags moves of
//! the latter larger than either run's own spread; `cargo xtask compare OLD NEW` prints the same
//! for two stored records. `--vs-jax` also runs the
//! same workloads written in JAX + optax (`xtask/jax/workloads.py`, in a virtualenv under
//! `target/jax-venv` with the exact versions of `xtask/jax/requirements.txt`, which the record
//! names) and prints JAX / flock ratios, matched by structured figure ids
//! (`seed_step.f32.t2`). `cargo xtask ab OLD NEW` runs two commits' benchmarks alternately and
//! compares them pair by pair (the [`ab`] module). `cargo xtask standings` rewrites the README's
//! table of where flock stands on each machine from the history file (the [`standings`] module;
//! `bench` does so after appending its record). `cargo xtask --help` prints the usage.
//!
//! Modules: [`args`] (the command line), [`mod@bench`] (the suite), [`figures`] (reading the benches'
//! outputs), [`floor`] (each workload's floor), [`history`] (records and their comparison),
//! [`jax`] (the JAX side), [`vs_jax`] (flock and JAX alternately), [`standings`] (the README's table), [`ab`] (two commits alternately), [`mod@fashion`] (Fashion-MNIST).

mod ab;
mod args;
mod bench;
mod fashion;
mod figures;
mod floor;
mod history;
mod jax;
mod source;
mod standings;
mod vs_jax;

use args::{Task, USAGE, parse_args};
use bench::bench;
use fashion::fashion;
use history::compare_records;
use jax::{jax_python, pinned_python};

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Where cargo puts release builds: `$CARGO_TARGET_DIR/release` when set (e.g. `target/v3` for an
/// AVX2 build beside the native one), `target/release` otherwise.
fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || workspace_root().join("target"),
            |d| workspace_root().join(d),
        )
        .join("release")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The benchmark history file, `bench/history.jsonl` (the default of `--history`).
fn history_file() -> PathBuf {
    workspace_root().join("bench/history.jsonl")
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

/// `cargo xtask optax-fixtures`: optax's optional arguments, computed by the pinned optax.
fn optax_fixtures() -> Result<(), String> {
    let (python, _) = jax_python()?;
    let script = workspace_root().join("xtask/jax/optax_args.py");
    let out = workspace_root().join("optim/tests/optax_args");
    let printed = run(
        python.to_str().unwrap_or("python"),
        &[
            script.to_str().unwrap_or("xtask/jax/optax_args.py"),
            out.to_str().unwrap_or("optim/tests/optax_args"),
        ],
    )?;
    print!("{printed}");
    Ok(())
}

/// The fuzz targets of `fuzz/Cargo.toml`.
const FUZZ_TARGETS: [&str; 5] = [
    "table",
    "model_file",
    "training_state",
    "idx",
    "cli_options",
];

/// `cargo xtask fuzz`: each target for `seconds` on its corpus (`fuzz/corpus/TARGET`), built
/// optimised with debug assertions and overflow checks (`-O -a`) under AddressSanitizer.
fn fuzz(seconds: u64) -> Result<(), String> {
    let time = format!("-max_total_time={seconds}");
    for target in FUZZ_TARGETS {
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "-O", "-a", target, "--"])
            .args([time.as_str(), "-max_len=16384", "-rss_limit_mb=4096"])
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo fuzz (cargo install cargo-fuzz): {e}"))?;
        if !status.success() {
            return Err(format!(
                "fuzz target {target} failed; its input is in fuzz/artifacts/{target}"
            ));
        }
    }
    Ok(())
}

/// `cargo xtask wheel`: the portable wheel, built by `python/build_wheel.py` with the pinned
/// maturin of `python/requirements-test.txt` (in `target/py-venv`, made on first use).
fn wheel() -> Result<(), String> {
    let (python, _) = pinned_python("target/py-venv", "python/requirements-test.txt")?;
    let python_text = python.to_str().ok_or("the workspace path is not UTF-8")?;
    let script = workspace_root().join("python/build_wheel.py");
    let built = run(
        python_text,
        &[script.to_str().ok_or("the workspace path is not UTF-8")?],
    )?;
    println!("{}", built.trim());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse_args(&args) {
        Ok(Task::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Task::Bench {
            compare,
            vs_jax,
            history,
        }) => bench(compare, &history, vs_jax),
        Ok(Task::Compare {
            old,
            new,
            simd,
            history,
        }) => compare_records(&history, &old, &new, simd.as_deref()),
        Ok(Task::Fashion {
            epochs,
            train_images,
            skip_sklearn,
        }) => fashion(epochs, train_images, skip_sklearn),
        Ok(Task::Ab {
            old,
            new,
            benches,
            filter,
            pairs,
        }) => ab::ab(&old, &new, &benches, filter.as_deref(), pairs),
        Ok(Task::VsJax { id, pairs }) => vs_jax::vs_jax(&id, pairs),
        Ok(Task::Standings { check }) => {
            standings::standings(&history_file(), &workspace_root().join("README.md"), check)
        }
        Ok(Task::Wheel) => wheel(),
        Ok(Task::OptaxFixtures) => optax_fixtures(),
        Ok(Task::Fuzz { seconds }) => fuzz(seconds),
        Err(e) => {
            eprintln!("xtask: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
