//! The README's table of where flock stands on each machine and build, written from
//! `bench/history.jsonl`: `cargo xtask standings` rewrites it, `cargo xtask bench` does so after
//! appending its record, and a test checks that the README holds the history file's table.
//!
//! One row per machine and build, over every record that carries its run's FMA peak (the
//! records from before the peak was recorded have no floor to read their steps against): how
//! many records and which commits and days, the peak's range, and the ranges of the seed and
//! wide steps on two threads — as measured and as multiples of their floors — and of JAX's wide
//! f64 step over flock's in the same run.

use std::fmt::Write as _;
use std::path::Path;

use crate::history::{read_record, record_field, record_numbers, record_peaks};

/// The line before the table in the README.
pub(crate) const BEGIN: &str =
    "<!-- standings: written by `cargo xtask standings` from bench/history.jsonl -->";
/// The line after it.
pub(crate) const END: &str = "<!-- /standings -->";

const HEADER: &str = "\
| machine — build | records | one core's FMA peak, f32 / f64 (GFLOP/s) | seed step, 2 threads, f32 (× floor) | seed step, 2 threads, f64 (× floor) | wide f64 step, 2 threads (× floor) | JAX's wide f64 step / flock's, same run |
|---|---|---|---|---|---|---|
";

/// The step columns: the figure's name in a record, its floor's id, and whether it reads in
/// milliseconds (µs otherwise).
const STEPS: [(&str, &str, bool); 3] = [
    ("runner/seed_step/f32/2", "seed_step.f32.t2", false),
    ("runner/seed_step/f64/2", "seed_step.f64.t2", false),
    (WIDE_F64_T2, "wide_step.f64.t2", true),
];
const WIDE_F64_T2: &str = "runner/wide workload E=16 N=80 hidden 128 f64 2 threads";
const JAX_WIDE_F64: &str = "jax/wide_step.f64";

/// What the table needs of one record.
struct Row {
    machine: String,
    avx512: bool,
    commit: String,
    day: String,
    peaks: Vec<(String, f64)>,
    floors: Vec<(String, f64)>,
    figures: Vec<(String, f64)>,
}

impl Row {
    fn figure(&self, name: &str) -> Option<f64> {
        lookup(&self.figures, name)
    }
}

fn lookup(entries: &[(String, f64)], key: &str) -> Option<f64> {
    entries.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
}

/// The name a CPU goes by in the table: its model name without the trademarks, with the
/// microarchitecture where the family and model tell it. The first records on the Zen 4 host
/// were written before the CPU's family and model were, as plain "AMD EPYC".
pub(crate) fn machine_name(cpu: &str) -> String {
    let (name, numbers) = match cpu.split_once(" (family ") {
        Some((name, rest)) => (name, rest.strip_suffix(')')),
        None => (cpu, None),
    };
    let name = name
        .replace("(R)", "")
        .replace("(TM)", "")
        .replace(" Processor", "");
    let family_model = numbers.and_then(|n| {
        let (family, model) = n.split_once(", model ")?;
        Some((family.parse::<u32>().ok()?, model.parse::<u32>().ok()?))
    });
    match family_model {
        None if name == "AMD EPYC" => "AMD EPYC, Zen 4".to_owned(),
        None => name,
        Some((25, model @ 0..=15)) => format!("{name}, Zen 3 (family 25, model {model})"),
        Some((25, model @ 16..=31)) => format!("{name}, Zen 4 (family 25, model {model})"),
        Some((family, model)) => format!("{name} (family {family}, model {model})"),
    }
}

fn read_row(line: &str) -> Option<Row> {
    let peaks = record_peaks(line);
    if peaks.is_empty() {
        return None;
    }
    Some(Row {
        machine: machine_name(record_field(line, "cpu")?),
        avx512: record_field(line, "simd")?.starts_with("avx512"),
        commit: record_field(line, "commit")?.chars().take(7).collect(),
        day: record_field(line, "date")?.chars().take(10).collect(),
        peaks,
        floors: record_numbers(line, "floor_us"),
        figures: read_record(line)
            .into_iter()
            .map(|f| (f.name, f.median))
            .collect(),
    })
}

/// `a–b` of the values as `format` writes them, or `a` when both ends read the same.
fn range(values: &[f64], format: impl Fn(f64) -> String) -> String {
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (low, high) = (format(low), format(high));
    if low == high {
        low
    } else {
        format!("{low}–{high}")
    }
}

