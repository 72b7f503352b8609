//! The xtask issue's workloads, per training step: the scale workload (E = 64, N = 4,096,
//! 1→64→64→1 tanh, batch 256), the wide workload (E = 16, N = 80, hidden 128), the seed's VI
//! step, and scaling curves over the ensemble size and the hidden width (drawn to
//! `target/flock-figures/scaling.png`). Each figure is the median of 11 batches after a warm-up.
//!
//! Output lines `bench <id> <median µs> <min µs> <max µs> <name>` and `beside <id> <median>
//! <min> <max>` are what `cargo xtask bench` reads: the latter gives each step in GFLOP of the
//! FMA peak measured beside it, batch by batch (`Timing::peak_gflop`), which over the step's
//! product FLOPs is its multiple of its floor whatever the host's speed did meanwhile — the seed
//! step's too, whose times come from the `seed_step` bench.
//! Run: `cargo bench -p flock-runner --bench workloads`; an argument (`-- wide_step.f64`) keeps
//! only the figures whose id contains it, and the curves are then skipped.

use std::time::{Duration, Instant};

use flock_autograd::*;
use flock_ensemble::model::Guide;
use flock_ensemble::{MemberRng, ParallelLogJoint, Sampling, standard_normal};
use flock_kernels::Element;
use flock_kernels::peak::fma_peak_loop;
use flock_metrics::{Series, line_chart_svg};
use flock_optim::{AdamConfig, adam};
use flock_runner::app::patterns::seed_model;
use flock_runner::app::seed::seed_log_joint;
use flock_runner::app::write_figure;
use flock_runner::map::EnsembleMAP;
use flock_runner::train::{RunOptions, Training};
use flock_runner::vi::{EnsembleVI, ViConfig};

/// One figure: seconds per call, and the same calls in FLOPs of the FMA peak measured beside
/// them — each as (median, min, max) over 11 batches.
#[derive(Clone, Copy)]
struct Timing {
    seconds: (f64, f64, f64),
    /// Per batch, its seconds per call times the FLOP/s of `fma_peak_loop` run right after it on
    /// as many threads as the call used (GFLOP): the call's time in units of the machine's
    /// speed in that moment, which a shared host's changes of speed between batches leave
    /// alone. Over a step's matrix-product FLOPs it is the step's multiple of its floor.
    peak_gflop: (f64, f64, f64),
}

impl Timing {
    /// Every figure divided by `n` (a run of `n` steps timed as one call).
    fn per(self, n: f64) -> Self {
        let per = |(a, b, c): (f64, f64, f64)| (a / n, b / n, c / n);
        Timing {
            seconds: per(self.seconds),
            peak_gflop: per(self.peak_gflop),
        }
    }
}

/// (median, min, max) of 11 values.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[5], values[0], values[10])
}

/// The FLOP/s of `T`'s FMA peak loop on `threads` threads at once, `calls` calls each.
fn peak_rate<T: Element>(threads: usize, calls: u64) -> f64 {
    let run = || {
        let (mut peak_loop, flops) = fma_peak_loop::<T>();
        for _ in 0..calls {
            peak_loop();
        }
        flops * calls as f64
    };
    let start = Instant::now();
    let flops: f64 = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(run)).collect();
        run() + others.into_iter().map(|t| t.join().unwrap()).sum::<f64>()
    });
    flops / start.elapsed().as_secs_f64()
}

/// [`Timing`] of `f` on `threads` threads in `T`: 11 batches of ≈`budget` seconds each, each
/// followed by ≈10 ms of the FMA peak loop on `threads` threads (1 ms after the batch).
fn time<T: Element>(mut f: impl FnMut(), budget: f64, threads: usize) -> Timing {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_secs_f64() < budget {
        f();
        calls += 1;
    }
    let per_batch = ((budget / (start.elapsed().as_secs_f64() / calls as f64)) as u64).max(1);
    let peak_calls = (0.01 * peak_rate::<T>(1, 1) / fma_peak_loop::<T>().1).ceil() as u64;
    let (seconds, peak_gflop): (Vec<f64>, Vec<f64>) = (0..11)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            let seconds = t.elapsed().as_secs_f64() / per_batch as f64;
            // The log-joint's helper threads poll for 0.5 ms after their last block before
            // they park: the peak loop starts once they have, so as not to share a core.
            std::thread::sleep(Duration::from_millis(1));
            (seconds, seconds * peak_rate::<T>(threads, peak_calls) / 1e9)
        })
        .unzip();
    Timing {
        seconds: spread(seconds),
        peak_gflop: spread(peak_gflop),
    }
}

