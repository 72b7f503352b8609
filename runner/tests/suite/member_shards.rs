//! Member sharding in the training loop, without MPI: ranks are threads of this process (a
//! [`Communicator`] over a barrier), each training its block of members with
//! `EnsembleMAP::with_members` and `RunOptions::peers`. Their blocks side by side are the bits of
//! one process training every member — with per-member batches, held-out scoring and a patience
//! that freezes members at different steps on different ranks and stops the run when the last is
//! frozen; the progress hook on rank 0 sees every member's mean loss.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use flock_autograd::*;
use flock_ensemble::{DataOrder, MemberRng};
use flock_optim::{AdamConfig, adam};
use flock_runner::distributed::{Communicator, block};
use flock_runner::map::*;
use flock_runner::train::*;

use crate::common::small;

/// Ranks as threads: an all-gather is a barrier, a write of each rank's slot, a barrier, a read
/// of every slot and a last barrier (so no rank overwrites a slot another still reads). A rank
/// left waiting for 20 s panics (a rank that left the loop early fails the test, not hangs it).
struct ThreadRanks {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

struct Shared {
    /// Ranks arrived at the current barrier, and how many barriers were passed.
    arrivals: Mutex<(usize, u64)>,
    passed: Condvar,
    slots: Mutex<Vec<Vec<u8>>>,
}

impl ThreadRanks {
    fn world(size: usize) -> Vec<ThreadRanks> {
        let shared = Arc::new(Shared {
            arrivals: Mutex::new((0, 0)),
            passed: Condvar::new(),
            slots: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| ThreadRanks {
                rank,
                size,
                shared: shared.clone(),
            })
            .collect()
    }

    fn barrier(&self) {
        let mut arrivals = self.shared.arrivals.lock().unwrap();
        let generation = arrivals.1;
        arrivals.0 += 1;
        if arrivals.0 == self.size {
            *arrivals = (0, generation + 1);
            self.shared.passed.notify_all();
            return;
        }
        while arrivals.1 == generation {
            let (next, wait) = self
                .shared
                .passed
                .wait_timeout(arrivals, Duration::from_secs(20))
                .unwrap();
            arrivals = next;
            assert!(
                !(wait.timed_out() && arrivals.1 == generation),
                "rank {} waited 20 s for the others",
                self.rank
            );
        }
    }
}

impl Communicator for ThreadRanks {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
        self.barrier();
        self.shared.slots.lock().unwrap()[self.rank] = local.to_vec();
        self.barrier();
        let all = self.shared.slots.lock().unwrap().clone();
        self.barrier();
        all
    }
    fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) {
        let all = self.all_gather(bytes);
        *bytes = all[root].clone();
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn split(&self, _color: usize) -> Box<dyn Communicator + '_> {
        unimplemented!("these tests do not split their ranks")
    }
}

const MEMBERS: usize = 5;

fn runner(
    layout: &ParamLayout,
    mlp: &Mlp,
) -> EnsembleMAP<
    f64,
    impl LogJoint<f64> + use<>,
    impl FnMut(&mut MemberRng) -> Vec<f64> + use<>,
    flock_optim::Adam,
> {
    let forward = mlp.clone();
    let log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
        let f = forward.forward(g, x)?;
        let f = g.squeeze_last(f)?;
        let ll = g.normal_log_density(y, f, Arg::Const(0.1))?;
        let theta = g.all_params();
        Ok((
            ll,
            g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.0))?,
        ))
    });
    let (init_layout, init_mlp) = (layout.clone(), mlp.clone());
    let init = move |rng: &mut MemberRng| {
        let mut block = vec![0.0; init_layout.member_size()];
        init_mlp.init_member(&init_layout, rng, &mut block).unwrap();
        block
    };
    EnsembleMAP::new(
        log_joint,
        init,
        adam(3e-2, AdamConfig::default()).unwrap(),
        MEMBERS,
        1.0,
    )
    .unwrap()
}

/// Training rows of `sin 3x`; held-out rows beyond them, their targets pushed away so the
/// members' held-out scores stop improving at different steps.
fn data() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..40).map(|i| i as f64 / 20.0 - 1.0).collect();
    let y: Vec<f64> = x.iter().map(|v| (3.0 * v).sin()).collect();
    let held_y = y[30..].iter().map(|v| v + 0.3).collect();
    (x[..30].to_vec(), y[..30].to_vec(), x[30..].to_vec(), held_y)
}

/// Records the mean loss of every step.
struct Means(Arc<Mutex<Vec<u64>>>);

impl ProgressHook for Means {
    fn update(&mut self, report: &StepReport) {
        self.0.lock().unwrap().push(report.mean_loss.to_bits());
    }
}

const STEPS: usize = 400;

