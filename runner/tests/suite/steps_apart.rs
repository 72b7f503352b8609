//! Members stepped apart ([`StepOrder::Apart`]) against members stepped together
//! ([`StepOrder::Together`]): the same bits — parameters, losses, divergences, what the progress
//! hook hears, what the callbacks see and what the checkpoints hold — with held-out scoring and
//! patience, callbacks that freeze members, members that diverge inside a run (the last one of
//! them, with validation, stopping the run there), both data orders, on one thread and two. The
//! default order ([`StepOrder::Auto`]) too, also where it takes the first step together and the
//! rest apart.

use std::cell::RefCell;
use std::rc::Rc;

use flock_autograd::*;
use flock_ensemble::{DataOrder, MemberRng, ParallelLogJoint, Sampling};
use flock_optim::{AdamConfig, GradientTransformation, adam, sgd};
use flock_runner::checkpoint::CheckpointError;
use flock_runner::map::*;
use flock_runner::train::*;

use crate::common::{StopAt, small, small_log_joint, tanh_mlp};

/// Member `e` starts at its usual draw scaled by `1 + e/2`, so that with a large step size the
/// members blow up at different steps.
fn init(layout: &ParamLayout, mlp: &Mlp) -> impl FnMut(&mut MemberRng) -> Vec<f64> + use<> {
    let (layout, mlp) = (layout.clone(), mlp.clone());
    let mut member = 0;
    move |rng| {
        let mut block = vec![0.0; layout.member_size()];
        mlp.init_member(&layout, rng, &mut block).unwrap();
        let spread = 1.0 + f64::from(member) / 2.0;
        member += 1;
        block.iter().map(|v| v * spread).collect()
    }
}

/// An `EnsembleMAP` of `members` members of [`small`]'s MLP — or, with `wide`, of
/// [`wide_mlp`]'s — on a `ParallelLogJoint` of `threads` parts, started by [`init`], MAP (prior
/// weight 1).
fn map_on<O: GradientTransformation<f64>>(
    threads: usize,
    members: usize,
    wide: bool,
    optimizer: O,
) -> EnsembleMAP<
    f64,
    ParallelLogJoint<impl LogJoint<f64> + Send + use<O>>,
    impl FnMut(&mut MemberRng) -> Vec<f64> + use<O>,
    O,
> {
    let (layout, mlp) = if wide { wide_mlp() } else { small() };
    let parts = (0..threads)
        .map(|_| small_log_joint(&layout, mlp.clone()))
        .collect();
    EnsembleMAP::new(
        ParallelLogJoint::new(parts),
        init(&layout, &mlp),
        optimizer,
        members,
        1.0,
    )
    .unwrap()
}

/// A 1 → 128 → 128 → 1 tanh MLP and its layout: 16,897 parameters a member, whose values and
/// gradients on 45 rows fill a call of the log-joint alone, so that stepped together it takes
/// one member a call.
fn wide_mlp() -> (ParamLayout, Mlp) {
    tanh_mlp(128, 2)
}

fn data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..60).map(|i| i as f64 / 30.0 - 1.0).collect();
    let y = x.iter().map(|v| (3.0 * v).sin()).collect();
    (x, y)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A checkpoint's step, parameters, optimizer state, frozen members and stale scorings.
type Snap = (usize, Vec<u64>, Vec<u64>, Vec<bool>, Vec<usize>);

/// Everything a run showed the outside: its result, the progress reports, what the callback
/// saw, the checkpoints' contents (all as bits).
#[derive(Debug, PartialEq)]
struct Seen {
    params: Vec<u64>,
    losses: Vec<u64>,
    steps: usize,
    stopped_early: bool,
    diverged: Vec<Divergence>,
    reports: Vec<(usize, u64)>,
    callbacks: Vec<(usize, Vec<u64>, Vec<bool>)>,
    checkpoints: Vec<Snap>,
}

#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<(usize, u64)>>>);

impl ProgressHook for Log {
    fn update(&mut self, report: &StepReport) {
        self.0
            .borrow_mut()
            .push((report.step, report.mean_loss.to_bits()));
    }
}

#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<Snap>>>);

impl CheckpointSink<f64> for Sink {
    fn save(&mut self, s: &Snapshot<'_, f64>) -> Result<(), CheckpointError> {
        self.0.borrow_mut().push((
            s.step,
            bits(s.params.values()),
            s.optimizer_state.iter().map(|v| v.to_bits()).collect(),
            s.frozen.to_vec(),
            s.stale.to_vec(),
        ));
        Ok(())
    }
}

/// What the run can be asked to do.
#[derive(Clone, Copy, Debug)]
struct Setup {
    members: usize,
    threads: usize,
    order: DataOrder,
    /// Held-out scoring every so many steps, with a patience.
    validation: Option<(usize, usize)>,
    /// A callback every so many steps that freezes member 1 at its second call.
    callback: Option<usize>,
    checkpoint: Option<usize>,
    steps: usize,
    /// Rows per batch (`None`: the whole training set).
    batch: Option<usize>,
    /// [`wide_mlp`]'s members instead of [`small`]'s.
    wide: bool,
}

