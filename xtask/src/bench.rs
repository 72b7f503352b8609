//! `cargo xtask bench`: runs the suite, prints one table, appends a record.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::figures::{
    Figure, parse_adam, parse_bench_lines, parse_beside_lines, parse_divan, parse_gflops,
    with_seed_step_ids,
};
use crate::floor::{floors, floors_beside};
use crate::history::{
    Recorded, comparison, cpu_name, previous_record, read_record, record, record_field,
    record_peaks,
};
use crate::jax::{jax_figures, vs_jax_table};
use crate::source::{source, unrecordable};
use crate::{history_file, release_dir, run, workspace_root};

/// Wall time of a process, `repeats` times: the cold seed workload from process start.
pub(crate) fn cold(
    id: &str,
    name: &str,
    program: &Path,
    args: &[&str],
    repeats: usize,
) -> Result<Figure, String> {
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
        id: Some(id.to_owned()),
        name: name.to_owned(),
        unit: "µs",
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
    })
}

pub(crate) fn bench(compare: bool, history: &Path, vs_jax: bool) -> Result<(), String> {
    let start = source()?;
    if let Some(why) = unrecordable(&start, &start) {
        eprintln!("xtask: this run will not be recorded: {why}");
    }
    let mut figures = Vec::new();
    let gflops = run(
        "cargo",
        &["bench", "-p", "flock-kernels", "--bench", "gflops"],
    )?;
    let kernels = parse_gflops(&gflops);
    let simd = kernels.simd.clone();
    figures.extend(kernels.figures.iter().cloned());
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
    figures.extend(with_seed_step_ids(parse_divan("runner", &step)));
    let workloads = run(
        "cargo",
        &["bench", "-p", "flock-runner", "--bench", "workloads"],
    )?;
    figures.extend(parse_bench_lines("runner", &workloads));
    figures.extend(floors_beside(&parse_beside_lines(&workloads)));
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
    let example = release_dir().join("examples/seed_cold");
    for precision in ["f64", "f32"] {
        figures.push(cold(
            &format!("seed_cold.{precision}"),
            &format!(
                "runner/seed workload cold (process start to result, 1,500 steps {precision}, all cores)"
            ),
            &example,
            &[precision],
            7,
        )?);
    }

    let floors = floors(&figures, &kernels.peaks);
    let cpu = cpu_name();
    let previous_line = std::fs::read_to_string(history)
        .ok()
        .and_then(|t| previous_record(&t, &cpu, &simd));
    let previous: Vec<Recorded> = previous_line
        .as_deref()
        .map(read_record)
        .unwrap_or_default();
    let previous_peaks = previous_line
        .as_deref()
        .map(record_peaks)
        .unwrap_or_default();
    let peaks: Vec<(String, f64)> = kernels
        .peaks
        .iter()
        .map(|&(p, v)| (p.to_owned(), v))
        .collect();
    println!("flock benchmark suite — {cpu}, SIMD level {simd}");
    println!(
        "(× floor: the figure over its products' time at one core's measured FMA peak on each \
         thread it used)\n"
    );
    if compare {
        match previous_line.as_deref() {
            Some(l) => println!(
                "compared with the last record of this CPU and SIMD level: commit {}, {}\n\
                 (at equal peak: the change once the two runs' measured FMA peaks are taken \
                 out, which is what the noise flag reads)\n",
                record_field(l, "commit").map_or("?", |c| &c[..c.len().min(7)]),
                record_field(l, "date").unwrap_or("?")
            ),
            None => println!("no earlier record of this CPU and SIMD level to compare with\n"),
        }
    }
    println!(
        "{:<72} {:>12} {:>12} {:>12} {:>9}{}",
        "figure",
        "median",
        "min",
        "max",
        "× floor",
        if compare {
            "   vs previous   at equal peak"
        } else {
            ""
        }
    );
    for f in &figures {
        let floor =
            f.id.as_ref()
                .and_then(|id| floors.iter().find(|(fid, _)| fid == id))
                .map_or(String::new(), |(_, us)| format!("{:.2}×", f.median / us));
        let mut line = format!(
            "{:<72} {:>9.2} {:<2} {:>12.2} {:>12.2} {floor:>9}",
            f.name, f.median, f.unit, f.min, f.max
        );
        if compare {
            let now = Recorded {
                name: f.name.clone(),
                unit: f.unit.to_owned(),
                median: f.median,
                min: f.min,
                max: f.max,
            };
            line.push_str(&comparison(&now, &peaks, &previous, &previous_peaks));
        }
        println!("{line}");
    }
    if let Some(dir) = history.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let mut text = std::fs::read_to_string(history).unwrap_or_default();
    let mut jax_env = None;
    let mut table = Ok(String::new());
    if vs_jax {
        let (jax, pins) = jax_figures()?;
        table = vs_jax_table(&figures, &jax);
        match &table {
            Ok(t) => print!("{t}"),
            Err(e) => eprintln!("{e}"),
        }
        figures.extend(jax.iter().map(|(id, value)| Figure {
            id: Some(format!("jax.{id}")),
            name: format!("jax/{id}"),
            unit: "µs",
            median: *value,
            min: *value,
            max: *value,
        }));
        jax_env = Some(pins);
    }
    if let Some(why) = unrecordable(&start, &source()?) {
        return Err(format!("not recorded: {why}"));
    }
    text.push_str(&record(
        &start.commit,
        &figures,
        &kernels,
        &floors,
        jax_env.as_deref(),
    ));
    text.push('\n');
    std::fs::write(history, text).map_err(|e| format!("{}: {e}", history.display()))?;
    println!("\nrecord appended to {}", history.display());
    if history == history_file() {
        crate::standings::standings(history, &workspace_root().join("README.md"), false)?;
    }
    table.map(|_| ())
}