/// Trains members `members` (every one without `peers`) and returns the result and the mean
/// losses the progress hook saw.
fn train(
    members: core::ops::Range<usize>,
    peers: Option<&dyn Communicator>,
) -> (EnsembleResult<f64>, Vec<u64>) {
    let (layout, mlp) = small();
    let (x, y, hx, hy) = data();
    let mut map = runner(&layout, &mlp).with_members(members).unwrap();
    let means = Arc::new(Mutex::new(Vec::new()));
    let result = map
        .run(
            7,
            STEPS,
            Batch::new(&x, &y, 30).unwrap(),
            RunOptions {
                batch_size: Some(8),
                data_order: DataOrder::PerMember,
                validation: Some(
                    Validation::new(Batch::new(&hx, &hy, 10).unwrap(), 4).with_patience(3),
                ),
                progress: Some(Box::new(Means(means.clone()))),
                peers,
                ..RunOptions::default()
            },
        )
        .unwrap();
    let means = means.lock().unwrap().clone();
    (result, means)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn blocks_of_members_on_ranks_are_one_process_bits() {
    let (whole, whole_means) = train(0..MEMBERS, None);
    assert!(
        whole.stopped_early && whole.steps < STEPS,
        "the patience should stop the run: {} steps",
        whole.steps
    );
    for ranks in 1..=MEMBERS {
        let world = ThreadRanks::world(ranks);
        let parts: Vec<(EnsembleResult<f64>, Vec<u64>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = world
                .iter()
                .map(|comm| {
                    scope.spawn(move || {
                        train(
                            block(MEMBERS, comm.rank(), comm.size()),
                            Some(comm as &dyn Communicator),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (rank, (part, means)) in parts.iter().enumerate() {
            assert_eq!(
                part.steps, whole.steps,
                "{ranks} ranks: rank {rank}'s steps"
            );
            assert_eq!(part.stopped_early, whole.stopped_early);
            assert_eq!(
                means, &whole_means,
                "{ranks} ranks: rank {rank}'s mean losses"
            );
        }
        let results: Vec<EnsembleResult<f64>> = parts.into_iter().map(|(r, _)| r).collect();
        let merged = EnsembleResult::merge(&results).unwrap();
        assert_eq!(
            bits(merged.params.values()),
            bits(whole.params.values()),
            "{ranks} ranks: parameters"
        );
        assert_eq!(
            bits(&merged.losses),
            bits(&whole.losses),
            "{ranks} ranks: loss curves"
        );
    }
}

/// The members freeze at different steps (else the test above would not exercise the stop
/// rule): a callback counts the frozen members.
#[test]
fn members_freeze_at_different_steps() {
    let (layout, mlp) = small();
    let (x, y, hx, hy) = data();
    let mut map = runner(&layout, &mlp);
    let mut counts = Vec::new();
    let result = map
        .run(
            7,
            STEPS,
            Batch::new(&x, &y, 30).unwrap(),
            RunOptions {
                batch_size: Some(8),
                data_order: DataOrder::PerMember,
                validation: Some(
                    Validation::new(Batch::new(&hx, &hy, 10).unwrap(), 4).with_patience(3),
                ),
                callback: Some((
                    1,
                    Box::new(|p: &Progress<'_, f64>| {
                        counts.push(p.frozen.iter().filter(|&&f| f).count());
                        Control::proceed()
                    }),
                )),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert!(result.stopped_early);
    assert!(counts.iter().any(|&c| c > 0 && c < MEMBERS), "{counts:?}");
}

#[test]
fn a_sharded_run_cannot_stop_on_one_ranks_divergence() {
    let (layout, mlp) = small();
    let (x, y, _, _) = data();
    let world = ThreadRanks::world(1);
    let mut map = runner(&layout, &mlp).with_members(0..2).unwrap();
    let err = map
        .run(
            7,
            3,
            Batch::new(&x, &y, 30).unwrap(),
            RunOptions {
                on_divergence: OnDivergence::Stop,
                peers: Some(&world[0]),
                ..RunOptions::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("on_divergence"), "{err}");
    assert!(runner(&layout, &mlp).with_members(3..6).is_err());
    assert!(runner(&layout, &mlp).with_members(2..2).is_err());
}

/// A `Regressor` fit over thread ranks (`FitHooks::ranks`): paused on 2 ranks (rank 0 writes the
/// gathered training state), resumed on 3, it gives the model bytes of one uninterrupted process
/// — for MAP members and VI guides (whose noise streams travel in the state).
#[test]
fn a_regressor_fit_pauses_on_two_ranks_and_resumes_on_three() {
    use flock_runner::regressor::{FitHooks, FitOutcome};
    use flock_runner::{FitMethod, Matrix, Regressor, ViFit};
    let x: Vec<f64> = (0..90).map(|i| (i % 13) as f64 / 4.0 - 1.5).collect();
    let y: Vec<f64> = x.iter().map(|v| (2.0 * v).sin()).collect();
    let dir = std::env::temp_dir().join(format!("flock-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for method in [FitMethod::Map, FitMethod::Vi(ViFit::default())] {
        let regressor = || {
            Regressor::<f64>::new()
                .members(MEMBERS)
                .epochs(4)
                .batch_size(16)
                .method(method)
                .threads(1)
        };
        let fit = |hooks: FitHooks<'_>| {
            regressor()
                .fit_with(&Matrix::new(&x, 1).unwrap(), &y, hooks)
                .unwrap()
        };
        let whole = match fit(FitHooks::default()) {
            FitOutcome::Fitted(model) => model.to_bytes(),
            FitOutcome::Paused { .. } => panic!("paused without being asked"),
        };
        let state = dir.join("state");
        let _ = std::fs::remove_file(&state);
        let on_ranks = |ranks: usize, max_epochs: Option<usize>| -> Vec<Option<Vec<u8>>> {
            let world = ThreadRanks::world(ranks);
            std::thread::scope(|scope| {
                let handles: Vec<_> = world
                    .iter()
                    .map(|comm| {
                        let state = state.clone();
                        scope.spawn(move || {
                            match fit(FitHooks {
                                state_file: Some(state),
                                resume: true,
                                max_epochs_this_call: max_epochs,
                                ranks: Some(comm),
                                ..FitHooks::default()
                            }) {
                                FitOutcome::Fitted(model) => Some(model.to_bytes()),
                                FitOutcome::Paused { .. } => None,
                            }
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            })
        };
        assert!(on_ranks(2, Some(2)).iter().all(Option::is_none));
        assert!(state.exists(), "rank 0 writes the gathered state");
        for (rank, model) in on_ranks(3, None).into_iter().enumerate() {
            assert!(
                model.expect("finished") == whole,
                "{method:?}: rank {rank} of 3 ends with other bytes than one process"
            );
        }
    }
}

/// Row sharding over thread ranks (`FitHooks::row_chunks`): 1, 2, 3 and 4 ranks share a batch's
/// 7 chunks, and 2-D layouts (`FitHooks::row_ranks`) share members too, giving the model bytes
/// of one process with the same chunks — per-member batches, held-out scoring (through the
/// chunked log-joint too) and a classifier included.
#[test]
fn rows_over_ranks_are_one_process_bits() {
    use flock_runner::classifier::Classifier;
    use flock_runner::regressor::{FitHooks, FitOutcome};
    use flock_runner::{DataOrder as Order, FitSpec, Matrix, Regressor};
    let x: Vec<f64> = (0..240).map(|i| (i % 17) as f64 / 4.0 - 2.0).collect();
    let y: Vec<f64> = x.iter().map(|v| (2.0 * v).sin()).collect();
    let labels: Vec<usize> = y.iter().map(|&v| usize::from(v > 0.2)).collect();
    let fit = |hooks: FitHooks<'_>, classify: bool| -> Vec<u8> {
        let x = Matrix::new(&x, 1).unwrap();
        if classify {
            let spec = FitSpec {
                members: 3,
                epochs: 3,
                batch_size: 100,
                ..FitSpec::classification()
            };
            match Classifier::<f64>::from_spec(spec)
                .threads(1)
                .fit_with(&x, &labels, hooks)
                .unwrap()
            {
                FitOutcome::Fitted(model) => model.to_bytes(),
                FitOutcome::Paused { .. } => panic!("paused"),
            }
        } else {
            match Regressor::<f64>::new()
                .members(3)
                .epochs(3)
                .batch_size(100)
                .data_order(Order::PerMember)
                .threads(1)
                .fit_with(&x, &y, hooks)
                .unwrap()
            {
                FitOutcome::Fitted(model) => model.to_bytes(),
                FitOutcome::Paused { .. } => panic!("paused"),
            }
        }
    };
    for classify in [false, true] {
        fn chunked(ranks: Option<&dyn Communicator>, row_ranks: Option<usize>) -> FitHooks<'_> {
            FitHooks {
                ranks,
                row_chunks: Some(15),
                row_ranks,
                ..FitHooks::default()
            }
        }
        let one = fit(chunked(None, None), classify);
        assert!(
            one != fit(FitHooks::default(), classify),
            "chunks change the sums' order, so the bits"
        );
        // Rows only on 1–4 ranks; 2-D: 4 ranks as 2 × 2, 6 as 3 member groups × 2 row ranks.
        let layouts = [
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (4, Some(2)),
            (6, Some(2)),
        ];
        for (ranks, row_ranks) in layouts {
            let world = ThreadRanks::world(ranks);
            let models: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = world
                    .iter()
                    .map(|comm| {
                        let fit = &fit;
                        scope.spawn(move || fit(chunked(Some(comm), row_ranks), classify))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (rank, model) in models.iter().enumerate() {
                assert!(
                    *model == one,
                    "classify {classify}: rank {rank} of {ranks} ({row_ranks:?} per row group) \
                     differs from one process"
                );
            }
        }
    }
}
