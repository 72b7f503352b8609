//! The benchmarks' outputs read into figures — one reader of each format (divan's tables, the
//! `gflops` bench's table, the `bench <id> …` lines, the Adam bench) for `bench` and `ab` alike.

/// One measured figure.
#[derive(Clone, Debug)]
pub(crate) struct Figure {
    /// A structured key (`workload.precision.threads`, e.g. `seed_step.f32.t2`) for figures that
    /// other tables refer to; names are descriptions and may be reworded.
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) unit: &'static str,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// A duration like `196.3 µs`, `1.2 ms`, `20 ns` or `1.5 s`, in microseconds.
pub(crate) fn micros(text: &str) -> Option<f64> {
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
pub(crate) fn parse_divan(prefix: &str, output: &str) -> Vec<Figure> {
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
pub(crate) struct GflopsRun {
    pub(crate) figures: Vec<Figure>,
    pub(crate) simd: String,
    /// GFLOP/s of one core, `(precision, peak)`.
    pub(crate) peaks: Vec<(&'static str, f64)>,
}

/// The per-value rates the kernels' table ends each precision with: line prefix, figure id and
/// name (`tanh: 3.94 elements/ns …` → `tanh.f32`, `kernels/tanh f32 …`). The divider's rates
/// are the limit of the passes that need a quotient or a square root per value (tanh, Adam).
pub(crate) const RATE_LINES: [(&str, &str, &str); 3] = [
    ("tanh: ", "tanh", "tanh"),
    ("divide: ", "divide", "divide 1/x"),
    ("square root: ", "sqrt", "square root"),
];

/// The kernels' GFLOP/s table: `f32 — one core's measured FMA peak: 116.9 GFLOP/s …`, then
/// `shape … 1 thread % peak all threads % peak` lines, then the per-value rates
/// ([`RATE_LINES`]).
pub(crate) fn parse_gflops(output: &str) -> GflopsRun {
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

/// The Adam bench's lines: `adam step f32  E=16  P=1153   update_and_apply   14.42 µs  0.782 ns
/// per parameter …`; the name is every word before the time (the variant included: the fused
/// `update_and_apply` and `update, apply` are two figures).
pub(crate) fn parse_adam(output: &str) -> Vec<Figure> {
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
pub(crate) fn parse_bench_lines(prefix: &str, output: &str) -> Vec<Figure> {
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

/// A step's time in GFLOP of the FMA peak measured beside it, batch by batch: the workloads
/// bench's `beside <id> <median> <min> <max>` lines.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Beside {
    pub(crate) id: String,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Beside {
    /// As a figure of its own (`<prefix>/<id> beside the peak`, unit `GFLOP`: a time, lower is
    /// faster), for `ab` to compare like the others by name — without an id, which the recorded
    /// multiple of the floor (`<id>.beside`, [`crate::floor::floors_beside`]) holds.
    pub(crate) fn figure(&self, prefix: &str) -> Figure {
        Figure {
            id: None,
            name: format!("{prefix}/{} beside the peak", self.id),
            unit: "GFLOP",
            median: self.median,
            min: self.min,
            max: self.max,
        }
    }
}

/// Lines `beside <id> <median> <min> <max>` (the workloads bench).
pub(crate) fn parse_beside_lines(output: &str) -> Vec<Beside> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("beside "))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let [id, median, min, max] = words[..] else {
                return None;
            };
            Some(Beside {
                id: id.to_owned(),
                median: median.parse().ok()?,
                min: min.parse().ok()?,
                max: max.parse().ok()?,
            })
        })
        .collect()
}

/// The seed-step bench's figures (`runner/seed_step/<precision>/<threads>`) get their ids
/// (`seed_step.<precision>.t<threads>`).
pub(crate) fn with_seed_step_ids(mut figures: Vec<Figure>) -> Vec<Figure> {
    for f in &mut figures {
        let parts: Vec<&str> = f.name.split('/').collect();
        if let ["runner", "seed_step", precision, threads] = parts[..] {
            f.id = Some(format!("seed_step.{precision}.t{threads}"));
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::change_at_equal_peak;

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
    fn parses_beside_lines() {
        let b = parse_beside_lines(
            "beside seed_step.f32.t2 16.5 15.25 18.0\nbench x 1 1 1 x\nbeside bad 1 2\n",
        );
        assert_eq!(
            b,
            vec![Beside {
                id: "seed_step.f32.t2".into(),
                median: 16.5,
                min: 15.25,
                max: 18.0
            }]
        );
        let f = b[0].figure("workloads");
        assert_eq!(f.name, "workloads/seed_step.f32.t2 beside the peak");
        assert_eq!(
            (f.unit, f.median, f.min, f.max),
            ("GFLOP", 16.5, 15.25, 18.0)
        );
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
        // A multiple of the floor read beside its peak, likewise.
        assert_eq!(change_at_equal_peak("×", 3.0, 2.0, 0.8), 0.5);
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
}
