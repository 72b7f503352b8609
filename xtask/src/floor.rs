//! Each step workload's floor: its matrix products at the run's measured FMA peak.

use crate::figures::{Beside, Figure};

/// Floating-point operations of one training step's matrix products for `members` MLPs with
/// layer widths `widths` on `batch` rows: per layer `in → out` the forward `X·Wᵀ` and the weight
/// gradient `dYᵀ·X`, `2·batch·in·out` each, and the input gradient `dY·W` for every layer but
/// the first (the data needs none).
pub(crate) fn mlp_product_flops(members: usize, batch: usize, widths: &[usize]) -> f64 {
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
pub(crate) const STEP_WORKLOADS: [(&str, usize, usize, &[usize]); 5] = [
    ("seed_step", 16, 80, &[1, 32, 32, 1]),
    ("vi_step", 16, 80, &[1, 32, 32, 1]),
    ("scale_step", 64, 256, &[1, 64, 64, 1]),
    ("wide_step", 16, 80, &[1, 128, 128, 1]),
    ("wide_run", 16, 80, &[1, 128, 128, 1]),
];

/// Each step workload's floor in µs — its products at one core's measured peak on every thread
/// it was given — keyed by figure id (`seed_step.f32.t2`).
pub(crate) fn floors(figures: &[Figure], peaks: &[(&'static str, f64)]) -> Vec<(String, f64)> {
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

/// Each step workload's multiple of its floor from its [`Beside`] figures — its time in FLOPs of
/// the FMA peak measured beside it over its products' FLOPs — as figures `<id>.beside` in `×`
/// (e.g. `seed_step.f32.t2.beside`): the first reading of a step against its floor that a
/// change of the host's speed between the run's start and the step does not move.
pub(crate) fn floors_beside(beside: &[Beside]) -> Vec<Figure> {
    beside
        .iter()
        .filter_map(|b| {
            let workload = b.id.split('.').next()?;
            let (_, members, batch, widths) = STEP_WORKLOADS.iter().find(|w| w.0 == workload)?;
            let flops = mlp_product_flops(*members, *batch, widths) / 1e9;
            Some(Figure {
                id: Some(format!("{}.beside", b.id)),
                name: format!(
                    "runner/{} × its floor (the FMA peak measured beside it)",
                    b.id
                ),
                unit: "×",
                median: b.median / flops,
                min: b.min / flops,
                max: b.max / flops,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::parse_gflops;

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
    fn floors_beside_divide_the_steps_peak_flops_by_their_products() {
        let seed = mlp_product_flops(16, 80, &[1, 32, 32, 1]) / 1e9;
        let beside = |id: &str| Beside {
            id: id.into(),
            median: 2.0 * seed,
            min: 1.5 * seed,
            max: 3.0 * seed,
        };
        let got = floors_beside(&[beside("seed_step.f64.t2"), beside("scaling_members.f32.e4")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id.as_deref(), Some("seed_step.f64.t2.beside"));
        assert_eq!((got[0].median, got[0].min, got[0].max), (2.0, 1.5, 3.0));
        assert_eq!(got[0].unit, "×");
        // Its id has four parts: the µs floors leave it alone.
        assert!(floors(&got, &[("f64", 50.0)]).is_empty());
    }
}