/// The table (header and rows, in Markdown) of the history file's records.
pub(crate) fn table(history: &str) -> String {
    let rows: Vec<Row> = history.lines().filter_map(read_row).collect();
    // Machines in the order of their first record; on each, the AVX-512 build first.
    let mut machines: Vec<&str> = Vec::new();
    for row in &rows {
        if !machines.contains(&row.machine.as_str()) {
            machines.push(&row.machine);
        }
    }
    let mut out = HEADER.to_owned();
    for machine in machines {
        let has_avx512 = rows.iter().any(|r| r.machine == machine && r.avx512);
        for avx512 in [true, false] {
            let group: Vec<&Row> = rows
                .iter()
                .filter(|r| r.machine == machine && r.avx512 == avx512)
                .collect();
            if group.is_empty() {
                continue;
            }
            let build = match (avx512, has_avx512) {
                (true, _) => "AVX-512",
                (false, true) => "AVX2 + FMA (x86-64-v3)",
                (false, false) => "AVX2 + FMA (native)",
            };
            let _ = writeln!(out, "| {machine} — {build} | {} |", columns(&group));
        }
    }
    out
}

/// A row's columns after the first, `|`-separated.
fn columns(group: &[&Row]) -> String {
    let (first, last) = (group[0], group[group.len() - 1]);
    let commits = if group.len() == 1 {
        first.commit.clone()
    } else {
        format!("{} … {}", first.commit, last.commit)
    };
    let days = if first.day == last.day {
        first.day.clone()
    } else {
        format!("{} – {}", first.day, last.day)
    };
    let mut cols = vec![format!("{} ({commits}, {days})", group.len())];
    let peak = |precision: &str| {
        let values: Vec<f64> = group
            .iter()
            .filter_map(|r| lookup(&r.peaks, precision))
            .collect();
        range(&values, |v| format!("{v:.0}"))
    };
    cols.push(format!("{} / {}", peak("f32"), peak("f64")));
    for (name, floor, in_ms) in STEPS {
        let (mut times, mut multiples) = (Vec::new(), Vec::new());
        for row in group {
            if let (Some(t), Some(f)) = (row.figure(name), lookup(&row.floors, floor)) {
                times.push(t);
                multiples.push(t / f);
            }
        }
        cols.push(if times.is_empty() {
            "—".to_owned()
        } else {
            let time = if in_ms {
                range(&times, |us| format!("{:.2}", us / 1000.0)) + " ms"
            } else {
                range(&times, |us| format!("{us:.0}")) + " µs"
            };
            format!("{time} ({}×)", range(&multiples, |m| format!("{m:.2}")))
        });
    }
    let jax: Vec<f64> = group
        .iter()
        .filter_map(|r| Some(r.figure(JAX_WIDE_F64)? / r.figure(WIDE_F64_T2)?))
        .collect();
    cols.push(match jax.len() {
        0 => "—".to_owned(),
        n => format!(
            "{}× ({n} run{})",
            range(&jax, |r| format!("{r:.2}")),
            if n == 1 { "" } else { "s" }
        ),
    });
    cols.join(" | ")
}

/// `readme` with the text between its [`BEGIN`] and [`END`] lines replaced by `table`, a blank
/// line on either side (so that no Markdown reader takes a comment line for a row).
///
/// # Errors
/// When the README lacks either line.
pub(crate) fn with_table(readme: &str, table: &str) -> Result<String, String> {
    let missing = || format!("the README has no lines {BEGIN:?} … {END:?} around its table");
    let start = readme.find(BEGIN).ok_or_else(missing)? + BEGIN.len();
    let end = start + readme[start..].find(END).ok_or_else(missing)?;
    Ok(format!(
        "{}\n\n{table}\n{}",
        &readme[..start],
        &readme[end..]
    ))
}