/// [`mlp_step`] for one element type.
type StepFn = fn(usize, usize, usize, usize, usize, f64, Steps) -> Timing;

/// Time per step over ensemble sizes and hidden widths, with the ideal lines.
struct Curves {
    per_member_count: Vec<f64>,
    ideal_members: Vec<f64>,
    per_width: Vec<f64>,
    ideal_width: Vec<f64>,
}

/// Measures the scaling curves of one precision (`step` is [`mlp_step`] for it) and prints the
/// per-member cost from E=4 to E=256.
fn scaling_curves(sizes: &[f64], widths: &[f64], precision: &str, step: StepFn) -> Curves {
    let per_member_count: Vec<f64> = sizes
        .iter()
        .map(|&e| {
            report(
                &format!("scaling_members.{precision}.e{e}"),
                &format!("scaling members E={e} seed MLP B=80 {precision}"),
                || step(e as usize, 32, 80, 80, 1, 0.03, Steps::One),
            )
            .expect("the curves are drawn without a filter")
        })
        .collect();
    let ideal_members = sizes
        .iter()
        .map(|&e| per_member_count[2] * e / 16.0)
        .collect();
    let per_width: Vec<f64> = widths
        .iter()
        .map(|&w| {
            report(
                &format!("scaling_width.{precision}.w{w}"),
                &format!("scaling width {w} E=16 B=80 {precision}"),
                || step(16, w as usize, 80, 80, 1, 0.03, Steps::One),
            )
            .expect("the curves are drawn without a filter")
        })
        .collect();
    // Work grows with width² (the hidden product) — the ideal line is quadratic from width 64.
    let ideal_width = widths
        .iter()
        .map(|&w| per_width[2] * (w / 64.0).powi(2))
        .collect();
    let per_member: Vec<f64> = per_member_count
        .iter()
        .zip(sizes)
        .map(|(t, e)| t / e)
        .collect();
    println!(
        "per-member cost {precision} E=4 → E=256: {:.2} µs → {:.2} µs (× {:.2})",
        per_member[1],
        per_member[4],
        per_member[4] / per_member[1]
    );
    Curves {
        per_member_count,
        ideal_members,
        per_width,
        ideal_width,
    }
}

/// Prints `bench <id> <median µs> <min µs> <max µs> <name>` (the line `cargo xtask bench`
/// reads: `id` is the figure's structured key, e.g. `scale_step.f32.t2`, `name` its description).
/// The figure-id filter of the command line (`cargo bench` passes `--bench`; any other argument).
fn filter() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with("--"))
}

/// Measures (`measure`) and prints the figure `id` unless the filter leaves it out — its time
/// and its `beside` line (see [`report_beside`]); its median in µs.
fn report(id: &str, name: &str, measure: impl FnOnce() -> Timing) -> Option<f64> {
    let timing = report_beside(id, measure)?;
    let (median, min, max) = timing.seconds;
    println!(
        "bench {id} {:.3} {:.3} {:.3} {name}",
        median * 1e6,
        min * 1e6,
        max * 1e6
    );
    Some(median * 1e6)
}

/// Measures (`measure`) and prints only `beside <id> <median> <min> <max>`, the figure's time in
/// GFLOP of the FMA peak measured beside it ([`Timing::peak_gflop`]), unless the filter leaves
/// `id` out. (The seed step's own times come from the `seed_step` bench.)
fn report_beside(id: &str, measure: impl FnOnce() -> Timing) -> Option<Timing> {
    if filter().is_some_and(|f| !id.contains(&f)) {
        return None;
    }
    let timing = measure();
    let (median, min, max) = timing.peak_gflop;
    println!("beside {id} {median:.6} {min:.6} {max:.6}");
    Some(timing)
}

/// Steps of each timed run of the wide workload's `wide_run` figures.
const WIDE_RUN: usize = 64;

/// How [`mlp_step`] takes its steps.
#[derive(Clone, Copy)]
enum Steps {
    /// One `EnsembleMAP::update` a call: one step of every member together, on the whole data.
    One,
    /// Whole fused runs of this many steps through `EnsembleMAP::train` with the default options
    /// — batch selection included, members together or apart as `StepOrder::Auto` decides — as
    /// `EnsembleMAP.run` does them and as JAX's `lax.scan` is timed; per step = run / steps.
    /// (Each run starts a fresh `Training` at step 0 from the state the last one left:
    /// continuing one would replay every earlier step's batch draws to reach its place in the
    /// stream, a cost that grows with the step.)
    Runs(usize),
}

