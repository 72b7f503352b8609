//! `cargo xtask`: project automation.
//!
//! `cargo xtask bench [--compare] [--vs-jax] [--history FILE]` builds the benchmarks in release for the
//! native CPU, runs the suite (kernels, the seed log-joint, one Adam step, the seed-workload
//! step on one and two threads, the scale / wide / VI workloads and the scaling curves — drawn to
//! `target/flock-figures/scaling_*.png` —, the exact metrics, and the cold 1,500-step seed run),
//! prints one table and appends a JSON record (commit, date, CPU, SIMD level, threads, one core's
//! measured FMA peak, every figure's median / min / max, and each step workload's floor: its
//! matrix products at that peak on every thread it used) to `bench/history.jsonl`; the table shows
//! every step figure as a multiple of its floor. `--compare` prints each figure's change against
//! the last record of the same CPU and SIMD level, also with the two runs' measured FMA peaks
//! taken out (a run on a slower host moves every figure and the peak alike), and flags moves of
//! the latter larger than either run's own spread; `cargo xtask compare OLD NEW` prints the same
//! for two stored records. `--vs-jax` also runs the
//! same workloads written in JAX + optax (`xtask/jax/workloads.py`, in a virtualenv under
//! `target/jax-venv` with the exact versions of `xtask/jax/requirements.txt`, which the record
//! names) and prints JAX / flock ratios, matched by structured figure ids
//! (`seed_step.f32.t2`). `cargo xtask ab OLD NEW` runs two commits' benchmarks alternately and
//! compares them pair by pair (the [`ab`] module). `cargo xtask --help` prints the usage.

mod ab;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// One measured figure.
#[derive(Clone, Debug)]
struct Figure {
    /// A structured key (`workload.precision.threads`, e.g. `seed_step.f32.t2`) for figures that
    /// other tables refer to; names are descriptions and may be reworded.
    id: Option<String>,
    name: String,
    unit: &'static str,
    median: f64,
    min: f64,
    max: f64,
}

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
                id: None,
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

/// What the kernels' GFLOP/s table says: its figures, the build's SIMD level and one core's
/// measured FMA peak per precision.
struct GflopsRun {
    figures: Vec<Figure>,
    simd: String,
    /// GFLOP/s of one core, `(precision, peak)`.
    peaks: Vec<(&'static str, f64)>,
}

/// The per-value rates the kernels' table ends each precision with: line prefix, figure id and
/// name (`tanh: 3.94 elements/ns …` → `tanh.f32`, `kernels/tanh f32 …`). The divider's rates
/// are the limit of the passes that need a quotient or a square root per value (tanh, Adam).
const RATE_LINES: [(&str, &str, &str); 3] = [
    ("tanh: ", "tanh", "tanh"),
    ("divide: ", "divide", "divide 1/x"),
    ("square root: ", "sqrt", "square root"),
];

/// The kernels' GFLOP/s table: `f32 — one core's measured FMA peak: 116.9 GFLOP/s …`, then
/// `shape … 1 thread % peak all threads % peak` lines, then the per-value rates
/// ([`RATE_LINES`]).
fn parse_gflops(output: &str) -> GflopsRun {
    let mut figures = Vec::new();
    let mut peaks = Vec::new();
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
        for (prefix, id, what) in RATE_LINES {
            if let Some(rate) = line
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
            {
                figures.push(Figure {
                    id: Some(format!("{id}.{precision}")),
                    name: format!("kernels/{what} {precision} (1 thread, 40,960 values)"),
                    unit: "values/ns",
                    median: rate,
                    min: rate,
                    max: rate,
                });
            }
        }
        if let Some(peak) = line
            .split("FMA peak: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            peaks.push((precision, peak));
        }
        if line.starts_with("E=") {
            let numbers: Vec<f64> = line
                .split_whitespace()
                .filter_map(|w| w.trim_end_matches('%').parse().ok())
                .collect();
            // `1 thread, % of the peak beside it, all threads, % of the peak, the peak beside
            // it` (or, from tables before the peak was measured beside each product, without
            // the last).
            let (one, share) = match numbers.len() {
                n if n >= 5 => (Some(numbers[n - 5]), Some(numbers[n - 4])),
                4 => (Some(numbers[0]), None),
                _ => (None, None),
            };
            let name = line[..line.find("  ").unwrap_or(line.len())].trim();
            let mut push = |what: &str, unit: &'static str, value: f64| {
                figures.push(Figure {
                    id: None,
                    name: format!("kernels/gemm {precision} {name} ({what})"),
                    unit,
                    median: value,
                    min: value,
                    max: value,
                });
            };
            if let Some(one) = one {
                push("1 thread", "GFLOP/s", one);
            }
            if let Some(share) = share {
                push(
                    "1 thread, % of the FMA peak measured beside it",
                    "% of peak",
                    share,
                );
            }
        }
    }
    GflopsRun {
        figures,
        simd,
        peaks,
    }
}

/// Floating-point operations of one training step's matrix products for `members` MLPs with
/// layer widths `widths` on `batch` rows: per layer `in → out` the forward `X·Wᵀ` and the weight
/// gradient `dYᵀ·X`, `2·batch·in·out` each, and the input gradient `dY·W` for every layer but
/// the first (the data needs none).
fn mlp_product_flops(members: usize, batch: usize, widths: &[usize]) -> f64 {
    let per_member: usize = widths
        .windows(2)
        .enumerate()
        .map(|(layer, w)| {
            let products = if layer == 0 { 2 } else { 3 };
            products * 2 * batch * w[0] * w[1]
        })
        .sum();
    (members * per_member) as f64
}

