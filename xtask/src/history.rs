//! The records of `bench/history.jsonl`: writing one, reading them back, and comparing two
//! (as measured and at equal peak).

use std::fmt::Write as _;
use std::path::Path;

use crate::figures::{Figure, GflopsRun};
use crate::run;

pub(crate) fn json_string(s: &str) -> String {
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
pub(crate) fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| cpu_from_cpuinfo(&t))
        .unwrap_or_else(|_| "unknown".into())
}

/// The model name with the family and model numbers: a virtual machine may call a Zen 3 and a
/// Zen 4 both just "AMD EPYC" (family 25, models 1 and 17), and their records must not be compared.
pub(crate) fn cpu_from_cpuinfo(cpuinfo: &str) -> String {
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
pub(crate) fn json_numbers<'a>(entries: impl IntoIterator<Item = (&'a str, f64)>) -> String {
    let body: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{}:{v}", json_string(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

pub(crate) fn record(
    commit: &str,
    figures: &[Figure],
    kernels: &GflopsRun,
    floors: &[(String, f64)],
    jax_env: Option<&str>,
) -> String {
    let simd = &kernels.simd;
    let date = run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    let cpu = cpu_name();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!(
        "{{\"commit\":{},\"date\":{},\"cpu\":{},\"simd\":{},\"threads\":{threads},",
        json_string(commit),
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
pub(crate) fn read_json_string(text: &str) -> String {
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
pub(crate) struct Recorded {
    pub(crate) name: String,
    pub(crate) unit: String,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// Every figure of a history record (a tiny reader for the records this file writes).
pub(crate) fn read_record(line: &str) -> Vec<Recorded> {
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
pub(crate) fn record_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(&format!("\"{key}\":\""))
        .nth(1)?
        .split('"')
        .next()
}

/// `(precision, GFLOP/s)` of a history record's `peak_gflops` (one core's measured FMA peak per
/// precision in that run); empty for records without it.
pub(crate) fn record_peaks(line: &str) -> Vec<(String, f64)> {
    record_numbers(line, "peak_gflops")
}

/// The entries of a number-valued object field of a history record (`"floor_us":{"a":1.5}` →
/// `[("a", 1.5)]`); empty for records without it.
pub(crate) fn record_numbers(line: &str, key: &str) -> Vec<(String, f64)> {
    let Some(body) = line
        .split(&format!("\"{key}\":{{"))
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
pub(crate) fn peak_speedup(
    name: &str,
    now: &[(String, f64)],
    before: &[(String, f64)],
) -> Option<f64> {
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
pub(crate) fn change_at_equal_peak(unit: &str, now: f64, before: f64, speedup: f64) -> f64 {
    let expected = if unit == "% of peak" || unit == "×" {
        // Already a share or a multiple of the peak's work (measured beside it).
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
pub(crate) fn comparison(
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
pub(crate) fn compare_records(
    history: &Path,
    old: &str,
    new: &str,
    simd: Option<&str>,
) -> Result<(), String> {
    let text =
        std::fs::read_to_string(history).map_err(|e| format!("{}: {e}", history.display()))?;
    print!("{}", compare_table(&text, old, new, simd)?);
    Ok(())
}

/// `f32 113.7, f64 57.6`.
pub(crate) fn list_peaks(peaks: &[(String, f64)]) -> String {
    let listed: Vec<String> = peaks.iter().map(|(p, v)| format!("{p} {v}")).collect();
    listed.join(", ")
}

/// The table of [`compare_records`] for the history text `history`.
pub(crate) fn compare_table(
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
pub(crate) fn previous_record(history: &str, cpu: &str, simd: &str) -> Option<String> {
    last_record(history, None, Some(cpu), Some(simd)).map(str::to_owned)
}

/// The last record of `history` whose commit starts with `commit` (a non-empty prefix) and that
/// was made on `cpu` at SIMD level `simd`, each condition only where given.
pub(crate) fn last_record<'h>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let line = record("abc", &figures, &kernels, &floors, Some("jax==0.10.2"));
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
}
