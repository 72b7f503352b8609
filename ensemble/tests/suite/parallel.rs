//! `ParallelLogJoint`'s hand-off to its helper threads: every block (and every call within a block)
//! evaluated once with its own first member, errors reported for the lowest failing block, panics carried to the caller.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flock_autograd::{AutogradError, Batch, LogJoint, LogJointOutput, ParamLayout, Weights};
use flock_ensemble::ParallelLogJoint;

/// `ℓ_e = e` (its global member index), `π_e = −e`, gradient = parameters; fails or panics for
/// blocks starting at or after a given member.
struct Probe {
    layout: ParamLayout,
    first: usize,
    fail_from: Option<usize>,
    panic_from: Option<usize>,
    panics: Arc<AtomicBool>,
}

impl LogJoint<f64> for Probe {
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[f64],
        _batch: Batch<'_, f64>,
        _weights: Weights<f64>,
        out: LogJointOutput<'_, f64>,
    ) -> Result<(), AutogradError> {
        if self.panics.load(Ordering::SeqCst) && self.panic_from.is_some_and(|p| self.first >= p) {
            panic!("block at member {} panicked", self.first);
        }
        if self.fail_from.is_some_and(|f| self.first >= f) {
            return Err(AutogradError::BufferLength {
                what: "probe block",
                len: self.first,
                expected: 0,
            });
        }
        for e in 0..members {
            out.loglik[e] = (self.first + e) as f64;
            out.logprior[e] = -((self.first + e) as f64);
        }
        out.grad.copy_from_slice(params);
        Ok(())
    }

    fn set_first_member(&mut self, first: usize) {
        self.first = first;
    }
}

fn parallel(
    parts: usize,
    fail_from: Option<usize>,
    panic_from: Option<usize>,
) -> (ParallelLogJoint<Probe>, Arc<AtomicBool>) {
    let mut layout = ParamLayout::new();
    layout.add("w", [3]).unwrap();
    let panics = Arc::new(AtomicBool::new(true));
    let parts = (0..parts)
        .map(|_| Probe {
            layout: layout.clone(),
            first: usize::MAX,
            fail_from,
            panic_from,
            panics: Arc::clone(&panics),
        })
        .collect();
    (ParallelLogJoint::new(parts), panics)
}

fn evaluate(lj: &mut ParallelLogJoint<Probe>, members: usize) -> Result<Vec<f64>, AutogradError> {
    let params: Vec<f64> = (0..members * 3).map(|i| i as f64 * 0.5).collect();
    let (mut ll, mut lp, mut grad) = (
        vec![f64::NAN; members],
        vec![f64::NAN; members],
        vec![f64::NAN; members * 3],
    );
    let batch = Batch::new(&[0.0], &[0.0], 1)?;
    let weights = Weights {
        loglik: -1.0,
        logprior: -1.0,
    };
    lj.evaluate(
        members,
        &params,
        batch,
        weights,
        LogJointOutput {
            loglik: &mut ll,
            logprior: &mut lp,
            grad: &mut grad,
        },
    )?;
    assert_eq!(grad, params, "every block's gradient written");
    assert!(lp.iter().zip(&ll).all(|(p, l)| *p == -*l));
    Ok(ll)
}

#[test]
fn every_block_runs_once_with_its_first_member() {
    for parts in [1, 2, 3, 4] {
        for per_call in [1, 3, 16] {
            let (lj, _) = parallel(parts, None, None);
            let mut lj = lj.with_members_per_call(per_call);
            for members in [1, 4, 7, 12, 13] {
                for _ in 0..3 {
                    let ll = evaluate(&mut lj, members).unwrap();
                    let expected: Vec<f64> = (0..members).map(|e| e as f64).collect();
                    assert_eq!(
                        ll, expected,
                        "{parts} parts, {per_call} per call, {members} members"
                    );
                }
            }
        }
    }
}

#[test]
fn the_lowest_failing_block_is_reported() {
    // 12 members on 3 parts: blocks start at members 0, 4 and 8; the last two fail.
    let (mut lj, _) = parallel(3, Some(4), None);
    for _ in 0..5 {
        match evaluate(&mut lj, 12) {
            Err(AutogradError::BufferLength { what, len, .. }) => {
                assert_eq!((what, len), ("probe block", 4));
            }
            other => panic!("expected the block at member 4 to fail, got {other:?}"),
        }
    }
    // With fewer members only the first block exists, and it succeeds.
    assert!(evaluate(&mut lj, 3).is_ok());
}

#[test]
fn a_panicking_block_reaches_the_caller_and_the_helpers_survive() {
    let (mut lj, panics) = parallel(3, None, Some(4));
    for _ in 0..3 {
        let caught = catch_unwind(AssertUnwindSafe(|| evaluate(&mut lj, 12)));
        let payload = caught.expect_err("a helper's panic must reach the caller");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("panicked"), "{message}");
    }
    panics.store(false, Ordering::SeqCst);
    let ll = evaluate(&mut lj, 12).unwrap();
    assert_eq!(ll, (0..12).map(|e| e as f64).collect::<Vec<_>>());
}

