//! `cargo xtask vs-jax ID`: one step workload in flock and in JAX, in alternated pairs.
//!
//! `bench --vs-jax` runs JAX's workloads minutes after flock's, and a shared host's speed can
//! move between the two (on the model-207 Xeon the same step ran 1.8× slower from one minute to
//! the next): its JAX / flock ratios are of one run, not of the same seconds. Here the two sides
//! take turns — flock's `workloads` bench filtered to the figure, then JAX's `workloads.py
//! --only` that workload, then the other way round — and each pair gives its own ratio.

use std::path::Path;

use crate::ab::{bench_executables, quartiles};
use crate::figures::parse_bench_lines;
use crate::jax::jax_python;
use crate::{run, workspace_root};

/// JAX's figure id for flock's `id`: `wide_step.f64.t2` → (`wide_step`, `wide_step.f64`) — the
/// workload `workloads.py --only` takes and the id it prints (JAX uses every core whatever
/// flock's thread count). flock's figures of the same steps taken in training runs
/// (`wide_run.f64.t2`) go with JAX's step (`wide_step`), which is timed in `lax.scan` runs.
///
/// # Errors
/// An id that is not `workload.precision.tN` with a precision of f32 or f64.
pub(crate) fn jax_id(id: &str) -> Result<(String, String), String> {
    match id.split('.').collect::<Vec<_>>()[..] {
        [workload, precision @ ("f32" | "f64"), threads] if threads.starts_with('t') => {
            let workload = match workload.strip_suffix("_run") {
                Some(name) => format!("{name}_step"),
                None => workload.to_owned(),
            };
            let figure = format!("{workload}.{precision}");
            Ok((workload, figure))
        }
        _ => Err(format!(
            "vs-jax needs a step figure's id such as wide_step.f64.t2, not {id:?}"
        )),
    }
}

/// The workloads bench built as the environment says (`RUSTFLAGS`, `CARGO_TARGET_DIR`).
fn workloads_binary() -> Result<String, String> {
    let json = run(
        "cargo",
        &[
            "bench",
            "--no-run",
            "--message-format=json",
            "-p",
            "flock-runner",
            "--bench",
            "workloads",
        ],
    )?;
    let built = bench_executables(&json, "workloads");
    let binary = built
        .first()
        .ok_or_else(|| "cargo built no workloads bench".to_owned())?;
    Ok(text(binary)?.to_owned())
}

/// A path as the `&str` [`run`] takes.
fn text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// The value of the line `jax <id> <µs>` in `workloads.py`'s output.
pub(crate) fn jax_value(text: &str, id: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("jax "))
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, value] if name == id => value.parse().ok(),
            _ => None,
        })
}

/// The report of `(flock µs, JAX µs)` per pair: each pair's JAX / flock, their median and
/// quartiles, and how many pairs reach `target`.
pub(crate) fn pairs_report(id: &str, pairs: &[(f64, f64)], target: f64) -> String {
    let mut ratios: Vec<f64> = pairs.iter().map(|(flock, jax)| jax / flock).collect();
    let mut out = format!("{id}: JAX / flock in {} alternated pairs\n", pairs.len());
    for (i, ((flock, jax), ratio)) in pairs.iter().zip(&ratios).enumerate() {
        out.push_str(&format!(
            "  pair {:>2}: flock {flock:>10.1} µs, JAX {jax:>10.1} µs, {ratio:.2}×\n",
            i + 1
        ));
    }
    let at_target = ratios.iter().filter(|&&r| r >= target).count();
    let (q1, median, q3) = quartiles(&mut ratios);
    out.push_str(&format!(
        "  median {median:.2}× (quartiles {q1:.2}–{q3:.2}×); {at_target} of {} pairs at {target}× \
         or more",
        pairs.len()
    ));
    out
}

/// `cargo xtask vs-jax ID [--pairs N]`: flock's figure `id` and JAX's same workload, `pairs`
/// times each in turns (flock first in odd pairs), and the pairs' JAX / flock ratios.
///
/// # Errors
/// A bad id, a failed build or run, or a figure missing from either side's output.
pub(crate) fn vs_jax(id: &str, pairs: usize) -> Result<(), String> {
    let (workload, jax_figure) = jax_id(id)?;
    let precision = &jax_figure[workload.len() + 1..];
    let binary = workloads_binary()?;
    let (python, _) = jax_python()?;
    let script = workspace_root().join("xtask/jax/workloads.py");
    let flock = || -> Result<f64, String> {
        let out = run(&binary, &["--bench", id])?;
        parse_bench_lines("runner", &out)
            .iter()
            .find(|f| f.id.as_deref() == Some(id))
            .map(|f| f.median)
            .ok_or_else(|| format!("the workloads bench printed no figure {id}"))
    };
    let jax = || -> Result<f64, String> {
        let out = run(
            text(&python)?,
            &[text(&script)?, precision, "--only", &workload],
        )?;
        jax_value(&out, &jax_figure).ok_or_else(|| format!("workloads.py printed no {jax_figure}"))
    };
    let mut values = Vec::new();
    for pair in 0..pairs {
        eprintln!("xtask: {id} pair {} of {pairs}", pair + 1);
        values.push(if pair % 2 == 0 {
            let f = flock()?;
            (f, jax()?)
        } else {
            let j = jax()?;
            (flock()?, j)
        });
    }
    println!("{}", pairs_report(id, &values, 2.0));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jax_ids_and_values() {
        assert_eq!(
            jax_id("wide_step.f64.t2"),
            Ok(("wide_step".to_owned(), "wide_step.f64".to_owned()))
        );
        assert_eq!(
            jax_id("wide_run.f32.t2"),
            Ok(("wide_step".to_owned(), "wide_step.f32".to_owned()))
        );
        assert!(jax_id("wide_step.f16.t2").is_err());
        assert!(
            jax_id("wide_step")
                .unwrap_err()
                .contains("wide_step.f64.t2")
        );
        let text = "jax seed_step.f64 810.5\njax wide_step.f64 5174.494\n";
        assert_eq!(jax_value(text, "wide_step.f64"), Some(5174.494));
        assert_eq!(jax_value(text, "wide_step.f32"), None);
    }

    #[test]
    fn the_report_gives_each_pair_and_their_median() {
        let report = pairs_report(
            "wide_step.f64.t2",
            &[(100.0, 210.0), (100.0, 190.0), (50.0, 110.0)],
            2.0,
        );
        assert!(
            report.contains("pair  1: flock      100.0 µs, JAX      210.0 µs, 2.10×"),
            "{report}"
        );
        assert!(
            report.contains("median 2.10× (quartiles 2.00–2.15×); 2 of 3 pairs at 2× or more"),
            "{report}"
        );
    }
}