fn run<O: GradientTransformation<f64> + Clone>(
    setup: Setup,
    optimizer: &O,
    step_order: StepOrder,
) -> Seen {
    let mut map = map_on(setup.threads, setup.members, setup.wide, optimizer.clone());
    let (x, y) = data();
    let train = Batch::new(&x[..45], &y[..45], 45).unwrap();
    let held = Batch::new(&x[45..], &y[45..], 15).unwrap();
    let log = Log::default();
    let sink = Sink::default();
    let callbacks = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&callbacks);
    let mut calls = 0;
    let options = RunOptions {
        batch_size: setup.batch,
        sampling: Sampling::WithoutReplacement,
        data_order: setup.order,
        progress: Some(Box::new(log.clone())),
        validation: setup
            .validation
            .map(|(every, patience)| Validation::new(held, every).with_patience(patience)),
        checkpoint: setup.checkpoint.map(|every| Checkpointing {
            every,
            sink: Box::new(sink.clone()),
        }),
        callback: setup.callback.map(|every| {
            let callback: Callback<'_, f64> = Box::new(move |p: &Progress<'_, f64>| {
                seen.borrow_mut()
                    .push((p.step, bits(p.params.values()), p.frozen.to_vec()));
                calls += 1;
                Control {
                    stop: false,
                    freeze: if calls == 2 { vec![1] } else { Vec::new() },
                }
            });
            (every, callback)
        }),
        step_order,
        ..RunOptions::default()
    };
    let result = map.run(5, setup.steps, train, options).unwrap();
    let reports = log.0.borrow().clone();
    let checkpoints = sink.0.borrow().clone();
    let callbacks = callbacks.borrow().clone();
    Seen {
        params: bits(result.params.values()),
        losses: bits(&result.losses),
        steps: result.steps,
        stopped_early: result.stopped_early,
        diverged: result.diverged,
        reports,
        callbacks,
        checkpoints,
    }
}

fn same_bits<O: GradientTransformation<f64> + Clone>(setup: Setup, optimizer: &O) -> Seen {
    let together = run(setup, optimizer, StepOrder::Together);
    let apart = run(setup, optimizer, StepOrder::Apart);
    assert_eq!(apart, together, "{setup:?}");
    let auto = run(setup, optimizer, StepOrder::Auto);
    assert_eq!(auto, together, "{setup:?}");
    assert_eq!(together.reports.len(), together.steps, "{setup:?}");
    together
}

const PLAIN: Setup = Setup {
    members: 5,
    threads: 2,
    order: DataOrder::PerMember,
    validation: None,
    callback: None,
    checkpoint: None,
    steps: 300,
    batch: Some(10),
    wide: false,
};

#[test]
fn members_apart_are_the_bits_of_members_together() {
    let adam = adam(2e-2, AdamConfig::default()).unwrap();
    for order in [DataOrder::PerMember, DataOrder::Shared] {
        for threads in [1, 2] {
            let setup = Setup {
                order,
                threads,
                ..PLAIN
            };
            let seen = same_bits(setup, &adam);
            assert!(seen.diverged.is_empty());
        }
    }
    // Every hook at once, due at steps that are not multiples of each other (runs of 7, 5, 6 …
    // steps): a patience that freezes members, a callback that freezes member 1, checkpoints.
    let hooks = Setup {
        validation: Some((7, 3)),
        callback: Some(10),
        checkpoint: Some(12),
        ..PLAIN
    };
    let seen = same_bits(hooks, &adam);
    assert!(seen.callbacks[2].2[1], "member 1 frozen by the callback");
    assert!(!seen.checkpoints.is_empty());
    // Full batches: every member's batch is the data itself.
    for order in [DataOrder::PerMember, DataOrder::Shared] {
        let full = Setup {
            members: 3,
            steps: 40,
            batch: None,
            order,
            ..PLAIN
        };
        same_bits(full, &adam);
    }
}