/// Seconds per `EnsembleMAP` step for an MLP `1→width→width→1` on `rows` examples in batches of
/// `batch`, taken as `steps` says.
#[allow(clippy::too_many_arguments)]
fn mlp_step<T: Element>(
    members: usize,
    width: usize,
    rows: usize,
    batch: usize,
    threads: usize,
    budget: f64,
    steps: Steps,
) -> Timing {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, width, 2, Activation::Tanh),
    )
    .unwrap();
    let init = mlp.member_init::<T, MemberRng>(&layout);
    let parts = (0..threads)
        .map(|_| seed_log_joint::<T>(&layout, mlp.clone()))
        .collect();
    let mut map = EnsembleMAP::new(
        ParallelLogJoint::new(parts),
        init,
        adam(1e-3, AdamConfig::default()).unwrap(),
        members,
        1.0,
    )
    .unwrap();
    let x: Vec<T> = (0..rows)
        .map(|i| T::from_f64(-10.0 + 20.0 * i as f64 / rows as f64))
        .collect();
    let y: Vec<T> = x.iter().map(|v| T::from_f64(v.to_f64().sin())).collect();
    let data = Batch::new(&x, &y, rows).unwrap();
    let mut state = map.init(0).unwrap();
    match steps {
        Steps::One => {
            assert!(batch >= rows, "one update a call takes the whole data");
            time::<T>(
                || {
                    map.update(&mut state, data, 1.0).unwrap();
                },
                budget,
                threads,
            )
        }
        Steps::Runs(steps) => {
            let mut state = Some(state);
            time::<T>(
                || {
                    let mut training = Training::new(state.take().expect("put back"));
                    map.train(
                        &mut training,
                        1,
                        steps,
                        data,
                        RunOptions {
                            batch_size: (batch < rows).then_some(batch),
                            sampling: Sampling::WithReplacement,
                            ..RunOptions::default()
                        },
                    )
                    .unwrap();
                    state = Some(training.state);
                },
                budget,
                threads,
            )
            .per(steps as f64)
        }
    }
}

/// Seconds per `EnsembleVI` step on the seed problem (E = 16, one particle).
fn vi_step<T: Element>(threads: usize, guide: Guide) -> Timing {
    let x: Vec<T> = (0..80)
        .map(|i| T::from_f64(-10.0 + 20.0 * i as f64 / 80.0))
        .collect();
    let y: Vec<T> = x
        .iter()
        .map(|v| T::from_f64(flock_runner::app::seed::sinc(v.to_f64())))
        .collect();
    let data = Batch::new(&x, &y, 80).unwrap();
    let size = 32 + 32 + 32 * 32 + 32 + 32 + 1;
    let loc_init = move |rng: &mut MemberRng| {
        (0..size)
            .map(|_| T::from_f64(0.5 * standard_normal(rng)))
            .collect()
    };
    let mut vi = EnsembleVI::new(
        seed_model,
        data,
        loc_init,
        adam(5e-3, AdamConfig::default()).unwrap(),
        ViConfig {
            threads,
            guide,
            ..ViConfig::default()
        },
    )
    .unwrap();
    let mut state = vi.init(0).unwrap();
    time::<T>(
        || {
            vi.update(&mut state, data, 1.0).unwrap();
        },
        0.05,
        threads,
    )
}

