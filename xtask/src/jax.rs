//! The JAX side of `--vs-jax`: the pinned virtualenv, its figures, and the JAX / flock table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::figures::Figure;
use crate::{run, workspace_root};

/// The `name==version` lines of a requirements file (every line must pin an exact version).
pub(crate) fn pinned_requirements(requirements: &str) -> Result<Vec<String>, String> {
    let path = workspace_root().join(requirements);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pins: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if let Some(bad) = pins.iter().find(|p| !p.contains("==")) {
        return Err(format!(
            "{}: {bad:?} is not pinned to an exact version (name==version)",
            path.display()
        ));
    }
    Ok(pins)
}

/// The interpreter of the virtualenv `venv` (under the workspace), created on first use and
/// holding exactly the pins of `requirements` (installed when `pip freeze` lacks any of them).
/// Returns it and the pins, space-separated (as records name them).
pub(crate) fn pinned_python(venv: &str, requirements: &str) -> Result<(PathBuf, String), String> {
    let venv = workspace_root().join(venv);
    let python = venv.join("bin/python");
    let pins = pinned_requirements(requirements)?;
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: the path is not UTF-8", p.display()))
    };
    let start = Instant::now();
    if !python.exists() {
        eprintln!(
            "xtask: creating {} with {} from the package registry (once; a minute or two)",
            venv.display(),
            pins.join(" ")
        );
        run("python3", &["-m", "venv", &utf8(&venv)?])?;
    }
    let python_str = utf8(&python)?;
    let frozen = run(&python_str, &["-m", "pip", "freeze"]).unwrap_or_default();
    let installed: Vec<&str> = frozen.lines().map(str::trim).collect();
    let missing: Vec<&str> = pins
        .iter()
        .map(String::as_str)
        .filter(|pin| !installed.iter().any(|i| i.eq_ignore_ascii_case(pin)))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: installing {} into {}",
            missing.join(" "),
            venv.display()
        );
        let requirements = utf8(&workspace_root().join(requirements))?;
        run(
            &python_str,
            &["-m", "pip", "install", "--quiet", "-r", &requirements],
        )?;
        eprintln!(
            "xtask: environment ready in {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok((python, pins.join(" ")))
}

/// The Python environment of `--vs-jax` and `fashion`: `target/jax-venv` with the pins of
/// `xtask/jax/requirements.txt`.
pub(crate) fn jax_python() -> Result<(PathBuf, String), String> {
    pinned_python("target/jax-venv", "xtask/jax/requirements.txt")
}

/// JAX's figures (`jax <id> <µs>` lines of `xtask/jax/workloads.py`) for both precisions, and
/// the environment's pins.
pub(crate) fn jax_figures() -> Result<(Vec<(String, f64)>, String), String> {
    let (python, pins) = jax_python()?;
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
    Ok((out, pins))
}

/// The side-by-side table's rows: label, flock's figure id, JAX's figure id.
pub(crate) const VS_JAX: [(&str, &str, &str); 18] = [
    (
        "seed step f32, flock 1 thread",
        "seed_step.f32.t1",
        "seed_step.f32",
    ),
    (
        "seed step f32, flock 2 threads",
        "seed_step.f32.t2",
        "seed_step.f32",
    ),
    (
        "seed step f64, flock 1 thread",
        "seed_step.f64.t1",
        "seed_step.f64",
    ),
    (
        "seed step f64, flock 2 threads",
        "seed_step.f64.t2",
        "seed_step.f64",
    ),
    (
        "seed cold f64, flock on 2 threads",
        "seed_cold.f64",
        "seed_cold.f64",
    ),
    (
        "seed cold f32, flock on 2 threads",
        "seed_cold.f32",
        "seed_cold.f32",
    ),
    (
        "scale step f32, flock 2 threads",
        "scale_step.f32.t2",
        "scale_step.f32",
    ),
    (
        "scale step f64, flock 2 threads",
        "scale_step.f64.t2",
        "scale_step.f64",
    ),
    (
        "wide step f32, flock 1 thread",
        "wide_step.f32.t1",
        "wide_step.f32",
    ),
    (
        "wide step f64, flock 1 thread",
        "wide_step.f64.t1",
        "wide_step.f64",
    ),
    (
        "wide step f32, flock 2 threads",
        "wide_step.f32.t2",
        "wide_step.f32",
    ),
    (
        "wide step f64, flock 2 threads",
        "wide_step.f64.t2",
        "wide_step.f64",
    ),
    (
        "wide step f32 in runs, flock 2 threads",
        "wide_run.f32.t2",
        "wide_step.f32",
    ),
    (
        "wide step f64 in runs, flock 2 threads",
        "wide_run.f64.t2",
        "wide_step.f64",
    ),
    (
        "VI step f32, flock 1 thread",
        "vi_step.f32.t1",
        "vi_step.f32",
    ),
    (
        "VI step f32, flock 2 threads",
        "vi_step.f32.t2",
        "vi_step.f32",
    ),
    (
        "VI step f64, flock 1 thread",
        "vi_step.f64.t1",
        "vi_step.f64",
    ),
    (
        "VI step f64, flock 2 threads",
        "vi_step.f64.t2",
        "vi_step.f64",
    ),
];