/// The step workloads whose figures get a floor: id prefix (`seed_step` → `seed_step.f32.t2`),
/// members, batch rows and layer widths (`runner/benches/{seed_step,workloads}.rs`). The VI step
/// draws one particle of the seed MLP, so its products are the MAP step's.
const STEP_WORKLOADS: [(&str, usize, usize, &[usize]); 4] = [
    ("seed_step", 16, 80, &[1, 32, 32, 1]),
    ("vi_step", 16, 80, &[1, 32, 32, 1]),
    ("scale_step", 64, 256, &[1, 64, 64, 1]),
    ("wide_step", 16, 80, &[1, 128, 128, 1]),
];

/// Each step workload's floor in µs — its products at one core's measured peak on every thread
/// it was given — keyed by figure id (`seed_step.f32.t2`).
fn floors(figures: &[Figure], peaks: &[(&'static str, f64)]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for f in figures {
        let Some(id) = &f.id else { continue };
        let parts: Vec<&str> = id.split('.').collect();
        let [workload, precision, threads] = parts[..] else {
            continue;
        };
        let Some(threads) = threads
            .strip_prefix('t')
            .and_then(|t| t.parse::<f64>().ok())
        else {
            continue;
        };
        let shape = STEP_WORKLOADS.iter().find(|(w, ..)| *w == workload);
        let peak = peaks.iter().find(|(p, _)| *p == precision);
        if let (Some((_, members, batch, widths)), Some((_, peak))) = (shape, peak) {
            let flops = mlp_product_flops(*members, *batch, widths);
            out.push((id.clone(), flops / (peak * 1e9 * threads) * 1e6));
        }
    }
    out
}

/// The Adam bench's lines: `adam step f32  E=16  P=1153   update_and_apply   14.42 µs  0.782 ns
/// per parameter …`; the name is every word before the time (the variant included: the fused
/// `update_and_apply` and `update, apply` are two figures).
fn parse_adam(output: &str) -> Vec<Figure> {
    output
        .lines()
        .filter(|l| l.starts_with("adam step"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().rposition(|w| *w == "ns")?;
            let ns: f64 = words.get(at.checked_sub(1)?)?.parse().ok()?;
            let time_at = words.iter().position(|w| *w == "µs")?.checked_sub(1)?;
            let name = words[..time_at].join(" ");
            Some(Figure {
                id: None,
                name: format!("optim/{name}"),
                unit: "ns/param",
                median: ns,
                min: ns,
                max: ns,
            })
        })
        .collect()
}

/// Lines `bench <id> <median µs> <min µs> <max µs> <name…>` (the workloads bench).
fn parse_bench_lines(prefix: &str, output: &str) -> Vec<Figure> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("bench "))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.len() < 5 {
                return None;
            }
            let number = |i: usize| words[i].parse::<f64>().ok();
            Some(Figure {
                id: Some(words[0].to_owned()),
                name: format!("{prefix}/{}", words[4..].join(" ")),
                unit: "µs",
                median: number(1)?,
                min: number(2)?,
                max: number(3)?,
            })
        })
        .collect()
}

/// The seed-step bench's figures (`runner/seed_step/<precision>/<threads>`) get their ids
/// (`seed_step.<precision>.t<threads>`).
fn with_seed_step_ids(mut figures: Vec<Figure>) -> Vec<Figure> {
    for f in &mut figures {
        let parts: Vec<&str> = f.name.split('/').collect();
        if let ["runner", "seed_step", precision, threads] = parts[..] {
            f.id = Some(format!("seed_step.{precision}.t{threads}"));
        }
    }
    figures
}

/// Wall time of a process, `repeats` times: the cold seed workload from process start.
fn cold(
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

/// This machine's CPU (`/proc/cpuinfo`): see [`cpu_from_cpuinfo`].
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| cpu_from_cpuinfo(&t))
        .unwrap_or_else(|_| "unknown".into())
}

/// The model name with the family and model numbers: a virtual machine may call a Zen 3 and a
/// Zen 4 both just "AMD EPYC" (family 25, models 1 and 17), and their records must not be compared.
fn cpu_from_cpuinfo(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(key))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
    };
    let name = field("model name").unwrap_or_else(|| "unknown".into());
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    }
}

/// A number-valued JSON object `{"key":value,…}`.
fn json_numbers<'a>(entries: impl IntoIterator<Item = (&'a str, f64)>) -> String {
    let body: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{}:{v}", json_string(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn record(
    figures: &[Figure],
    kernels: &GflopsRun,
    floors: &[(String, f64)],
    jax_env: Option<&str>,
) -> String {
    let simd = &kernels.simd;
    let commit = run("git", &["rev-parse", "HEAD"]).unwrap_or_default();
    let date = run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    let cpu = cpu_name();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!(
        "{{\"commit\":{},\"date\":{},\"cpu\":{},\"simd\":{},\"threads\":{threads},",
        json_string(commit.trim()),
        json_string(date.trim()),
        json_string(&cpu),
        json_string(simd)
    );
    if let Some(env) = jax_env {
        let _ = write!(out, "\"jax_env\":{},", json_string(env));
    }
    let _ = write!(
        out,
        "\"peak_gflops\":{},\"floor_us\":{},",
        json_numbers(kernels.peaks.iter().copied()),
        json_numbers(floors.iter().map(|(id, v)| (id.as_str(), *v)))
    );
    out.push_str("\"figures\":[");
    for (i, f) in figures.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        if let Some(id) = &f.id {
            let _ = write!(out, "\"id\":{},", json_string(id));
        }
        let _ = write!(
            out,
            "\"name\":{},\"unit\":{},\"median\":{},\"min\":{},\"max\":{}}}",
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

/// The string whose text starts `text` (just after its opening quote), up to its closing quote,
/// with [`json_string`]'s escapes undone.
fn read_json_string(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        out.push(c);
                    }
                }
                Some(c) => out.push(c),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// One figure of a history record.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    name: String,
    unit: String,
    median: f64,
    min: f64,
    max: f64,
}

