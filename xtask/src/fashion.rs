//! `cargo xtask fashion`: Fashion-MNIST with flock, JAX and scikit-learn in one run.

use crate::history::{cpu_name, json_string};
use crate::jax::jax_python;
use crate::source::{source, unrecordable};
use crate::{release_dir, run, workspace_root};
use std::fmt::Write as _;

/// `cargo xtask fashion`: flock's classify-bench and the peers of `xtask/jax/fashion.py` in one
/// run, one table, a record appended to `bench/fashion.jsonl`.
pub(crate) fn fashion(
    epochs: usize,
    train_images: Option<usize>,
    skip_sklearn: bool,
) -> Result<(), String> {
    let data = workspace_root().join("../shared/data/fashion-mnist");
    let data = data
        .to_str()
        .unwrap_or("../shared/data/fashion-mnist")
        .to_owned();
    let epochs_text = epochs.to_string();
    // flock is built once, here: the tree as it is now is what the run measures.
    let start = source()?;
    let unrecorded = unrecordable(&start, &start);
    if let Some(why) = &unrecorded {
        eprintln!("xtask: this run will not be recorded: {why}");
    }
    run(
        "cargo",
        &["build", "--release", "-p", "flock-runner", "--bin", "flock"],
    )?;
    let flock = release_dir().join("flock");
    let mut args = vec![
        "classify-bench",
        &data,
        "--members",
        "5",
        "--epochs",
        &epochs_text,
        "--json",
        "--quiet",
    ];
    let images_text = train_images.map(|n| n.to_string());
    if let Some(n) = &images_text {
        args.extend(["--train-images", n]);
    }
    let ours = run(flock.to_str().unwrap_or("target/release/flock"), &args)?;
    let (python, pins) = jax_python()?;
    let script = workspace_root().join("xtask/jax/fashion.py");
    let mut peer_args = vec![
        script.to_str().unwrap_or("xtask/jax/fashion.py"),
        &data,
        "--members",
        "5",
        "--epochs",
        &epochs_text,
    ];
    if let Some(n) = &images_text {
        peer_args.extend(["--train-images", n]);
    }
    if skip_sklearn {
        peer_args.push("--skip-sklearn");
    }
    let peers = run(python.to_str().unwrap_or("python"), &peer_args)?;
    let number = |text: &str, key: &str| -> Option<f64> {
        let after = text.split(&format!("\"{key}\":")).nth(1)?;
        after
            .trim_start()
            .split([',', '}'])
            .next()?
            .trim()
            .parse()
            .ok()
    };
    eprintln!("xtask: flock: {}", ours.trim());
    for peer in peers.lines().filter(|l| l.starts_with('{')) {
        eprintln!("xtask: peer: {peer}");
    }
    // flock's M = 5 row of its ensembles table: the object around `"members":5`.
    let row5 = ours
        .find("\"members\":5")
        .and_then(|at| {
            let start = ours[..at].rfind('{')?;
            let end = at + ours[at..].find('}')?;
            Some(ours[start..=end].to_owned())
        })
        .ok_or("no M = 5 row in flock's report")?;
    let mut table = format!(
        "{:<26} {:>9} {:>8} {:>8} {:>8} {:>12}\n",
        "5 members, 3×200 ReLU", "accuracy", "NLL", "Brier", "ECE", "s / epoch"
    );
    let mut line = |name: &str, scores: &str, seconds: Option<f64>| {
        let get = |k| number(scores, k).unwrap_or(f64::NAN);
        let _ = writeln!(
            table,
            "{name:<26} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>12.2}",
            get("accuracy"),
            get("nll"),
            get("brier"),
            get("ece"),
            seconds.unwrap_or(f64::NAN)
        );
    };
    line(
        "flock (f32, 2 threads)",
        &row5,
        number(&ours, "seconds_per_epoch"),
    );
    for peer in peers.lines().filter(|l| l.starts_with('{')) {
        let name = if peer.contains("\"peer\": \"jax\"") {
            "JAX + equinox + optax"
        } else {
            "scikit-learn MLPClassifier"
        };
        line(name, peer, number(peer, "seconds_per_epoch"));
    }
    print!("{table}");
    if let Some(why) = unrecorded {
        return Err(format!("not recorded: {why}"));
    }
    let date = run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    // The SIMD level and threads are in flock's own report.
    let record = format!(
        "{{\"commit\":{},\"date\":{},\"cpu\":{},\"epochs\":{epochs},\"train_images\":{},\"jax_env\":{},\"flock\":{},\"peers\":[{}]}}\n",
        json_string(&start.commit),
        json_string(date.trim()),
        json_string(&cpu_name()),
        train_images.map_or("null".to_owned(), |n| n.to_string()),
        json_string(&pins),
        ours.trim(),
        peers
            .lines()
            .filter(|l| l.starts_with('{'))
            .collect::<Vec<_>>()
            .join(",")
    );
    let history = workspace_root().join("bench/fashion.jsonl");
    let mut text = std::fs::read_to_string(&history).unwrap_or_default();
    text.push_str(&record);
    std::fs::write(&history, text).map_err(|e| format!("{}: {e}", history.display()))?;
    println!("record appended to {}", history.display());
    Ok(())
}
