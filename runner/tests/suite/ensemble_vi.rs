//! `EnsembleVI`: reproducible runs, the predictive's shape and order, configuration errors.

use flock_autograd::{AutogradError, Batch, Var};
use flock_ensemble::model::{Guide, KlEstimator, ModelContext, normal};
use flock_optim::{AdamConfig, adam, cosine_decay_schedule};
use flock_runner::RunError;
use flock_runner::train::RunOptions;
use flock_runner::vi::{EnsembleVI, ViConfig};

/// y ~ N(w·x + b, 0.2), w ~ N(0, 1), b ~ N(0, 1).
fn line(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
    let w = m.sample("w", normal(0.0, 1.0), [1, 1])?;
    let b = m.sample("b", normal(0.0, 1.0), [1])?;
    let g = m.graph();
    let f = g.matmul(x, w)?;
    let f = g.add(f, b)?;
    let f = g.squeeze_last(f)?;
    m.observe("y", normal(f, 0.2), y)
}

fn data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..30).map(|i| i as f64 / 15.0 - 1.0).collect();
    let y = x
        .iter()
        .enumerate()
        .map(|(i, v)| 1.5 * v - 0.3 + 0.1 * ((i * 7 % 5) as f64 - 2.0))
        .collect();
    (x, y)
}

fn runner(
    config: ViConfig,
) -> Result<
    EnsembleVI<f64, impl flock_ensemble::model::Model<f64> + Clone + Send, flock_optim::Adam>,
    RunError<f64>,
> {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    EnsembleVI::new(
        line,
        batch,
        |_rng: &mut flock_ensemble::MemberRng| vec![0.0, 0.0],
        adam(2e-2, AdamConfig::default()).unwrap(),
        config,
    )
}

/// Members split over threads (blocks of at least 4) train to the same bits as on one thread:
/// each member's noise stream follows the member, not the block.
#[test]
fn threads_change_no_bits() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let run = |members: usize, threads: usize| {
        let config = ViConfig {
            ensemble_size: members,
            threads,
            ..ViConfig::default()
        };
        let mut vi = runner(config).unwrap();
        let result = vi.run(3, 150, batch, RunOptions::default()).unwrap();
        (bits(result.params.values()), bits(&result.losses))
    };
    let one = run(12, 1);
    assert_eq!(one, run(12, 2));
    assert_eq!(one, run(12, 3));
    // 40 members: one thread evaluates them 16 at a time (three calls of the same guide), three
    // threads 14 per block in one call each; member e's noise stream is the same either way.
    let one = run(40, 1);
    assert_eq!(one, run(40, 2));
    assert_eq!(one, run(40, 3));
    // And with a low-rank guide (its z drawn from the same member streams).
    let low_rank = |threads: usize| {
        let config = ViConfig {
            ensemble_size: 12,
            threads,
            guide: Guide::LowRank { rank: 1 },
            ..ViConfig::default()
        };
        let mut vi = runner(config).unwrap();
        let result = vi.run(3, 150, batch, RunOptions::default()).unwrap();
        (bits(result.params.values()), bits(&result.losses))
    };
    let one = low_rank(1);
    assert_eq!(one, low_rank(2));
    assert_eq!(one, low_rank(3));
    assert!(matches!(
        runner(ViConfig {
            threads: 0,
            ..ViConfig::default()
        }),
        Err(RunError::Ensemble(_))
    ));
}

#[test]
fn runs_are_reproducible_and_fit() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let config = ViConfig {
        ensemble_size: 3,
        num_particles: 2,
        ..ViConfig::default()
    };
    let mut vi = runner(config).unwrap();
    let a = vi.run(5, 600, batch, RunOptions::default()).unwrap();
    let b = vi.run(5, 600, batch, RunOptions::default()).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a.params.values()), bits(b.params.values()));
    for e in 0..3 {
        // [w.loc, w.rho, b.loc, b.rho]
        let p = a.params.member(e);
        assert!(
            (p[0] - 1.5).abs() < 0.15 && (p[2] + 0.3).abs() < 0.1,
            "member {e}: {p:?}"
        );
    }
    let c = vi.run(6, 600, batch, RunOptions::default()).unwrap();
    assert_ne!(bits(a.params.values()), bits(c.params.values()));

    // The predictive: [E·S, N], member-major, draws around each member's mean line.
    let x_new = [0.0, 1.0];
    let preds = vi
        .predict(
            &a.params,
            |g, x, sites| {
                let f = g.matmul(x, sites[0])?;
                let f = g.add(f, sites[1])?;
                g.squeeze_last(f)
            },
            &x_new,
            2,
            50,
            0,
        )
        .unwrap();
    assert_eq!((preds.members, preds.points), (150, 2));
    for e in 0..3 {
        let draws: Vec<f64> = (0..50)
            .map(|s| preds.values[(e * 50 + s) * 2 + 1])
            .collect();
        let mean = draws.iter().sum::<f64>() / 50.0;
        let p = a.params.member(e);
        assert!((mean - (p[0] + p[2])).abs() < 0.1, "member {e}: {mean}");
    }
}