/// Every figure of a history record (a tiny reader for the records this file writes).
fn read_record(line: &str) -> Vec<Recorded> {
    let mut out = Vec::new();
    for part in line.split("\"name\":").skip(1) {
        let number = |key: &str| -> Option<f64> {
            let after = part.split(&format!("\"{key}\":")).nth(1)?;
            after.split([',', '}']).next()?.parse().ok()
        };
        let name = part
            .trim_start()
            .strip_prefix('"')
            .map_or_else(String::new, read_json_string);
        if let (Some(median), Some(min), Some(max)) =
            (number("median"), number("min"), number("max"))
        {
            let unit = record_field(part, "unit").unwrap_or("").to_owned();
            out.push(Recorded {
                name,
                unit,
                median,
                min,
                max,
            });
        }
    }
    out
}

/// A string field of a history record (`"simd":"avx2+fma"` → `avx2+fma`).
fn record_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(&format!("\"{key}\":\""))
        .nth(1)?
        .split('"')
        .next()
}

/// `(precision, GFLOP/s)` of a history record's `peak_gflops` (one core's measured FMA peak per
/// precision in that run); empty for records without it.
fn record_peaks(line: &str) -> Vec<(String, f64)> {
    let Some(body) = line
        .split("\"peak_gflops\":{")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
    else {
        return Vec::new();
    };
    body.split(',')
        .filter_map(|entry| {
            let (key, value) = entry.split_once(':')?;
            Some((key.trim_matches('"').to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// How much faster this run's core measured than the previous run's, as the figure `name` would
/// feel it: the ratio of the two runs' FMA peaks of the figure's precision (`f32` or `f64` in its
/// name), or their geometric mean for figures of neither. `None` when a peak is missing.
fn peak_speedup(name: &str, now: &[(String, f64)], before: &[(String, f64)]) -> Option<f64> {
    let ratio = |precision: &str| -> Option<f64> {
        let now = now.iter().find(|(p, _)| p == precision)?.1;
        let before = before.iter().find(|(p, _)| p == precision)?.1;
        (now > 0.0 && before > 0.0).then(|| now / before)
    };
    if name.contains("f32") {
        ratio("f32")
    } else if name.contains("f64") {
        ratio("f64")
    } else {
        Some((ratio("f32")? * ratio("f64")?).sqrt())
    }
}

/// The relative change of a figure from `before` to `now` with the host's speed taken out: the
/// previous figure scaled by `speedup` (a rate — GFLOP/s, values/ns — times it, a time divided by
/// it; a share of the peak left as it is) before comparing. On a shared machine a whole run can
/// land on a slower host (every figure, the FMA peak included, 10–15 % worse); the same-run peak
/// is the yardstick that moves with it.
fn change_at_equal_peak(unit: &str, now: f64, before: f64, speedup: f64) -> f64 {
    let expected = if unit == "% of peak" {
        // Already a share of the peak (measured beside it).
        before
    } else if unit.ends_with("/s") || unit.ends_with("/ns") {
        before * speedup
    } else {
        before / speedup
    };
    (now - expected) / expected
}

/// The `vs previous` and `at equal peak` columns of one figure (`now`, with this run's `peaks`)
/// against `before` (the previous record's figures and peaks): its change, the change with the
/// runs' FMA peaks taken out ([`change_at_equal_peak`]), and a flag when the latter — or the raw
/// change, where a peak is missing — is larger than either run's own spread (at least 3 %).
fn comparison(
    now: &Recorded,
    peaks: &[(String, f64)],
    before: &[Recorded],
    before_peaks: &[(String, f64)],
) -> String {
    let Some(old) = before.iter().find(|f| f.name == now.name) else {
        return "   (new)".to_owned();
    };
    let change = (now.median - old.median) / old.median;
    let at_peak = peak_speedup(&now.name, peaks, before_peaks)
        .map(|speedup| change_at_equal_peak(&now.unit, now.median, old.median, speedup));
    let noise = ((old.max - old.min) / old.median)
        .max((now.max - now.min) / now.median)
        .max(0.03);
    let flag = if at_peak.unwrap_or(change).abs() > noise {
        "  ← beyond noise"
    } else {
        ""
    };
    let at_peak = at_peak.map_or(String::new(), |c| format!("{:+.1} %", 100.0 * c));
    format!("   {:+6.1} %   {at_peak:>11}{flag}", 100.0 * change)
}

/// `cargo xtask compare OLD NEW`: the figures of the last record of commit `new` (a prefix) at
/// SIMD level `simd` (default: that of `new`'s last record) against the last record of commit
/// `old` of the same CPU and SIMD level, as `bench --compare` prints them — without running
/// anything.
fn compare_records(history: &Path, old: &str, new: &str, simd: Option<&str>) -> Result<(), String> {
    let text =
        std::fs::read_to_string(history).map_err(|e| format!("{}: {e}", history.display()))?;
    print!("{}", compare_table(&text, old, new, simd)?);
    Ok(())
}

/// `f32 113.7, f64 57.6`.
fn list_peaks(peaks: &[(String, f64)]) -> String {
    let listed: Vec<String> = peaks.iter().map(|(p, v)| format!("{p} {v}")).collect();
    listed.join(", ")
}

/// The table of [`compare_records`] for the history text `history`.
fn compare_table(
    history: &str,
    old: &str,
    new: &str,
    simd: Option<&str>,
) -> Result<String, String> {
    let newer = last_record(history, Some(new), None, simd).ok_or_else(|| {
        format!(
            "no record of commit {new:?} at SIMD level {}",
            simd.unwrap_or("(any)")
        )
    })?;
    let (cpu, level) = (record_field(newer, "cpu"), record_field(newer, "simd"));
    let older = last_record(history, Some(old), cpu, level).ok_or_else(|| {
        format!(
            "no record of commit {old:?} on {} at SIMD level {}",
            cpu.unwrap_or("?"),
            level.unwrap_or("?")
        )
    })?;
    let (before, before_peaks) = (read_record(older), record_peaks(older));
    let peaks = record_peaks(newer);
    let short = |line: &str| {
        record_field(line, "commit").map_or("?".to_owned(), |c| c[..c.len().min(7)].to_owned())
    };
    let mut out = format!(
        "{} ({}, SIMD level {}) against {}\n\
         one core's FMA peak (GFLOP/s): {} against {}\n\n{:<72} {:>12}   vs previous   at equal peak\n",
        short(newer),
        cpu.unwrap_or("?"),
        level.unwrap_or("?"),
        short(older),
        list_peaks(&peaks),
        list_peaks(&before_peaks),
        "figure",
        "median"
    );
    for figure in read_record(newer) {
        let _ = writeln!(
            out,
            "{:<72} {:>9.2} {:<2}{}",
            figure.name,
            figure.median,
            figure.unit,
            comparison(&figure, &peaks, &before, &before_peaks)
        );
    }
    Ok(out)
}

/// The last record of `history` made on this CPU at this SIMD level: a record from another
/// machine or build says nothing about this run's changes.
fn previous_record(history: &str, cpu: &str, simd: &str) -> Option<String> {
    last_record(history, None, Some(cpu), Some(simd)).map(str::to_owned)
}

/// The last record of `history` whose commit starts with `commit` (a non-empty prefix) and that
/// was made on `cpu` at SIMD level `simd`, each condition only where given.
fn last_record<'h>(
    history: &'h str,
    commit: Option<&str>,
    cpu: Option<&str>,
    simd: Option<&str>,
) -> Option<&'h str> {
    let matches = |line: &str, key: &str, wanted: Option<&str>, prefix: bool| {
        wanted.is_none_or(|w| {
            record_field(line, key).is_some_and(|v| {
                if prefix {
                    !w.is_empty() && v.starts_with(w)
                } else {
                    v == w
                }
            })
        })
    };
    history.lines().rev().find(|l| {
        matches(l, "commit", commit, true)
            && matches(l, "cpu", cpu, false)
            && matches(l, "simd", simd, false)
    })
}

/// The `name==version` lines of a requirements file (every line must pin an exact version).
fn pinned_requirements(requirements: &str) -> Result<Vec<String>, String> {
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
fn pinned_python(venv: &str, requirements: &str) -> Result<(PathBuf, String), String> {
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
fn jax_python() -> Result<(PathBuf, String), String> {
    pinned_python("target/jax-venv", "xtask/jax/requirements.txt")
}

/// JAX's figures (`jax <id> <µs>` lines of `xtask/jax/workloads.py`) for both precisions, and
/// the environment's pins.
fn jax_figures() -> Result<(Vec<(String, f64)>, String), String> {
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
const VS_JAX: [(&str, &str, &str); 16] = [
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
fn vs_jax_table(figures: &[Figure], jax: &[(String, f64)]) -> Result<String, String> {
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

fn bench(compare: bool, history: &Path, vs_jax: bool) -> Result<(), String> {
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
    text.push_str(&record(&figures, &kernels, &floors, jax_env.as_deref()));
    text.push('\n');
    std::fs::write(history, text).map_err(|e| format!("{}: {e}", history.display()))?;
    println!("\nrecord appended to {}", history.display());
    table.map(|_| ())
}

const USAGE: &str = "\
usage: cargo xtask bench [--compare] [--vs-jax] [--history FILE]
       cargo xtask compare OLD NEW [--simd LEVEL] [--history FILE]
       cargo xtask ab OLD NEW [--bench NAME]... [--filter TEXT] [--pairs N]
       cargo xtask fashion [--epochs N] [--train-images N] [--skip-sklearn]
       cargo xtask wheel
       cargo xtask fuzz [--seconds N]
       cargo xtask optax-fixtures

  bench            run the benchmark suite, print one table, append a record to
                   bench/history.jsonl (about nine minutes)
  --compare        show each figure's change against the last record of this CPU and SIMD level,
                   as measured and at equal peak (the two runs' FMA peaks taken out)
  --vs-jax         also run the same workloads in JAX (pinned in xtask/jax/requirements.txt,
                   installed into target/jax-venv) and print JAX / flock ratios
  --history FILE   the history file (default bench/history.jsonl)

  compare          the last record of commit NEW against the last of commit OLD on the same
                   CPU and SIMD level, as bench --compare prints them, without running anything
  --simd LEVEL     NEW's record at this SIMD level (avx512f+fma, avx2+fma, ...; default: its
                   last record's)

  ab               build the benchmarks at commits OLD and NEW (git worktrees and builds under
                   <CARGO_TARGET_DIR or target>/ab, with the environment's RUSTFLAGS) and run
                   them in N pairs, alternating which goes first; print each figure's B / A
                   ratio over the pairs (median and quartiles of the fastest samples' ratios,
                   median of the medians' ratios) and whether B is faster, slower or within
                   the noise (a two-sided sign test over the pairs, at 5 %)
  --bench NAME     seed_step, workloads, kernels, log_joint or gflops (repeatable; default
                   seed_step and workloads; a rate's ratio is A / B, so below 1 B is faster)
  --filter TEXT    passed to the bench binaries (a divan filter, a workloads figure id such
                   as wide_step.f64, or a gflops shape such as 128→128)
  --pairs N        pairs to run (default 10; six is the fewest a sign test can call)

  fashion          Fashion-MNIST side by side in one run: flock classify-bench (5 members,
                   f32), the same ensemble in JAX + equinox + optax, and scikit-learn's
                   MLPClassifier ×5 (xtask/jax/fashion.py); appends to bench/fashion.jsonl
  --epochs N       epochs for all three (default 20)
  --train-images N train on the first N images (a quick run)
  --skip-sklearn   leave scikit-learn out (its ensemble takes the longest)

  wheel            build the portable Python wheel (python/build_wheel.py: the native module
                   for x86-64, x86-64-v3 and x86-64-v4, chosen at import) into target/portable-wheel,
                   with maturin from python/requirements-test.txt in target/py-venv

  fuzz             run every fuzz target of fuzz/ (cargo-fuzz, the nightly toolchain) for
                   N seconds each (default 60) on its corpus; a crash stops with its input
  optax-fixtures   regenerate optim/tests/optax_args/ with the pinned optax of target/jax-venv
                   (xtask/jax/optax_args.py: every optional argument of every schedule and
                   transformation flock implements, each exercised by a case)
  -h, --help       print this help";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Task {
    Help,
    Bench {
        compare: bool,
        vs_jax: bool,
        history: PathBuf,
    },
    Fashion {
        epochs: usize,
        train_images: Option<usize>,
        skip_sklearn: bool,
    },
    Compare {
        old: String,
        new: String,
        simd: Option<String>,
        history: PathBuf,
    },
    Ab {
        old: String,
        new: String,
        benches: Vec<ab::Bench>,
        filter: Option<String>,
        pairs: usize,
    },
    Wheel,
    OptaxFixtures,
    Fuzz {
        seconds: u64,
    },
}

/// Parses the arguments after `cargo xtask`.
///
/// The two positional commits `OLD NEW` of `task` (`compare`, `ab`) among its `args`; every
/// argument that starts with `-` goes to `flag` with the rest of the arguments (to take its
/// value from), which answers whether it knew the flag.
///
/// # Errors
/// An unknown flag, a flag's own error, or other than two commits.
fn two_commits<'a>(
    task: &str,
    args: &'a [String],
    mut flag: impl FnMut(&str, &mut std::slice::Iter<'a, String>) -> Result<bool, String>,
) -> Result<(String, String), String> {
    let mut commits = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') {
            commits.push(arg.clone());
        } else if !flag(arg, &mut rest)? {
            return Err(format!("unknown argument {arg:?} for {task}"));
        }
    }
    let [old, new]: [String; 2] = commits
        .try_into()
        .map_err(|_| format!("{task} needs two commits: OLD NEW"))?;
    Ok((old, new))
}

/// # Errors
/// A message naming the argument that is not understood.
fn parse_args(args: &[String]) -> Result<Task, String> {
    if args.is_empty()
        || args
            .iter()
            .any(|a| a == "-h" || a == "--help" || a == "help")
    {
        return Ok(Task::Help);
    }
    match args[0].as_str() {
        "bench" => {
            let (mut compare, mut vs_jax, mut history) = (false, false, None);
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--compare" => compare = true,
                    "--vs-jax" => vs_jax = true,
                    "--history" => {
                        let file = rest.next().ok_or("--history needs a file")?;
                        history = Some(PathBuf::from(file));
                    }
                    other => return Err(format!("unknown argument {other:?} for bench")),
                }
            }
            Ok(Task::Bench {
                compare,
                vs_jax,
                history: history.unwrap_or_else(|| workspace_root().join("bench/history.jsonl")),
            })
        }
        "compare" => {
            let (mut simd, mut history) = (None, None);
            let (old, new) = two_commits("compare", &args[1..], |flag, rest| {
                match flag {
                    "--simd" => simd = Some(rest.next().ok_or("--simd needs a level")?.clone()),
                    "--history" => {
                        let file = rest.next().ok_or("--history needs a file")?;
                        history = Some(PathBuf::from(file));
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Ok(Task::Compare {
                old,
                new,
                simd,
                history: history.unwrap_or_else(|| workspace_root().join("bench/history.jsonl")),
            })
        }
        "ab" => {
            let (mut benches, mut filter, mut pairs) = (Vec::new(), None, 10);
            let (old, new) = two_commits("ab", &args[1..], |flag, rest| {
                match flag {
                    "--bench" => {
                        benches.push(ab::bench_named(rest.next().ok_or("--bench needs a name")?)?);
                    }
                    "--filter" => {
                        filter = Some(rest.next().ok_or("--filter needs a text")?.clone())
                    }
                    "--pairs" => {
                        pairs = rest
                            .next()
                            .and_then(|n| n.parse().ok())
                            .filter(|&n: &usize| n > 0)
                            .ok_or("--pairs needs a whole number above 0")?;
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            if benches.is_empty() {
                benches = vec![ab::bench_named("seed_step")?, ab::bench_named("workloads")?];
            }
            Ok(Task::Ab {
                old,
                new,
                benches,
                filter,
                pairs,
            })
        }
        "fashion" => {
            let (mut epochs, mut train_images, mut skip_sklearn) = (20, None, false);
            let mut rest = args[1..].iter();
            let number = |flag: &str, value: Option<&String>| -> Result<usize, String> {
                value
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{flag} needs a whole number"))
            };
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--epochs" => epochs = number("--epochs", rest.next())?,
                    "--train-images" => {
                        train_images = Some(number("--train-images", rest.next())?);
                    }
                    "--skip-sklearn" => skip_sklearn = true,
                    other => return Err(format!("unknown argument {other:?} for fashion")),
                }
            }
            Ok(Task::Fashion {
                epochs,
                train_images,
                skip_sklearn,
            })
        }
        "fuzz" => match (args.get(1).map(String::as_str), args.get(2)) {
            (None, _) => Ok(Task::Fuzz { seconds: 60 }),
            (Some("--seconds"), Some(n)) => n
                .parse()
                .map(|seconds| Task::Fuzz { seconds })
                .map_err(|_| "--seconds needs a whole number".to_owned()),
            (Some(other), _) => Err(format!("unknown argument {other:?} for fuzz")),
        },
        "wheel" => match args.get(1) {
            None => Ok(Task::Wheel),
            Some(other) => Err(format!("unknown argument {other:?} for wheel")),
        },
        "optax-fixtures" => match args.get(1) {
            None => Ok(Task::OptaxFixtures),
            Some(other) => Err(format!("unknown argument {other:?} for optax-fixtures")),
        },
        other => Err(format!("unknown task {other:?}")),
    }
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

/// `cargo xtask fashion`: flock's classify-bench and the peers of `xtask/jax/fashion.py` in one
/// run, one table, a record appended to `bench/fashion.jsonl`.
fn fashion(epochs: usize, train_images: Option<usize>, skip_sklearn: bool) -> Result<(), String> {
    let data = workspace_root().join("../shared/data/fashion-mnist");
    let data = data
        .to_str()
        .unwrap_or("../shared/data/fashion-mnist")
        .to_owned();
    let epochs_text = epochs.to_string();
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
    let commit = run("git", &["rev-parse", "HEAD"]).unwrap_or_default();
    let date = run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    // The SIMD level and threads are in flock's own report.
    let record = format!(
        "{{\"commit\":{},\"date\":{},\"cpu\":{},\"epochs\":{epochs},\"train_images\":{},\"jax_env\":{},\"flock\":{},\"peers\":[{}]}}\n",
        json_string(commit.trim()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let f = parse_bench_lines(
            "runner",
            "bench wide_step.f32.t1 2044.9 2038.1 2088.2 wide workload f32\nnoise\n",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "runner/wide workload f32");
        assert_eq!(f[0].id.as_deref(), Some("wide_step.f32.t1"));
        assert_eq!((f[0].median, f[0].min, f[0].max), (2044.9, 2038.1, 2088.2));
    }

    #[test]
    fn parses_adam_lines() {
        let f = parse_adam(concat!(
            "adam step f32  E=16  P=1153   update_and_apply      9.40 µs  0.510 ns per parameter per member\n",
            "adam step f32  E=16  P=1153   update, apply        11.89 µs  0.645 ns per parameter per member\n",
            "adam step f32  E=3   P=239410 update_and_apply    595.13 µs  0.829 ns per parameter per member\n",
        ));
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].median, f[1].median), (0.510, 0.645));
        assert_eq!(
            f[0].name,
            "optim/adam step f32 E=16 P=1153 update_and_apply"
        );
        assert_eq!(f[1].name, "optim/adam step f32 E=16 P=1153 update, apply");
        assert_eq!(
            f[2].name,
            "optim/adam step f32 E=3 P=239410 update_and_apply"
        );
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
            id: Some("a.f32.t1".into()),
            name: "a/b \"c\" \\ \u{1}".into(),
            unit: "µs",
            median: 2.5,
            min: 2.0,
            max: 3.0,
        }];
        let kernels = GflopsRun {
            figures: Vec::new(),
            simd: "avx512f+fma".into(),
            peaks: vec![("f32", 116.0)],
        };
        let floors = vec![("a.f32.t1".to_owned(), 1.25)];
        let line = record(&figures, &kernels, &floors, Some("jax==0.10.2"));
        assert!(line.contains(r#""id":"a.f32.t1""#) && line.contains(r#""jax_env":"jax==0.10.2""#));
        assert!(line.contains(r#""peak_gflops":{"f32":116}"#), "{line}");
        assert!(line.contains(r#""floor_us":{"a.f32.t1":1.25}"#), "{line}");
        assert_eq!(record_field(&line, "simd"), Some("avx512f+fma"));
        let back = read_record(&line);
        assert_eq!(back.len(), 1);
        assert_eq!(
            back[0],
            Recorded {
                name: "a/b \"c\" \\ \u{1}".into(),
                unit: "µs".into(),
                median: 2.5,
                min: 2.0,
                max: 3.0
            }
        );
    }

    #[test]
    fn the_cpu_names_its_family_and_model() {
        let zen3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(cpu_from_cpuinfo(zen3), "AMD EPYC (family 25, model 1)");
        assert_eq!(cpu_from_cpuinfo("model name : Some CPU\n"), "Some CPU");
        assert_eq!(cpu_from_cpuinfo(""), "unknown");
    }

    #[test]
    fn changes_at_equal_peak_take_the_hosts_speed_out() {
        let line = r#"{"commit":"a","peak_gflops":{"f32":243.7,"f64":122},"floor_us":{}}"#;
        let before = record_peaks(line);
        assert_eq!(
            before,
            vec![("f32".to_owned(), 243.7), ("f64".to_owned(), 122.0)]
        );
        assert!(record_peaks(r#"{"commit":"a","figures":[]}"#).is_empty());
        // This run's core measured 10 % slower in f32, 20 % slower in f64.
        let now = [
            ("f32".to_owned(), 0.9 * 243.7),
            ("f64".to_owned(), 0.8 * 122.0),
        ];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let f32_speedup = peak_speedup("gemm f32 32→32", &now, &before).unwrap();
        assert!(close(f32_speedup, 0.9));
        assert!(close(
            peak_speedup("seed_step/f64/2", &now, &before).unwrap(),
            0.8
        ));
        let neither = peak_speedup("metrics/all_exact_scores/16", &now, &before).unwrap();
        assert!(close(neither, (0.9f64 * 0.8).sqrt()));
        assert_eq!(peak_speedup("gemm f32", &now, &[]), None);
        // A rate 10 % lower and a time 1/0.9 longer on a host 10 % slower: no change.
        assert!(close(
            change_at_equal_peak("GFLOP/s", 90.0, 100.0, 0.9),
            0.0
        ));
        assert!(close(change_at_equal_peak("values/ns", 4.5, 5.0, 0.9), 0.0));
        assert!(close(
            change_at_equal_peak("µs", 100.0 / 0.9, 100.0, 0.9),
            0.0
        ));
        assert!(close(
            change_at_equal_peak("ns/param", 1.0 / 0.9, 1.0, 0.9),
            0.0
        ));
        // The same raw figures on a host of the same speed: the raw change.
        assert!(close(change_at_equal_peak("µs", 110.0, 100.0, 1.0), 0.1));
        assert!(close(
            change_at_equal_peak("GFLOP/s", 90.0, 100.0, 1.0),
            -0.1
        ));
    }

    #[test]
    fn compares_only_with_the_same_cpu_and_simd_level() {
        let history = [
            r#"{"commit":"a","cpu":"AMD EPYC","simd":"avx512f+fma","figures":[]}"#,
            r#"{"commit":"b","cpu":"AMD EPYC","simd":"avx2+fma","figures":[]}"#,
            r#"{"commit":"c","cpu":"Other","simd":"avx512f+fma","figures":[]}"#,
        ]
        .join("\n");
        let pick = |cpu, simd| {
            previous_record(&history, cpu, simd)
                .and_then(|l| record_field(&l, "commit").map(str::to_owned))
        };
        assert_eq!(pick("AMD EPYC", "avx512f+fma").as_deref(), Some("a"));
        assert_eq!(pick("AMD EPYC", "avx2+fma").as_deref(), Some("b"));
        assert_eq!(pick("Other", "avx2+fma"), None);
    }

    #[test]
    fn floors_count_every_product_and_divide_by_the_threads_peak() {
        // The seed MLP: 1→32 (forward, dW), 32→32 (three), 32→1 (three), 80 rows, 16 members.
        let seed = 16.0 * 80.0 * 2.0 * (2.0 * 32.0 + 3.0 * 32.0 * 32.0 + 3.0 * 32.0);
        assert_eq!(mlp_product_flops(16, 80, &[1, 32, 32, 1]), seed);
        let run = parse_gflops(
            "flock-kernels GEMM throughput, SIMD level avx2+fma (GFLOP/s)\n\n\
             f32 — one core's measured FMA peak: 100.0 GFLOP/s (2 threads available)\n\
             tanh: 3.94 elements/ns (1 thread, 40,960 elements)\n\
             f64 — one core's measured FMA peak: 50.0 GFLOP/s (2 threads available)\n",
        );
        assert_eq!(run.simd, "avx2+fma");
        assert_eq!(run.figures.len(), 1);
        assert_eq!(run.figures[0].id.as_deref(), Some("tanh.f32"));
        assert_eq!(run.figures[0].median, 3.94);
        assert_eq!(run.peaks, vec![("f32", 100.0), ("f64", 50.0)]);
        let figure = |id: &str| Figure {
            id: Some(id.into()),
            name: id.into(),
            unit: "µs",
            median: 1.0,
            min: 1.0,
            max: 1.0,
        };
        let got = floors(
            &[
                figure("seed_step.f32.t2"),
                figure("seed_step.f64.t1"),
                figure("other.f32.t1"),
            ],
            &run.peaks,
        );
        assert_eq!(got.len(), 2);
        assert!((got[0].1 - seed / 200e9 * 1e6).abs() < 1e-9);
        assert!((got[1].1 - seed / 50e9 * 1e6).abs() < 1e-9);
    }

    #[test]
    fn parses_the_products_and_their_share_of_the_peak_beside_them() {
        let run = parse_gflops(
            "f64 — one core's measured FMA peak: 50.0 GFLOP/s (2 threads available)\n\
             shape (E, B, in→out, product)        1 thread  % peak¹   all threads   % peak      peak¹\n\
             E=16 B=80 32→32 dYᵀ·X                    41.7      89%          63.7      68%       46.9\n\
             E=5 B=100 200→10 dY·W                    36.9      78%          34.6      37%\n",
        );
        let got: Vec<(&str, f64, &str)> = run
            .figures
            .iter()
            .map(|f| (f.name.as_str(), f.median, f.unit))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "kernels/gemm f64 E=16 B=80 32→32 dYᵀ·X (1 thread)",
                    41.7,
                    "GFLOP/s"
                ),
                (
                    "kernels/gemm f64 E=16 B=80 32→32 dYᵀ·X (1 thread, % of the FMA peak measured beside it)",
                    89.0,
                    "% of peak"
                ),
                (
                    "kernels/gemm f64 E=5 B=100 200→10 dY·W (1 thread)",
                    36.9,
                    "GFLOP/s"
                ),
            ]
        );
        assert_eq!(change_at_equal_peak("% of peak", 90.0, 100.0, 0.8), -0.1);
    }

    #[test]
    fn parses_the_divider_rates_per_precision() {
        let run = parse_gflops(
            "flock-kernels GEMM throughput, SIMD level avx2+fma (GFLOP/s)\n\n\
             f32 — one core's measured FMA peak: 100.0 GFLOP/s (2 threads available)\n\
             tanh: 4.00 elements/ns (1 thread, 40,960 elements)\n\
             divide: 6.49 values/ns (1 thread, 40,960 values: 1/x)\n\
             square root: 5.41 values/ns (1 thread, 40,960 values: √x)\n\
             f64 — one core's measured FMA peak: 50.0 GFLOP/s (2 threads available)\n\
             divide: 2.07 values/ns (1 thread, 40,960 values: 1/x)\n",
        );
        let got: Vec<(&str, f64, &str)> = run
            .figures
            .iter()
            .map(|f| (f.id.as_deref().unwrap_or(""), f.median, f.unit))
            .collect();
        assert_eq!(
            got,
            [
                ("tanh.f32", 4.0, "values/ns"),
                ("divide.f32", 6.49, "values/ns"),
                ("sqrt.f32", 5.41, "values/ns"),
                ("divide.f64", 2.07, "values/ns"),
            ]
        );
        assert_eq!(
            run.figures[2].name,
            "kernels/square root f32 (1 thread, 40,960 values)"
        );
    }

    #[test]
    fn help_and_bad_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for help in [
            &[][..],
            &["--help"],
            &["bench", "--help"],
            &["bench", "-h"],
            &["help"],
        ] {
            assert_eq!(parse_args(&args(help)), Ok(Task::Help), "{help:?}");
        }
        let Ok(Task::Bench {
            compare,
            vs_jax,
            history,
        }) = parse_args(&args(&["bench", "--vs-jax", "--history", "h.jsonl"]))
        else {
            panic!("a bench");
        };
        assert_eq!(
            (compare, vs_jax, history),
            (false, true, PathBuf::from("h.jsonl"))
        );
        assert!(
            parse_args(&args(&["bench", "--compar"]))
                .unwrap_err()
                .contains("--compar")
        );
        assert!(parse_args(&args(&["bench", "--history"])).is_err());
        assert!(parse_args(&args(&["bnech"])).unwrap_err().contains("bnech"));
        assert_eq!(
            parse_args(&args(&[
                "compare", "6330b95", "168fa30", "--simd", "avx2+fma"
            ])),
            Ok(Task::Compare {
                old: "6330b95".into(),
                new: "168fa30".into(),
                simd: Some("avx2+fma".into()),
                history: workspace_root().join("bench/history.jsonl"),
            })
        );
        assert!(
            parse_args(&args(&["compare", "6330b95"]))
                .unwrap_err()
                .contains("two commits")
        );
        assert_eq!(
            parse_args(&args(&["compare", "a", "b", "--smid"])),
            Err(r#"unknown argument "--smid" for compare"#.to_owned())
        );
        assert_eq!(
            parse_args(&args(&["ab", "a", "--pair", "b"])),
            Err(r#"unknown argument "--pair" for ab"#.to_owned())
        );
        let Ok(Task::Ab {
            old,
            new,
            benches,
            filter,
            pairs,
        }) = parse_args(&args(&["ab", "HEAD~1", "HEAD", "--filter", "f64"]))
        else {
            panic!("an ab");
        };
        let names: Vec<&str> = benches.iter().map(|b| b.name).collect();
        assert_eq!(
            (old.as_str(), new.as_str(), names, filter, pairs),
            (
                "HEAD~1",
                "HEAD",
                vec!["seed_step", "workloads"],
                Some("f64".into()),
                10
            )
        );
        let Ok(Task::Ab { benches, pairs, .. }) = parse_args(&args(&[
            "ab", "a", "b", "--bench", "kernels", "--pairs", "3",
        ])) else {
            panic!("an ab");
        };
        assert_eq!((benches[0].name, benches.len(), pairs), ("kernels", 1, 3));
        assert!(
            parse_args(&args(&["ab", "a"]))
                .unwrap_err()
                .contains("two commits")
        );
        assert!(parse_args(&args(&["ab", "a", "b", "--pairs", "0"])).is_err());
        assert!(
            parse_args(&args(&["ab", "a", "b", "--bench", "gflop"]))
                .unwrap_err()
                .contains("unknown bench")
        );
    }

    /// `compare` picks each commit's record of one CPU and SIMD level and reads its changes with
    /// the peaks taken out.
    #[test]
    fn compares_two_stored_records_at_equal_peak() {
        let line = |commit: &str, simd: &str, peak: f64, gflops: f64, us: f64| {
            format!(
                r#"{{"commit":"{commit}","cpu":"Xeon","simd":"{simd}","peak_gflops":{{"f32":{peak}}},"figures":[{{"name":"gemm f32","unit":"GFLOP/s","median":{gflops},"min":{gflops},"max":{gflops}}},{{"name":"step f32","unit":"µs","median":{us},"min":{us},"max":{us}}}]}}"#
            )
        };
        let history = [
            line("aaaa111", "avx512f+fma", 200.0, 180.0, 100.0),
            line("aaaa111", "avx2+fma", 100.0, 90.0, 200.0),
            // A host 10 % slower: the product as fast for its peak, the step 20 % slower.
            line("bbbb222", "avx512f+fma", 180.0, 162.0, 100.0 * 1.2 / 0.9),
            line("bbbb222", "avx2+fma", 100.0, 90.0, 200.0),
        ]
        .join("\n");
        let native = compare_table(&history, "aaaa", "bbbb", Some("avx512f+fma")).unwrap();
        let row = |table: &str, name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_owned()
        };
        let product = row(&native, "gemm f32");
        assert!(
            product.contains("-10.0 %") && product.contains("+0.0 %"),
            "{product}"
        );
        assert!(!product.contains("beyond noise"), "{product}");
        let step = row(&native, "step f32");
        assert!(
            step.contains("+33.3 %") && step.contains("+20.0 %"),
            "{step}"
        );
        assert!(step.contains("beyond noise"), "{step}");
        // The newest record of `bbbb` is the AVX2 one, compared with `aaaa`'s AVX2 record.
        let avx2 = compare_table(&history, "aaaa", "bbbb", None).unwrap();
        assert!(avx2.contains("SIMD level avx2+fma"), "{avx2}");
        assert!(
            avx2.contains("(GFLOP/s): f32 100 against f32 100"),
            "{avx2}"
        );
        assert!(row(&avx2, "step f32").contains("+0.0 %"));
        assert!(
            compare_table(&history, "cccc", "bbbb", None)
                .unwrap_err()
                .contains("cccc")
        );
        assert!(compare_table(&history, "aaaa", "bbbb", Some("sse2")).is_err());
    }

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
