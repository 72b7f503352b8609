//! `EnsembleMAP`: Pattern A through the runner, callbacks that change nothing change no bits,
//! stopping, freezing, best parameters, divergence, mini-batches, reuse.

use flock_autograd::*;
use flock_ensemble::{EnsembleState, MemberRng};
use flock_optim::{AdamConfig, GradientTransformation, adam};
use flock_runner::RunError;
use flock_runner::app::seed::{SeedData, fixture_init_params, seed_log_joint, seed_mlp};
use flock_runner::map::*;
use flock_runner::train::*;

use crate::common::{small, small_log_joint};

fn init_fn(layout: &ParamLayout, mlp: &Mlp) -> impl FnMut(&mut MemberRng) -> Vec<f64> + use<> {
    let (layout, mlp) = (layout.clone(), mlp.clone());
    move |rng| {
        let mut block = vec![0.0; layout.member_size()];
        mlp.init_member(&layout, rng, &mut block).unwrap();
        block
    }
}

/// An `EnsembleMAP` of `members` members of [`small`]'s MLP ([`small_log_joint`], [`init_fn`])
/// with `optimizer`, MAP (prior weight 1).
fn small_map<O: GradientTransformation<f64>>(
    optimizer: O,
    members: usize,
) -> EnsembleMAP<f64, impl LogJoint<f64> + use<O>, impl FnMut(&mut MemberRng) -> Vec<f64> + use<O>, O>
{
    let (layout, mlp) = small();
    EnsembleMAP::new(
        small_log_joint(&layout, mlp.clone()),
        init_fn(&layout, &mlp),
        optimizer,
        members,
        1.0,
    )
    .unwrap()
}

fn data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..40).map(|i| i as f64 / 20.0 - 1.0).collect();
    let y = x.iter().map(|v| (3.0 * v).sin()).collect();
    (x, y)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn pattern_a_through_the_runner_follows_pyrox() {
    let seed = SeedData::from_fixture().unwrap();
    let (layout, mlp) = seed_mlp();
    let params = fixture_init_params("pattern_a", &layout).unwrap();
    let optimizer = adam(5e-3, AdamConfig::default()).unwrap();
    let mut map = EnsembleMAP::new(
        seed_log_joint(&layout, mlp.clone()),
        init_fn(&layout, &mlp),
        optimizer,
        16,
        1.0,
    )
    .unwrap();
    let state = EnsembleState::from_params(params, map.optimizer()).unwrap();
    let data = Batch::new(&seed.x, &seed.y, seed.x.len()).unwrap();
    let result = map
        .run_from(state, 0, 200, data, RunOptions::default())
        .unwrap();
    let fx = flock_fixtures::load(&flock_fixtures::dir("seed").join("pattern_a.json")).unwrap();
    for e in 0..16 {
        let reference = flock_fixtures::numbers(&fx["losses"][e]).unwrap();
        for (t, (&ours, &theirs)) in result.member_losses(e).iter().zip(&reference).enumerate() {
            assert!(
                (ours - theirs).abs() <= 1e-8 * theirs.abs(),
                "member {e} step {t}: {ours} vs {theirs}"
            );
        }
    }
}