/// The side-by-side table: for each workload, flock's figure, JAX's, and JAX / flock.
///
/// # Errors
/// Naming every row whose flock or JAX figure is missing (a renamed bench must not drop a row
/// without a word).
pub(crate) fn vs_jax_table(figures: &[Figure], jax: &[(String, f64)]) -> Result<String, String> {
    let flock = |id: &str| {
        figures
            .iter()
            .find(|f| f.id.as_deref() == Some(id))
            .map(|f| f.median)
    };
    let jax_of = |id: &str| jax.iter().find(|(n, _)| n == id).map(|(_, v)| *v);
    let mut out = String::from(
        "\nside by side with JAX (lax.scan over steps, vmap over members; JAX uses every core)\n\n",
    );
    let _ = writeln!(
        out,
        "{:<44} {:>14} {:>14} {:>12}",
        "workload", "flock µs", "JAX µs", "JAX / flock"
    );
    let mut missing = Vec::new();
    for (label, flock_id, jax_id) in VS_JAX {
        match (flock(flock_id), jax_of(jax_id)) {
            (Some(f), Some(j)) => {
                let _ = writeln!(out, "{label:<44} {f:>14.1} {j:>14.1} {:>11.2}×", j / f);
            }
            (f, j) => {
                if f.is_none() {
                    missing.push(format!("flock {flock_id}"));
                }
                if j.is_none() {
                    missing.push(format!("JAX {jax_id}"));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "{out}\nno figure for {} (renamed in a bench or in workloads.py?)",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{parse_divan, with_seed_step_ids};

    /// Every row of the JAX table is matched by id; a figure missing on either side is named.
    #[test]
    fn the_jax_table_is_keyed_on_ids() {
        let figure = |id: &str| Figure {
            id: Some(id.to_owned()),
            name: format!("runner/{id} described in words"),
            unit: "µs",
            median: 100.0,
            min: 90.0,
            max: 110.0,
        };
        let figures: Vec<Figure> = VS_JAX.iter().map(|(_, f, _)| figure(f)).collect();
        let jax: Vec<(String, f64)> = VS_JAX
            .iter()
            .map(|(_, _, j)| ((*j).to_owned(), 250.0))
            .collect();
        let table = vs_jax_table(&figures, &jax).unwrap();
        assert_eq!(table.matches("2.50×").count(), VS_JAX.len());
        let without_vi: Vec<(String, f64)> = jax
            .iter()
            .filter(|(id, _)| id != "vi_step.f64")
            .cloned()
            .collect();
        let err = vs_jax_table(&figures[1..], &without_vi).unwrap_err();
        assert!(
            err.contains("flock seed_step.f32.t1") && err.contains("JAX vi_step.f64"),
            "{err}"
        );
        let stepped = with_seed_step_ids(parse_divan(
            "runner",
            "╰─ seed_step  │  │  │\n   ╰─ f64  │  │  │\n      ╰─ 2    1 µs │ 3 µs │ 2 µs │ 2 µs │ 1 │ 1\n",
        ));
        assert_eq!(stepped[0].id.as_deref(), Some("seed_step.f64.t2"));
    }
}
