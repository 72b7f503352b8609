//! `ParallelLogJoint`'s hand-off to its helper threads: every block (and every call within a block)
//! evaluated once with its own first member, errors reported for the lowest failing block, panics carried to the caller.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use flock_autograd::{AutogradError, Batch, LogJoint, LogJointOutput, ParamLayout, Weights};
use flock_ensemble::ParallelLogJoint;

/// `ℓ_e = e` (its global member index), `π_e = −e`, gradient = parameters; fails or panics for
/// blocks starting at or after a given member. Logs `(first member, part, thread)` of each call.
struct Probe {
    layout: ParamLayout,
    first: usize,
    fail_from: Option<usize>,
    panic_from: Option<usize>,
    panics: Arc<AtomicBool>,
    part: usize,
    streams: bool,
    calls: Arc<Mutex<Vec<(usize, usize, ThreadId)>>>,
    /// This part sleeps 200 ms in its next call, the others 1 ms in each.
    stall_part: Option<usize>,
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
        if self.stall_part == Some(self.part) {
            self.stall_part = None;
            std::thread::sleep(std::time::Duration::from_millis(200));
        } else if self.stall_part.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if self.fail_from.is_some_and(|f| self.first >= f) {
            return Err(AutogradError::BufferLength {
                what: "probe block",
                len: self.first,
                expected: 0,
            });
        }
        self.calls
            .lock()
            .unwrap()
            .push((self.first, self.part, std::thread::current().id()));
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

    fn holds_streams(&self) -> bool {
        self.streams
    }
}

fn parallel(
    parts: usize,
    fail_from: Option<usize>,
    panic_from: Option<usize>,
) -> (ParallelLogJoint<Probe>, Arc<AtomicBool>) {
    let (lj, panics, _) = parallel_logged(parts, false, fail_from, panic_from);
    (lj, panics)
}

type CallLog = Arc<Mutex<Vec<(usize, usize, ThreadId)>>>;

fn parallel_logged(
    parts: usize,
    streams: bool,
    fail_from: Option<usize>,
    panic_from: Option<usize>,
) -> (ParallelLogJoint<Probe>, Arc<AtomicBool>, CallLog) {
    let mut layout = ParamLayout::new();
    layout.add("w", [3]).unwrap();
    let panics = Arc::new(AtomicBool::new(true));
    let calls = CallLog::default();
    let parts = (0..parts)
        .map(|part| Probe {
            layout: layout.clone(),
            first: usize::MAX,
            fail_from,
            panic_from,
            panics: Arc::clone(&panics),
            part,
            streams,
            calls: Arc::clone(&calls),
            stall_part: None,
        })
        .collect();
    (ParallelLogJoint::new(parts), panics, calls)
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
/// evaluated it, and only when every block succeeded: four blocks per thread, which any thread
/// may take — or, for a log-joint holding streams, one per thread, each evaluated by the part of
/// its index at every evaluation.
#[test]
fn then_sees_each_block_once_on_its_own_thread_after_all_succeeded() {
    // (6, 25) and (7, 29) with streams: blocks of 5, so fewer blocks (5, 6) than parts — every
    // block still meets the others (this used to wait forever for a sixth, seventh block).
    for (parts, members, streams) in [
        (1, 12, false),
        (2, 12, false),
        (3, 12, false),
        (3, 13, false),
        (3, 5, false),
        (2, 3, false),
        (6, 25, false),
        (7, 29, false),
        (2, 16, false),
        (2, 12, true),
        (3, 13, true),
        (6, 25, true),
        (7, 29, true),
    ] {
        let case = format!("{parts} parts, {members} members, streams {streams}");
        let (mut lj, _, calls) = parallel_logged(parts, streams, None, None);
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
                seen.lock().unwrap().push((
                    block.index,
                    block.members.clone(),
                    std::thread::current().id(),
                ));
            },
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_by_key(|(i, _, _)| *i);
        let ranges: Vec<_> = seen.iter().map(|(_, r, _)| r.clone()).collect();
        assert_eq!(ranges, expected, "{case}");
        let threads = parts.min(members / 4).max(1);
        let wanted = if threads > 1 && !streams {
            threads * flock_ensemble::BLOCKS_PER_THREAD
        } else {
            threads
        };
        let per_block = members.div_ceil(wanted);
        assert_eq!(expected.len(), members.div_ceil(per_block), "{case}");
        let calls = calls.lock().unwrap().clone();
        for (i, range, then_on) in &seen {
            let evaluated: Vec<_> = calls.iter().filter(|c| c.0 == range.start).collect();
            assert_eq!(evaluated.len(), 1, "{case}: block {i} evaluated once");
            let (_, part, thread) = evaluated[0];
            assert_eq!(
                then_on, thread,
                "{case}: block {i} finished where it was evaluated"
            );
            if streams {
                assert_eq!(*part, *i, "{case}: block {i} evaluated by its own part");
            }
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

/// A thread held up in its first block leaves the other blocks to the others: with 16 members on
/// two threads (eight blocks of two, 1 ms each), the caller takes at least the seven blocks the
/// helper — stalled 200 ms in its first — did not, where a fixed split would have waited for
/// the helper's half. The results are the same.
#[test]
fn a_stalled_thread_leaves_the_remaining_blocks_to_the_others() {
    let (mut lj, _, calls) = parallel_logged(2, false, None, None);
    let caller = std::thread::current().id();
    for part in lj.parts_mut() {
        part.stall_part = Some(1);
    }
    let mut lj = lj.with_members_per_call(16);
    let ll = evaluate(&mut lj, 16).unwrap();
    assert_eq!(ll, (0..16).map(|e| e as f64).collect::<Vec<_>>());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 8, "{calls:?}");
    let on_caller = calls.iter().filter(|c| c.2 == caller).count();
    assert!(on_caller >= 7, "{calls:?}");
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