fn main() {
    // The seed step (the `seed_step` bench's E = 16, N = 80, 1→32→32→1, Adam) beside the peak.
    for threads in [1, 2] {
        report_beside(&format!("seed_step.f32.t{threads}"), || {
            mlp_step::<f32>(16, 32, 80, 80, threads, 0.03, Steps::One)
        });
        report_beside(&format!("seed_step.f64.t{threads}"), || {
            mlp_step::<f64>(16, 32, 80, 80, threads, 0.03, Steps::One)
        });
    }
    // Scale and wide workloads.
    for threads in [1, 2] {
        let f32_scale = report(
            &format!("scale_step.f32.t{threads}"),
            &format!("scale workload E=64 N=4096 B=256 1-64-64-1 f32 {threads} thread(s)"),
            || mlp_step::<f32>(64, 64, 4096, 256, threads, 0.05, Steps::Runs(10)),
        );
        if let Some(f32_scale) = f32_scale {
            println!("  = {:.2} M member-samples/s", 64.0 * 256.0 / f32_scale);
        }
        report(
            &format!("scale_step.f64.t{threads}"),
            &format!("scale workload E=64 N=4096 B=256 1-64-64-1 f64 {threads} thread(s)"),
            || mlp_step::<f64>(64, 64, 4096, 256, threads, 0.05, Steps::Runs(10)),
        );
    }
    // The wide workload and the seed's VI step (1 particle), members on 1 and 2 threads (the
    // one-thread names carry no suffix, as in earlier records of the history file).
    for threads in [1, 2] {
        let suffix = if threads == 1 {
            String::new()
        } else {
            format!(" {threads} threads")
        };
        report(
            &format!("wide_step.f32.t{threads}"),
            &format!("wide workload E=16 N=80 hidden 128 f32{suffix}"),
            || mlp_step::<f32>(16, 128, 80, 80, threads, 0.03, Steps::One),
        );
        report(
            &format!("wide_step.f64.t{threads}"),
            &format!("wide workload E=16 N=80 hidden 128 f64{suffix}"),
            || mlp_step::<f64>(16, 128, 80, 80, threads, 0.03, Steps::One),
        );
        // The same steps as a training run takes them (`StepOrder::Auto`: with one member a call,
        // apart on two threads), against which JAX's `lax.scan` runs compare.
        report(
            &format!("wide_run.f32.t{threads}"),
            &format!("wide workload E=16 N=80 hidden 128 f32{suffix}, runs of {WIDE_RUN} steps"),
            || mlp_step::<f32>(16, 128, 80, 80, threads, 0.3, Steps::Runs(WIDE_RUN)),
        );
        report(
            &format!("wide_run.f64.t{threads}"),
            &format!("wide workload E=16 N=80 hidden 128 f64{suffix}, runs of {WIDE_RUN} steps"),
            || mlp_step::<f64>(16, 128, 80, 80, threads, 0.3, Steps::Runs(WIDE_RUN)),
        );
        report(
            &format!("vi_step.f32.t{threads}"),
            &format!("VI step seed model E=16 1 particle f32{suffix}"),
            || vi_step::<f32>(threads, Guide::MeanField),
        );
        report(
            &format!("vi_step.f64.t{threads}"),
            &format!("VI step seed model E=16 1 particle f64{suffix}"),
            || vi_step::<f64>(threads, Guide::MeanField),
        );
    }
    // The low-rank guide's cost (rank 4: the guide has 6 values per model parameter, not 2).
    report(
        "vi_step_rank4.f64.t2",
        "VI step seed model E=16 1 particle low-rank 4 f64 2 threads",
        || vi_step::<f64>(2, Guide::LowRank { rank: 4 }),
    );

    if filter().is_some() {
        return;
    }
    // Scaling curves (one thread, seed MLP unless noted), f32 then f64.
    let sizes = [1.0, 4.0, 16.0, 64.0, 256.0];
    let widths = [16.0, 32.0, 64.0, 128.0, 256.0];
    let f32_curves = scaling_curves(&sizes, &widths, "f32", mlp_step::<f32>);
    let f64_curves = scaling_curves(&sizes, &widths, "f64", mlp_step::<f64>);
    let chart = |title: &str,
                 x_label: &str,
                 xs: &[f64],
                 ideal: &str,
                 pick: fn(&Curves) -> (&[f64], &[f64])| {
        let ((m32, i32_), (m64, i64_)) = (pick(&f32_curves), pick(&f64_curves));
        let labels = [
            "measured f32".to_owned(),
            format!("ideal f32 ({ideal})"),
            "measured f64".to_owned(),
            format!("ideal f64 ({ideal})"),
        ];
        let series: Vec<Series<'_>> = labels
            .iter()
            .zip([m32, i32_, m64, i64_])
            .zip([false, true, false, true])
            .map(|((label, values), dashed)| Series {
                label,
                values,
                dashed,
            })
            .collect();
        line_chart_svg(title, x_label, "µs per step", xs, &series, true)
    };
    let members_svg = chart(
        "time per step vs ensemble size (seed MLP, B=80, 1 thread)",
        "members E",
        &sizes,
        "linear from E=16",
        |c| (&c.per_member_count, &c.ideal_members),
    );
    let width_svg = chart(
        "time per step vs hidden width (E=16, B=80, 1 thread)",
        "hidden width",
        &widths,
        "quadratic from width 64",
        |c| (&c.per_width, &c.ideal_width),
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/flock-figures");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, svg) in [
        ("scaling_members.png", members_svg),
        ("scaling_width.png", width_svg),
    ] {
        let path = dir.join(name);
        write_figure(&path, svg).unwrap();
        println!("figure: {}", path.display());
    }
}