/// Members that fill a call of the log-joint alone: the default order cannot tell that before the
/// log-joint's first evaluation, so it takes the first step together and, measured then, the
/// rest apart — with every hook, the bits of both orders.
#[test]
fn the_default_order_goes_apart_after_its_first_step_where_calls_hold_one_member() {
    let (layout, mlp) = wide_mlp();
    let mut two = ParallelLogJoint::new(vec![
        small_log_joint(&layout, mlp.clone()),
        small_log_joint(&layout, mlp.clone()),
    ]);
    if two.parts().len() < 2 || LogJoint::<f64>::threads(&two) < 2 {
        return; // one thread here: nothing goes apart
    }
    let (x, y) = data();
    let train = Batch::new(&x[..45], &y[..45], 45).unwrap();
    let members = 4;
    assert!(!flock_ensemble::steps_apart_pay(&two, members, &train, 45));
    let p = layout.member_size();
    let params = vec![0.01; members * p];
    let (mut loglik, mut logprior, mut grad) = (
        vec![0.0; members],
        vec![0.0; members],
        vec![0.0; members * p],
    );
    two.evaluate(
        members,
        &params,
        train,
        Weights {
            loglik: -1.0,
            logprior: -1.0,
        },
        LogJointOutput {
            loglik: &mut loglik,
            logprior: &mut logprior,
            grad: &mut grad,
        },
    )
    .unwrap();
    assert!(
        flock_ensemble::steps_apart_pay(&two, members, &train, 45),
        "measured, a call holds one member"
    );
    let adam = adam(1e-2, AdamConfig::default()).unwrap();
    let wide = Setup {
        members,
        steps: 24,
        batch: None,
        validation: Some((7, 3)),
        callback: Some(5),
        checkpoint: Some(6),
        wide: true,
        ..PLAIN
    };
    let seen = same_bits(wide, &adam);
    assert_eq!(seen.steps, 24);
    assert!(!seen.checkpoints.is_empty());
}

/// SGD with a large step blows members up one after another, inside runs: each is frozen where
/// it diverged, and with validation on the run stops at the step where the last one does.
#[test]
fn members_that_diverge_apart_diverge_as_together() {
    let sgd = sgd(0.02, None, false).unwrap();
    let setup = Setup {
        members: 4,
        steps: 200,
        ..PLAIN
    };
    let seen = same_bits(setup, &sgd);
    let steps: Vec<usize> = seen.diverged.iter().map(|d| d.step).collect();
    assert!(seen.diverged.len() >= 2, "{:?}", seen.diverged);
    assert!(steps.windows(2).any(|w| w[0] != w[1]), "{steps:?}");
    let validated = Setup {
        validation: Some((150, 1000)),
        ..setup
    };
    let seen = same_bits(validated, &sgd);
    if seen.diverged.len() == 4 {
        let last = seen.diverged.iter().map(|d| d.step).max().unwrap();
        assert_eq!(
            seen.steps,
            last + 1,
            "stopped where the last member diverged"
        );
        assert!(seen.stopped_early);
    }
}

/// A step that fails inside a run apart — here a batch with a NaN target, drawn at different
/// steps by different members on two threads — ends the run with the error a run together
/// gives, and leaves the `Training` where the run started.
#[test]
fn a_failing_run_apart_errs_as_together_and_puts_the_training_back() {
    let (x, mut y) = data();
    y[37] = f64::NAN;
    let train = Batch::new(&x, &y, 60).unwrap();
    let optimizer = adam(2e-2, AdamConfig::default()).unwrap();
    let mut errors = Vec::new();
    for step_order in [StepOrder::Together, StepOrder::Apart] {
        let mut map = map_on(2, 5, false, optimizer.clone());
        let mut training = map.start(3).unwrap();
        let start = training.state.params.clone();
        let options = RunOptions {
            batch_size: Some(7),
            data_order: DataOrder::PerMember,
            step_order,
            ..RunOptions::default()
        };
        let error = map.train(&mut training, 3, 50, train, options).unwrap_err();
        assert!(error.to_string().contains("y"), "{error}");
        if step_order == StepOrder::Apart {
            assert_eq!(training.step(), 0);
            assert_eq!(training.state.params, start);
        }
        errors.push(matches!(
            error,
            flock_runner::RunError::Ensemble(flock_ensemble::EnsembleError::NonFiniteData {
                what: "y",
                ..
            })
        ));
    }
    assert_eq!(errors, [true, true]);
}

/// Asked to stop by the progress hook inside a run, a run apart ends at that step, as together.
#[test]
fn an_interruption_inside_a_run_apart_ends_at_its_step() {
    let (x, y) = data();
    let train = Batch::new(&x, &y, 60).unwrap();
    let optimizer = adam(2e-2, AdamConfig::default()).unwrap();
    for stop_at in [1, 37, 130] {
        let mut ends = Vec::new();
        for step_order in [StepOrder::Together, StepOrder::Apart] {
            let mut map = map_on(2, 5, false, optimizer.clone());
            let mut training = map.start(4).unwrap();
            let options = RunOptions {
                batch_size: Some(7),
                data_order: DataOrder::PerMember,
                progress: Some(Box::new(StopAt(stop_at, 0))),
                step_order,
                ..RunOptions::default()
            };
            let error = map
                .train(&mut training, 4, 300, train, options)
                .unwrap_err();
            assert!(
                matches!(error, flock_runner::RunError::Interrupted { step } if step == stop_at),
                "{step_order:?}: {error}"
            );
            let result = training.result();
            ends.push((
                training.step(),
                bits(result.params.values()),
                bits(&result.losses),
            ));
        }
        assert_eq!(ends[0], ends[1], "stopped at {stop_at}");
        assert_eq!(ends[0].0, stop_at);
    }
}