/// `evaluate_then` hands each block of `member_blocks` to `then` once, on the thread that
/// evaluated it, and only when every block succeeded.
#[test]
fn then_sees_each_block_once_on_its_own_thread_after_all_succeeded() {
    use std::sync::Mutex;
    let caller = std::thread::current().id();
    // (6, 25) and (7, 29): blocks of 5, so fewer blocks (5, 6) than parts — every block still
    // meets the others (this used to wait forever for a sixth, seventh block).
    for (parts, members) in [
        (1, 12),
        (2, 12),
        (3, 12),
        (3, 13),
        (3, 5),
        (2, 3),
        (6, 25),
        (7, 29),
    ] {
        let (mut lj, _) = parallel(parts, None, None);
        let batch = Batch::new(&[0.0], &[0.0], 1).unwrap();
        let mut expected = Vec::new();
        lj.member_blocks(members, &batch, &mut expected);
        let seen = Mutex::new(Vec::new());
        let mut params: Vec<f64> = (0..members * 3).map(|i| i as f64).collect();
        let (mut ll, mut lp, mut grad) = (
            vec![0.0; members],
            vec![0.0; members],
            vec![0.0; members * 3],
        );
        lj.evaluate_then(
            members,
            &mut params,
            batch,
            Weights {
                loglik: -1.0,
                logprior: -1.0,
            },
            LogJointOutput {
                loglik: &mut ll,
                logprior: &mut lp,
                grad: &mut grad,
            },
            &|block| {
                assert_eq!(block.params.len(), block.members.len() * 3);
                assert_eq!(
                    block.grad, &*block.params,
                    "the block's gradient is written"
                );
                let first = block.members.start as f64;
                assert_eq!(block.loglik.first(), Some(&first));
                block.params.iter_mut().for_each(|v| *v = -*v);
                let on_caller = std::thread::current().id() == caller;
                seen.lock()
                    .unwrap()
                    .push((block.index, block.members.clone(), on_caller));
            },
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_by_key(|(i, _, _)| *i);
        let ranges: Vec<_> = seen.iter().map(|(_, r, _)| r.clone()).collect();
        assert_eq!(ranges, expected, "{parts} parts, {members} members");
        let per_block = members.div_ceil(parts.min(members / 4).max(1));
        assert_eq!(
            expected.len(),
            members.div_ceil(per_block),
            "{parts} parts, {members} members"
        );
        for (i, _, on_caller) in &seen {
            assert_eq!(*on_caller, *i == 0, "block {i} runs where it was evaluated");
        }
        assert!(
            params.iter().enumerate().all(|(i, v)| *v == -(i as f64)),
            "every block's params changed once"
        );
    }
    // A failing or panicking block: `then` runs for no block, and nothing waits forever.
    for (fail, panic) in [(Some(4), None), (None, Some(8))] {
        let (mut lj, _) = parallel(3, fail, panic);
        let called = AtomicBool::new(false);
        let mut params = vec![1.0; 36];
        let (mut ll, mut lp, mut grad) = (vec![0.0; 12], vec![0.0; 12], vec![0.0; 36]);
        let result = catch_unwind(AssertUnwindSafe(|| {
            lj.evaluate_then(
                12,
                &mut params,
                Batch::new(&[0.0], &[0.0], 1).unwrap(),
                Weights {
                    loglik: -1.0,
                    logprior: -1.0,
                },
                LogJointOutput {
                    loglik: &mut ll,
                    logprior: &mut lp,
                    grad: &mut grad,
                },
                &|_| called.store(true, Ordering::SeqCst),
            )
        }));
        assert!(
            matches!(result, Ok(Err(_)) | Err(_)),
            "the failure reaches the caller"
        );
        assert!(
            !called.load(Ordering::SeqCst),
            "then ran although a block failed"
        );
    }
}

/// An `ensemble_step` whose log-joint fails in one block leaves every member's parameters and
/// optimizer state as they were — also the blocks that evaluated without error.
#[test]
fn a_step_failing_in_one_block_changes_no_block() {
    use flock_autograd::Parameters;
    use flock_ensemble::{EnsembleState, ensemble_step};
    use flock_optim::{AdamConfig, MemberState, adam};
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let (mut good, _) = parallel(3, None, None);
    let (mut failing, _) = parallel(3, Some(8), None);
    let layout = good.layout().clone();
    let params =
        Parameters::from_values(layout, 12, (0..36).map(|i| i as f64 * 0.1).collect()).unwrap();
    let mut state = EnsembleState::from_params(params, &opt).unwrap();
    let batch = Batch::new(&[0.0], &[0.0], 1).unwrap();
    ensemble_step(&mut state, batch, &mut good, &opt, 1.0, 1.0).unwrap();
    fn saved<S: MemberState>(s: &EnsembleState<f64, S>) -> (Vec<f64>, Vec<f64>) {
        let mut v = Vec::new();
        s.opt_state().save(&mut v);
        (s.params.values().to_vec(), v)
    }
    let before = saved(&state);
    assert!(ensemble_step(&mut state, batch, &mut failing, &opt, 1.0, 1.0).is_err());
    assert_eq!(saved(&state), before);
}