/// Rewrites the README's table from the history file (with `check`, only says whether it is
/// the file's).
///
/// # Errors
/// A file that cannot be read or written, or (with `check`) a README whose table differs.
pub(crate) fn standings(history: &Path, readme: &Path, check: bool) -> Result<(), String> {
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let (text, old) = (read(history)?, read(readme)?);
    let new = with_table(&old, &table(&text))?;
    if new == old {
        println!("{}: the table is the history file's", readme.display());
    } else if check {
        return Err(format!(
            "{}: the table is not {}'s (cargo xtask standings rewrites it)",
            readme.display(),
            history.display()
        ));
    } else {
        std::fs::write(readme, new).map_err(|e| format!("{}: {e}", readme.display()))?;
        println!(
            "{}: the table rewritten from {}",
            readme.display(),
            history.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace_root;

    #[test]
    fn the_readmes_table_is_the_history_files() {
        let root = workspace_root();
        let history = std::fs::read_to_string(crate::history_file()).unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let table = table(&history);
        assert_eq!(
            with_table(&readme, &table).unwrap(),
            readme,
            "README.md's standings table is not bench/history.jsonl's: run cargo xtask standings"
        );
        // Every machine of the file has a row, and the rows are not empty.
        assert!(table.lines().count() >= 4, "{table}");
    }

    #[test]
    fn machines_are_named_by_family_and_model() {
        assert_eq!(machine_name("AMD EPYC"), "AMD EPYC, Zen 4");
        assert_eq!(
            machine_name("AMD EPYC (family 25, model 1)"),
            "AMD EPYC, Zen 3 (family 25, model 1)"
        );
        assert_eq!(
            machine_name("AMD EPYC 9B14 (family 25, model 17)"),
            "AMD EPYC 9B14, Zen 4 (family 25, model 17)"
        );
        assert_eq!(
            machine_name("Intel(R) Xeon(R) Processor (family 6, model 207)"),
            "Intel Xeon (family 6, model 207)"
        );
    }

    /// Two records of one machine in both builds and one of another: rows per machine and
    /// build, AVX-512 first, ranges over the records, "—" where a figure is missing.
    #[test]
    fn rows_gather_each_machine_and_builds_records() {
        let record = |commit: &str,
                      day: u32,
                      cpu: &str,
                      simd: &str,
                      seed_us: f64,
                      jax: Option<f64>| {
            let jax = jax.map_or(String::new(), |us| {
                format!(r#",{{"name":"jax/wide_step.f64","unit":"µs","median":{us},"min":{us},"max":{us}}}"#)
            });
            format!(
                r#"{{"commit":"{commit}","date":"2026-12-0{day}T00:00:00Z","cpu":"{cpu}","simd":"{simd}","threads":2,"peak_gflops":{{"f32":100.4,"f64":50.6}},"floor_us":{{"seed_step.f32.t2":40,"wide_step.f64.t2":1000}},"figures":[{{"name":"runner/seed_step/f32/2","unit":"µs","median":{seed_us},"min":1,"max":1}},{{"name":"{WIDE_F64_T2}","unit":"µs","median":2000,"min":1,"max":1}}{jax}]}}"#
            )
        };
        let xeon = "Intel(R) Xeon(R) Processor (family 6, model 1)";
        let history = [
            r#"{"commit":"old","cpu":"AMD EPYC","simd":"avx512f+fma","figures":[]}"#.to_owned(),
            record("aaaaaaa1", 8, xeon, "avx2+fma", 80.0, Some(5000.0)),
            record("bbbbbbbbb", 9, xeon, "avx512f+fma", 60.0, None),
            record("ccccccccc", 9, xeon, "avx2+fma", 100.0, Some(4000.0)),
            record(
                "d",
                1,
                "AMD EPYC (family 25, model 1)",
                "avx2+fma",
                90.0,
                None,
            ),
        ]
        .join("\n");
        let table = table(&history);
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(
            rows,
            [
                "| Intel Xeon (family 6, model 1) — AVX-512 | 1 (bbbbbbb, 2026-12-09) | 100 / 51 \
                 | 60 µs (1.50×) | — | 2.00 ms (2.00×) | — |",
                "| Intel Xeon (family 6, model 1) — AVX2 + FMA (x86-64-v3) | 2 (aaaaaaa … ccccccc, \
                 2026-12-08 – 2026-12-09) | 100 / 51 | 80–100 µs (2.00–2.50×) | — | 2.00 ms \
                 (2.00×) | 2.00–2.50× (2 runs) |",
                "| AMD EPYC, Zen 3 (family 25, model 1) — AVX2 + FMA (native) | 1 (d, 2026-12-01) \
                 | 100 / 51 | 90 µs (2.25×) | — | 2.00 ms (2.00×) | — |",
            ]
        );
    }

    #[test]
    fn the_table_goes_between_its_lines() {
        let readme = format!("before\n{BEGIN}\nold table\n{END}\nafter\n");
        assert_eq!(
            with_table(&readme, "new\n").unwrap(),
            format!("before\n{BEGIN}\n\nnew\n\n{END}\nafter\n")
        );
        assert!(with_table("no table here", "new\n").is_err());
    }
}