#[test]
fn a_callback_that_changes_nothing_changes_no_bits_and_runs_repeat() {
    let (x, y) = data();
    let data = Batch::new(&x, &y, 40).unwrap();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let mut map = small_map(opt, 5);
    let plain = map.run(3, 120, data, RunOptions::default()).unwrap();
    let mut calls = 0;
    let with_callback = map
        .run(
            3,
            120,
            data,
            RunOptions {
                callback: Some((
                    7,
                    Box::new(|p: &Progress<'_, f64>| {
                        calls += 1;
                        assert_eq!(p.losses.len(), 5);
                        Control::proceed()
                    }),
                )),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert_eq!(calls, 120 / 7);
    assert_eq!(
        bits(plain.params.values()),
        bits(with_callback.params.values())
    );
    assert_eq!(bits(&plain.losses), bits(&with_callback.losses));
    assert!(!plain.stopped_early);
    // The fused loop is exactly `init` + `update` in a hand-written loop, and a progress hook
    // changes nothing; it is told every step, with the members' mean loss.
    let mut state = map.init(3).unwrap();
    for _ in 0..120 {
        map.update(&mut state, data, 1.0).unwrap();
    }
    assert_eq!(bits(plain.params.values()), bits(state.params.values()));
    struct Recorder<'a>(&'a mut Vec<StepReport>);
    impl ProgressHook for Recorder<'_> {
        fn update(&mut self, report: &StepReport) {
            self.0.push(*report);
        }
    }
    let mut reports = Vec::new();
    let shown = map
        .run(
            3,
            120,
            data,
            RunOptions {
                progress: Some(Box::new(Recorder(&mut reports))),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert_eq!(bits(plain.params.values()), bits(shown.params.values()));
    assert_eq!(reports.len(), 120);
    let last = reports[119];
    assert_eq!((last.step, last.until, last.rows), (120, 120, 40));
    let members = plain.params.members();
    let mean = (0..members)
        .map(|e| plain.member_losses(e)[119])
        .sum::<f64>()
        / members as f64;
    assert!(
        (last.mean_loss - mean).abs() <= 1e-12 * mean.abs(),
        "{last:?} vs {mean}"
    );
}

#[test]
fn stopping_freezing_and_keeping_the_best() {
    let (layout, mlp) = small();
    let (x, y) = data();
    let data = Batch::new(&x, &y, 40).unwrap();
    let opt = adam(5e-2, AdamConfig::default()).unwrap();
    let mut map = small_map(opt, 3);
    // Stop at step 30.
    let stopped = map
        .run(
            1,
            100,
            data,
            RunOptions {
                callback: Some((
                    10,
                    Box::new(|p: &Progress<'_, f64>| {
                        if p.step >= 30 {
                            Control::stop()
                        } else {
                            Control::proceed()
                        }
                    }),
                )),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert!(stopped.stopped_early);
    assert_eq!((stopped.steps, stopped.losses.len()), (30, 90));

    // Freeze member 1 at step 20: its parameters after 100 steps are those of a 20-step run.
    let frozen = map
        .run(
            1,
            100,
            data,
            RunOptions {
                callback: Some((
                    20,
                    Box::new(|p: &Progress<'_, f64>| Control {
                        stop: false,
                        freeze: if p.step == 20 { vec![1] } else { vec![] },
                    }),
                )),
                ..RunOptions::default()
            },
        )
        .unwrap();
    let short = map.run(1, 20, data, RunOptions::default()).unwrap();
    let long = map.run(1, 100, data, RunOptions::default()).unwrap();
    assert_eq!(bits(frozen.params.member(1)), bits(short.params.member(1)));
    assert_eq!(bits(frozen.params.member(0)), bits(long.params.member(0)));

    // Keep the best: every member's kept parameters have its lowest recorded loss.
    let best = map
        .run(
            1,
            100,
            data,
            RunOptions {
                keep_best: true,
                ..RunOptions::default()
            },
        )
        .unwrap();
    let mut lj = small_log_joint(&layout, mlp.clone());
    for e in 0..3 {
        let curve = best.member_losses(e);
        let lowest = curve.iter().cloned().fold(f64::INFINITY, f64::min);
        let (mut ll, mut lp, mut g) = ([0.0], [0.0], vec![0.0; layout.member_size()]);
        lj.evaluate(
            1,
            best.params.member(e),
            data,
            Weights {
                loglik: -1.0,
                logprior: -1.0,
            },
            LogJointOutput {
                loglik: &mut ll,
                logprior: &mut lp,
                grad: &mut g,
            },
        )
        .unwrap();
        let loss = -ll[0] - lp[0];
        assert!(
            (loss - lowest).abs() <= 1e-9 * lowest.abs(),
            "member {e}: {loss} vs {lowest}"
        );
    }
}

#[test]
fn diverging_members_are_frozen_or_stop_the_run_without_losing_results() {
    let (layout, mlp) = small();
    let (x, y) = data();
    let data = Batch::new(&x, &y, 40).unwrap();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let (l2, m2) = (layout.clone(), mlp.clone());
    let mut calls = 0;
    // Member 2 starts with a weight that overflows its prior.
    let poisoned = move |rng: &mut MemberRng| {
        let mut block = vec![0.0; l2.member_size()];
        m2.init_member(&l2, rng, &mut block).unwrap();
        if calls % 3 == 2 {
            block[0] = 1e300;
        }
        calls += 1;
        block
    };
    let mut map = EnsembleMAP::new(small_log_joint(&layout, mlp), poisoned, opt, 3, 1.0).unwrap();
    let result = map.run(0, 50, data, RunOptions::default()).unwrap();
    assert_eq!(result.diverged, vec![Divergence { member: 2, step: 0 }]);
    assert!(result.params.member(2)[0] == 1e300);
    assert!(result.member_losses(0)[49] < result.member_losses(0)[0]);
    let err = map
        .run(
            0,
            50,
            data,
            RunOptions {
                on_divergence: OnDivergence::Stop,
                ..RunOptions::default()
            },
        )
        .unwrap_err();
    match err {
        RunError::Diverged {
            divergence,
            partial,
        } => {
            assert_eq!(divergence, Divergence { member: 2, step: 0 });
            assert_eq!(partial.steps, 1);
        }
        other => panic!("expected a divergence, got {other}"),
    }
}

#[test]
fn mini_batches_and_one_shot_sugar() {
    let (layout, mlp) = small();
    let (x, y) = data();
    let data = Batch::new(&x, &y, 40).unwrap();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let mut map = small_map(opt, 2);
    let options = || RunOptions {
        batch_size: Some(10),
        ..RunOptions::default()
    };
    let a = map.run(4, 200, data, options()).unwrap();
    let b = map.run(4, 200, data, options()).unwrap();
    assert_eq!(bits(a.params.values()), bits(b.params.values()));
    assert!(a.member_losses(1)[199] < a.member_losses(1)[0]);
    let sugar = ensemble_map(
        small_log_joint(&layout, mlp.clone()),
        init_fn(&layout, &mlp),
        data,
        MapOptions {
            ensemble_size: 3,
            num_epochs: 50,
            ..MapOptions::default()
        },
    )
    .unwrap();
    assert_eq!((sugar.steps, sugar.params.members()), (50, 3));
    assert!(matches!(
        EnsembleMAP::new(
            small_log_joint(&layout, mlp.clone()),
            init_fn(&layout, &mlp),
            adam(1e-2, AdamConfig::default()).unwrap(),
            0,
            1.0
        ),
        Err(RunError::Ensemble(
            flock_ensemble::EnsembleError::ZeroMembers
        ))
    ));
}

/// Train 25 steps, save the whole training state, load it, resume to 60: the bits of a 60-step
/// run, mini-batches and a warmup-cosine AdamW chain included.
#[test]
fn resuming_from_a_checkpoint_gives_the_uninterrupted_bits() {
    use flock_optim::{adamw, chain, clip_by_global_norm, warmup_cosine_decay_schedule};
    use flock_runner::checkpoint::Checkpoint;
    let layout = small().0;
    let (x, y) = data();
    let data = Batch::new(&x, &y, 40).unwrap();
    let optimizer = || {
        chain(
            clip_by_global_norm(1.0).unwrap(),
            adamw(
                warmup_cosine_decay_schedule(1e-4, 2e-2, 10, 60, 1e-4, 1.0).unwrap(),
                AdamConfig::default(),
                1e-3,
                None,
            )
            .unwrap(),
        )
    };
    let mut map = small_map(optimizer(), 3);
    let options = || RunOptions {
        batch_size: Some(8),
        ..RunOptions::default()
    };
    let straight = map.run(9, 60, data, options()).unwrap();

    let mut training = map.start(9).unwrap();
    let first = map.train(&mut training, 9, 25, data, options()).unwrap();
    assert_eq!(first.steps, 25);
    let path =
        std::env::temp_dir().join(format!("flock-resume-{}.safetensors", std::process::id()));
    map.save(&path, &training).unwrap();
    drop(training);
    let mut restored = map.restore(&Checkpoint::read(&path).unwrap()).unwrap();
    assert_eq!(restored.step(), 25);
    let rest = map.train(&mut restored, 9, 60, data, options()).unwrap();
    assert_eq!(rest.steps, 60);
    assert_eq!(bits(rest.params.values()), bits(straight.params.values()));
    for e in 0..3 {
        assert_eq!(bits(rest.member_losses(e)), bits(straight.member_losses(e)));
    }
    // Continuing in memory gives the same bits too.
    let mut training = map.start(9).unwrap();
    map.train(&mut training, 9, 25, data, options()).unwrap();
    let again = map.train(&mut training, 9, 60, data, options()).unwrap();
    assert_eq!(bits(again.params.values()), bits(straight.params.values()));
    // Another optimizer's state does not load.
    let err = Checkpoint::read(&path)
        .unwrap()
        .training::<f64, _>(&adam(1e-2, AdamConfig::default()).unwrap(), &layout, 3)
        .unwrap_err();
    assert!(err.to_string().contains("another"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

/// Held-out scoring: each member ends at the parameters of its best held-out score (checked
/// against snapshots taken by a callback and scored afterwards), training itself is the same
/// bits, and with a patience a run whose held-out score only worsens stops early.
#[test]
fn validation_keeps_each_members_best_held_out_parameters() {
    let layout = small().0;
    let (x, y) = data();
    let train = Batch::new(&x[..30], &y[..30], 30).unwrap();
    let held = Batch::new(&x[30..], &y[30..], 10).unwrap();
    let optimizer = adam(3e-2, AdamConfig::default()).unwrap();
    let mut map = small_map(optimizer, 4);
    let (every, steps) = (5, 200);

    // Reference: snapshots every 5 steps, scored afterwards.
    let mut snapshots: Vec<Vec<f64>> = Vec::new();
    let plain = map
        .run(
            11,
            steps,
            train,
            RunOptions {
                callback: Some((
                    every,
                    Box::new(|p: &Progress<'_, f64>| {
                        snapshots.push(p.params.values().to_vec());
                        Control::proceed()
                    }),
                )),
                ..RunOptions::default()
            },
        )
        .unwrap();
    let validated = map
        .run(
            11,
            steps,
            train,
            RunOptions {
                validation: Some(Validation::new(held, every)),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert_eq!(bits(&plain.losses), bits(&validated.losses));
    let scores: Vec<Vec<f64>> = snapshots
        .iter()
        .map(|s| {
            let params = Parameters::from_values(layout.clone(), 4, s.clone()).unwrap();
            map.held_out_nll(&params, held).unwrap()
        })
        .collect();
    let p = layout.member_size();
    let mut moved = 0;
    for e in 0..4 {
        let best = (0..scores.len())
            .min_by(|&a, &b| scores[a][e].total_cmp(&scores[b][e]))
            .unwrap();
        assert_eq!(
            bits(validated.params.member(e)),
            bits(&snapshots[best][e * p..(e + 1) * p]),
            "member {e}: best held-out snapshot {best}"
        );
        moved += usize::from(best + 1 < scores.len());
    }
    // The held-out rows lie outside the training range, so some member overfits.
    assert!(
        moved > 0,
        "no member had its best held-out score before the end"
    );

    // Held-out targets of the opposite sign: the score worsens, members freeze, the run stops.
    let flipped: Vec<f64> = y[30..].iter().map(|v| -v - 2.0).collect();
    let bad = Batch::new(&x[30..], &flipped, 10).unwrap();
    let stopped = map
        .run(
            11,
            steps,
            train,
            RunOptions {
                validation: Some(Validation::new(bad, every).with_patience(3)),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert!(
        stopped.stopped_early && stopped.steps < steps,
        "{}",
        stopped.steps
    );
    // Identical training until the first scoring; a frozen member's loss stays put afterwards.
    assert_eq!(
        bits(&stopped.losses[..every]),
        bits(&plain.member_losses(0)[..every])
    );
    let tail = &stopped.member_losses(0)[stopped.steps - 3..];
    assert!(tail.iter().all(|&l| l == tail[0]), "{tail:?}");

    // Bad configurations and held-out data are named.
    let both = map.run(
        11,
        10,
        train,
        RunOptions {
            keep_best: true,
            validation: Some(Validation::new(held, 1)),
            ..RunOptions::default()
        },
    );
    assert!(format!("{}", both.unwrap_err()).contains("validation"));
    let never = map.run(
        11,
        10,
        train,
        RunOptions {
            validation: Some(Validation::new(held, 0)),
            ..RunOptions::default()
        },
    );
    assert!(format!("{}", never.unwrap_err()).contains("validation.every"));
    let mut nan_y = y[30..].to_vec();
    nan_y[3] = f64::NAN;
    let nan = Batch::new(&x[30..], &nan_y, 10).unwrap();
    let err = map.held_out_nll(&plain.params, nan).unwrap_err();
    assert!(format!("{err}").contains("y[3]"), "{err}");
}

/// Each member holding out its own rows: a member's training depends only on its own rows and
/// stream (member 0 of three trains as a lone member with the same rows held out, and otherwise
/// when other rows are), each member is scored on its own rows, and the split needs a
/// per-member data order of the run's members.
#[test]
fn members_hold_out_their_own_rows() {
    use flock_ensemble::{DataOrder, MemberHeldOut};
    let (x, y) = data();
    let data = Batch::new(&x, &y, 40).unwrap();
    let run = |members: usize, split: &MemberHeldOut, order| {
        let mut map = small_map(adam(1e-2, AdamConfig::default()).unwrap(), members);
        let (hx, hy) = split.gather(&x, &y);
        let held = Batch::per_member(&hx, &hy, split.held_per_member(), members).unwrap();
        map.run(
            3,
            60,
            data,
            RunOptions {
                batch_size: Some(8),
                data_order: order,
                held_out_rows: Some(split),
                validation: Some(Validation::new(held, 4)),
                ..RunOptions::default()
            },
        )
    };
    let three = run(
        3,
        &MemberHeldOut::new(40, 8, 5, 0..3).unwrap(),
        DataOrder::PerMember,
    )
    .unwrap();
    let alone = run(
        1,
        &MemberHeldOut::new(40, 8, 5, 0..1).unwrap(),
        DataOrder::PerMember,
    )
    .unwrap();
    let elsewhere = run(
        1,
        &MemberHeldOut::new(40, 8, 6, 0..1).unwrap(),
        DataOrder::PerMember,
    )
    .unwrap();
    assert_eq!(bits(three.member_losses(0)), bits(alone.member_losses(0)));
    assert_ne!(
        bits(alone.member_losses(0)),
        bits(elsewhere.member_losses(0))
    );
    assert_eq!(bits(three.params.member(0)), bits(alone.params.member(0)));
    let split = MemberHeldOut::new(40, 8, 5, 0..3).unwrap();
    let err = run(3, &split, DataOrder::Shared).unwrap_err();
    assert!(err.to_string().contains("held_out_rows"), "{err}");
    let err = run(
        3,
        &MemberHeldOut::new(40, 8, 5, 1..4).unwrap(),
        DataOrder::PerMember,
    )
    .unwrap_err();
    assert!(err.to_string().contains("held_out_rows"), "{err}");
}