#[test]
fn bad_configurations_are_named() {
    let err = runner(ViConfig {
        init_scale: 0.0,
        ..ViConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("init_scale"), "{err}");
    let err = runner(ViConfig {
        num_particles: 0,
        ..ViConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("num_particles"), "{err}");
    let err = runner(ViConfig {
        ensemble_size: 0,
        ..ViConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("ensemble_size"), "{err}");
}

/// On a linear-Gaussian model the posterior is Gaussian, so a guide that can hold its full
/// covariance recovers it: with two latents a rank-1 factor plus the diagonal can. The
/// mean-field guide cannot hold the correlation and underestimates the marginal variances.
#[test]
fn a_low_rank_guide_recovers_a_correlated_posterior() {
    // x in [1, 3): w and b are strongly anti-correlated a posteriori.
    let x: Vec<f64> = (0..30).map(|i| 1.0 + i as f64 / 15.0).collect();
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| 1.5 * v - 0.3 + 0.1 * ((i * 7 % 5) as f64 - 2.0))
        .collect();
    let batch = Batch::new(&x, &y, 30).unwrap();
    // Exact posterior covariance: (XᵀX/σ² + I)⁻¹ with X = [x, 1], σ = 0.2.
    let (sxx, sx, n) = (
        x.iter().map(|v| v * v).sum::<f64>(),
        x.iter().sum::<f64>(),
        30.0,
    );
    let (a, b, d) = (sxx / 0.04 + 1.0, sx / 0.04, n / 0.04 + 1.0);
    let det = a * d - b * b;
    let (var_w, cov_wb, var_b) = (d / det, -b / det, a / det);
    let corr = cov_wb / (var_w * var_b).sqrt();
    assert!(
        corr < -0.9,
        "the test needs a strongly correlated posterior: {corr}"
    );

    let fit = |guide: Guide| {
        let config = ViConfig {
            ensemble_size: 2,
            num_particles: 8,
            kl: KlEstimator::Analytic,
            guide,
            ..ViConfig::default()
        };
        let mut vi = EnsembleVI::new(
            line,
            batch,
            |_rng: &mut flock_ensemble::MemberRng| vec![0.0, 0.0],
            // Decaying to 1 % of the rate, so that Adam's jitter does not inflate the variances.
            adam(
                cosine_decay_schedule(5e-2, 10000, 0.01, 1.0).unwrap(),
                AdamConfig::default(),
            )
            .unwrap(),
            config,
        )
        .unwrap();
        let result = vi.run(1, 10000, batch, RunOptions::default()).unwrap();
        (vi, result)
    };
    let softplus = |r: f64| r.max(0.0) + (-r.abs()).exp().ln_1p();
    let (low_vi, low) = fit(Guide::LowRank { rank: 1 });
    for e in 0..2 {
        // [w.loc, w.rho, w.cov_factor, b.loc, b.rho, b.cov_factor]
        let p = low.params.member(e);
        let (sw, sb) = (softplus(p[1]), softplus(p[4]));
        // W = diag(s)·V.
        let (fw, fb) = (sw * p[2], sb * p[5]);
        let (qw, qb, qwb) = (fw * fw + sw * sw, fb * fb + sb * sb, fw * fb);
        let q_corr = qwb / (qw * qb).sqrt();
        println!(
            "member {e}: var w {qw:.3e} (exact {var_w:.3e}), var b {qb:.3e} (exact {var_b:.3e}), \
             corr {q_corr:.3} (exact {corr:.3})"
        );
        assert!(
            (qw / var_w - 1.0).abs() < 0.1,
            "member {e}: var w {qw} vs {var_w}"
        );
        assert!(
            (qb / var_b - 1.0).abs() < 0.1,
            "member {e}: var b {qb} vs {var_b}"
        );
        assert!(
            (q_corr - corr).abs() < 0.01,
            "member {e}: corr {q_corr} vs {corr}"
        );
    }
    // The predictive draws from the same guide: at x = 5, f = 5w + b has variance
    // 25·var w + 10·cov + var b under each member's guide (checked on 4,000 draws; far from the
    // data, where the factor's direction dominates — near x̄ ≈ 2 it cancels).
    let draws = 4000;
    let preds = low_vi
        .predict(
            &low.params,
            |g, x, sites| {
                let f = g.matmul(x, sites[0])?;
                let f = g.add(f, sites[1])?;
                g.squeeze_last(f)
            },
            &[5.0],
            1,
            draws,
            7,
        )
        .unwrap();
    for e in 0..2 {
        let p = low.params.member(e);
        let (sw, sb) = (softplus(p[1]), softplus(p[4]));
        let (fw, fb) = (sw * p[2], sb * p[5]);
        let var_f = 25.0 * (fw * fw + sw * sw) + 10.0 * fw * fb + fb * fb + sb * sb;
        let mean_f = 5.0 * p[0] + p[3];
        let f = &preds.values[e * draws..(e + 1) * draws];
        let mean = f.iter().sum::<f64>() / draws as f64;
        let var = f.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (draws - 1) as f64;
        println!("member {e}: predictive var {var:.3e} (guide {var_f:.3e})");
        assert!(
            (mean - mean_f).abs() < 4.0 * (var_f / draws as f64).sqrt(),
            "member {e}: mean {mean} vs {mean_f}"
        );
        assert!(
            (var / var_f - 1.0).abs() < 0.1,
            "member {e}: var {var} vs {var_f}"
        );
    }
    let (_, mean_field) = fit(Guide::MeanField);
    for e in 0..2 {
        // [w.loc, w.rho, b.loc, b.rho]
        let qw = softplus(mean_field.params.member(e)[1]).powi(2);
        println!("mean-field member {e}: var w {qw:.3e} (exact {var_w:.3e})");
        assert!(
            qw < 0.25 * var_w,
            "member {e}: mean-field var w {qw} vs {var_w}"
        );
    }
}

/// A VI run saved part-way (`save`) and continued in a fresh runner (`restore`, then `train`) gives the bits of an uninterrupted `run`: the checkpoint
/// carries where each member's noise stream stands. Also across thread counts and guides.
#[test]
fn an_interrupted_vi_run_resumes_to_the_same_bits() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let options = |_: usize| RunOptions {
        batch_size: Some(8),
        ..RunOptions::default()
    };
    let path = std::env::temp_dir().join(format!(
        "flock-vi-resume-{}.safetensors",
        std::process::id()
    ));
    for guide in [Guide::MeanField, Guide::LowRank { rank: 1 }] {
        let config = |threads| ViConfig {
            ensemble_size: 8,
            num_particles: 2,
            guide,
            threads,
            ..ViConfig::default()
        };
        let straight = runner(config(1))
            .unwrap()
            .run(4, 60, batch, options(0))
            .unwrap();
        // `start` + `train` is `run`.
        let mut vi = runner(config(1)).unwrap();
        let mut state = vi.start(4).unwrap();
        let whole = vi.train(&mut state, 4, 60, batch, options(0)).unwrap();
        assert_eq!(bits(whole.params.values()), bits(straight.params.values()));

        for (threads_before, threads_after) in [(1, 1), (1, 2), (2, 1)] {
            let mut vi = runner(config(threads_before)).unwrap();
            let mut state = vi.start(4).unwrap();
            vi.train(&mut state, 4, 25, batch, options(0)).unwrap();
            vi.save(&path, &state).unwrap();
            drop((vi, state));
            let mut vi = runner(config(threads_after)).unwrap();
            let checkpoint = flock_runner::checkpoint::Checkpoint::read(&path).unwrap();
            let mut restored = vi.restore(&checkpoint, 4).unwrap();
            assert_eq!(restored.step(), 25);
            let rest = vi.train(&mut restored, 4, 60, batch, options(25)).unwrap();
            assert_eq!(
                bits(rest.params.values()),
                bits(straight.params.values()),
                "{guide:?}, threads {threads_before} → {threads_after}"
            );
            for e in 0..8 {
                assert_eq!(bits(rest.member_losses(e)), bits(straight.member_losses(e)));
            }
        }
    }
    // A training state saved without the noise positions is refused by name.
    let mut vi = runner(ViConfig {
        ensemble_size: 8,
        ..ViConfig::default()
    })
    .unwrap();
    let training = vi.start(1).unwrap();
    let mut file = flock_runner::train::StateFile { path: path.clone() };
    training.save_to(&mut file, None).unwrap();
    let checkpoint = flock_runner::checkpoint::Checkpoint::read(&path).unwrap();
    let err = vi.restore(&checkpoint, 1).unwrap_err();
    assert!(err.to_string().contains("random-stream positions"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

/// What a checkpoint of a VI run holds that a resumed run reads: its step, parameters and each
/// member's noise-stream position.
type StreamSnap = (usize, Vec<u64>, Option<Vec<u64>>);

#[derive(Clone, Default)]
struct StreamSink(std::rc::Rc<std::cell::RefCell<Vec<StreamSnap>>>);

impl flock_runner::train::CheckpointSink<f64> for StreamSink {
    fn save(
        &mut self,
        s: &flock_runner::train::Snapshot<'_, f64>,
    ) -> Result<(), flock_runner::checkpoint::CheckpointError> {
        let bits = s.params.values().iter().map(|v| v.to_bits()).collect();
        self.0
            .borrow_mut()
            .push((s.step, bits, s.streams.map(<[u64]>::to_vec)));
        Ok(())
    }
}

/// VI members stepped apart — each member's noise stream following it to whichever thread
/// takes its next piece — train to the bits of members stepped together: parameters, losses
/// and every checkpoint's stream positions (what a resumed run starts from), on one, two and
/// three threads, with a low-rank guide too, with mini-batches in both data orders and a
/// checkpoint due inside what would otherwise be one run.
#[test]
fn vi_members_apart_are_the_bits_of_members_together() {
    use flock_ensemble::DataOrder;
    use flock_runner::train::{Checkpointing, StepOrder};
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let run = |threads: usize, guide: Guide, order: DataOrder, step_order: StepOrder| {
        let config = ViConfig {
            ensemble_size: 5,
            threads,
            guide,
            ..ViConfig::default()
        };
        let mut vi = runner(config).unwrap();
        let sink = StreamSink::default();
        let options = RunOptions {
            batch_size: Some(7),
            data_order: order,
            step_order,
            checkpoint: Some(Checkpointing {
                every: 37,
                sink: Box::new(sink.clone()),
            }),
            ..RunOptions::default()
        };
        let result = vi.run(3, 200, batch, options).unwrap();
        let snaps = sink.0.borrow().clone();
        (bits(result.params.values()), bits(&result.losses), snaps)
    };
    for guide in [Guide::MeanField, Guide::LowRank { rank: 1 }] {
        for order in [DataOrder::PerMember, DataOrder::Shared] {
            let reference = run(1, guide, order, StepOrder::Together);
            assert_eq!(
                reference.2.len(),
                6,
                "checkpoints at 37, 74, … 185 and the end"
            );
            assert!(reference.2.iter().all(|s| s.2.is_some()));
            for threads in [1, 2, 3] {
                for step_order in [StepOrder::Together, StepOrder::Apart] {
                    assert!(
                        run(threads, guide, order, step_order) == reference,
                        "{guide:?} {order:?} {threads} threads {step_order:?}"
                    );
                }
            }
        }
    }
}

/// A VI run apart that is asked to stop inside a run of steps takes that run again from its
/// start up to the step (its noise streams put back first): it ends where the run together
/// ends, and trained on from there in the same process it ends where together's does.
#[test]
fn a_vi_run_apart_interrupted_inside_a_run_goes_on_as_together() {
    use crate::common::StopAt;
    use flock_runner::train::StepOrder;
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for stop_at in [1, 37, 130] {
        let mut ends = Vec::new();
        for step_order in [StepOrder::Together, StepOrder::Apart] {
            let config = ViConfig {
                ensemble_size: 5,
                threads: 2,
                ..ViConfig::default()
            };
            let mut vi = runner(config).unwrap();
            let mut training = vi.start(3).unwrap();
            let options = RunOptions {
                batch_size: Some(7),
                progress: Some(Box::new(StopAt(stop_at, 0))),
                step_order,
                ..RunOptions::default()
            };
            let error = vi.train(&mut training, 3, 200, batch, options).unwrap_err();
            assert!(
                matches!(error, RunError::Interrupted { step } if step == stop_at),
                "{step_order:?}: {error}"
            );
            let stopped = bits(training.result().params.values());
            let options = RunOptions {
                batch_size: Some(7),
                step_order,
                ..RunOptions::default()
            };
            let rest = vi.train(&mut training, 3, 200, batch, options).unwrap();
            ends.push((stopped, bits(rest.params.values()), bits(&rest.losses)));
        }
        assert!(ends[0] == ends[1], "stopped at {stop_at}");
    }
}
