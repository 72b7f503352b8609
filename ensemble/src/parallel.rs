//! Members in parallel: one log-joint per thread, each on a contiguous block of members.

use core::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use flock_autograd::{
    AutogradError, Batch, EvaluatedBlock, LogJoint, LogJointOutput, ParamLayout, Weights,
};
use flock_kernels::Element;

use crate::helper::Helper;

/// Evaluates a [`LogJoint`] on several threads by splitting the ensemble into contiguous blocks
/// of members, one copy of the log-joint (and its tape) per block.
///
/// Parameters are member-major, so a block of members is a contiguous slice of the parameter and
/// gradient buffers, and members never mix: results are bitwise those of one sequential
/// evaluation, whatever the number of blocks. Small ensembles stay on one thread.
///
/// The calling thread evaluates the first block itself; each further block runs on a helper
/// thread this value owns (made in [`ParallelLogJoint::new`], joined on drop), which keeps
/// polling for 0.5 ms after each block before it parks, while the caller polls until the helpers
/// are done. A step is ~100 µs, and waking a sleeping thread costs 10–20 µs on the 2-core
/// development machine (handing work to rayon's global pool from outside it: 13–22 µs per call,
/// measured).
///
/// [`LogJoint::evaluate_then`] runs its `then` on each block on the thread that evaluated it, once
/// every block has evaluated without error: [`ensemble_step`](crate::ensemble_step) updates each
/// block's members there, so no core reads gradients or writes parameters that the other holds.
///
/// ```
/// use flock_autograd::*;
/// use flock_ensemble::ParallelLogJoint;
/// let mut layout = ParamLayout::new();
/// let w = layout.add("w", [1])?;
/// let make = || TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
///     let w = g.param(w)?;
///     let x = g.squeeze_last(x)?;
///     let f = g.mul(x, w)?;
///     let r = g.sub(y, f)?;
///     let sse = g.sum_squares(r);
///     Ok((g.scale(sse, -0.5), sse))
/// });
/// let mut parallel = ParallelLogJoint::new(vec![make(), make()]);
/// let params: Vec<f64> = (0..8).map(f64::from).collect(); // 8 members
/// let (mut ll, mut lp, mut grad) = ([0.0; 8], [0.0; 8], [0.0; 8]);
/// parallel.evaluate(8, &params, Batch::new(&[1.0], &[2.0], 1)?,
///     Weights { loglik: -1.0, logprior: 0.0 },
///     LogJointOutput { loglik: &mut ll, logprior: &mut lp, grad: &mut grad })?;
/// assert_eq!(grad[5], 5.0 - 2.0); // d/dw ½(2 − w)² at w = 5
/// # Ok::<(), AutogradError>(())
/// ```
#[derive(Debug)]
pub struct ParallelLogJoint<L> {
    parts: Vec<L>,
    min_members_per_part: usize,
    /// `None`: [`default_members_per_call`] of the layout and the measured storage.
    members_per_call: Option<usize>,
    first_member: usize,
    /// One helper thread per part after the first (fewer if the system could not make them:
    /// the remaining blocks then run on the caller, with the same results).
    helpers: Vec<Helper>,
}

/// The bytes one call's working set — its intermediate values and their gradients, the members'
/// parameters and gradients — aims at: three quarters of a 1 MiB L2 cache (AMD Zen 4; Intel's
/// recent server cores have 1–2 MiB).
const CALL_BYTES: usize = 768 * 1024;

/// The default number of members one call of a part's log-joint evaluates at most, for `P`
/// parameters per member and a working storage of `W` elements per member
/// ([`LogJoint::workspace_per_member`]): as many as fit `(W + 2P)·size_of::<T>()` bytes into
/// 768 KiB, clamped to `1..=16`; 1 while `W` is unknown (the first call of a log-joint, after
/// which its measured storage decides). Every op of a recorded graph sweeps all the members of
/// its call, so large networks and large batches want few members per call (their activations
/// then stay in cache) and small ones many (each call's fixed cost is then shared). Measured on
/// one thread (f64, members per call 1 / best / 16): E = 64, B = 256, 1→64→64→1 12.9 / 12.9 /
/// 18.0 ms per step; the seed's MLP on 1,000 rows 4.26 / 4.26 / 6.24 ms; on 80 rows (the seed)
/// 388 / 378 / 385 µs.
///
/// ```
/// use flock_ensemble::default_members_per_call;
/// // The seed's MLP (P = 1,153) on 80 rows keeps ≈ 10,600 values and gradients per member
/// // (measured): 7 per call in f64, 15 in f32.
/// assert_eq!(default_members_per_call::<f64>(1_153, Some(10_600)), 7);
/// assert_eq!(default_members_per_call::<f32>(1_153, Some(10_600)), 15);
/// // A member keeping 128 Ki values (e.g. four 256 × 64 activations and their gradients): one
/// // at a time.
/// assert_eq!(default_members_per_call::<f32>(4_353, Some(131_072)), 1);
/// assert_eq!(default_members_per_call::<f64>(1_153, None), 1);
/// ```
pub fn default_members_per_call<T>(
    params_per_member: usize,
    workspace_per_member: Option<usize>,
) -> usize {
    let Some(workspace) = workspace_per_member else {
        return 1;
    };
    let bytes = (workspace + 2 * params_per_member) * core::mem::size_of::<T>();
    (CALL_BYTES / bytes.max(1)).clamp(1, 16)
}

/// Parameters a block of members needs to be split off to a thread of its own.
const MIN_BLOCK_PARAMS: usize = 4 * 1_152;

impl<L> ParallelLogJoint<L> {
    /// One block of members per element of `parts` (e.g. one per core); at least 4 members — or
    /// about 4,600 parameters' worth, for larger networks — per block, so tiny ensembles are not
    /// split. Each block is evaluated
    /// [`default_members_per_call`] members at a time (from the measured storage of its
    /// log-joint's previous call).
    ///
    /// # Panics
    /// If `parts` is empty.
    pub fn new(parts: Vec<L>) -> ParallelLogJoint<L> {
        assert!(
            !parts.is_empty(),
            "ParallelLogJoint needs at least one log-joint"
        );
        let helpers = (1..parts.len())
            .map_while(|i| Helper::spawn(format!("flock-members-{i}")))
            .collect();
        ParallelLogJoint {
            parts,
            min_members_per_part: 4,
            members_per_call: None,
            first_member: 0,
            helpers,
        }
    }
}

impl<L> ParallelLogJoint<L> {
    /// Evaluates each block at most `members` members per call of its log-joint (at least 1):
    /// an op of a recorded graph sweeps all the members of its call, so bounding them keeps one
    /// call's intermediate values in cache for large ensembles. Results do not depend on it.
    pub fn with_members_per_call(mut self, members: usize) -> ParallelLogJoint<L> {
        self.members_per_call = Some(members.max(1));
        self
    }

    /// The log-joints, one per block.
    pub fn parts(&self) -> &[L] {
        &self.parts
    }

    /// The log-joints, one per block, mutably.
    pub fn parts_mut(&mut self) -> &mut [L] {
        &mut self.parts
    }
}

/// Hands the next block to the first helper and recurses on the rest of them; the innermost
/// call runs `own` on this thread. Returns when every block handed out is done.
fn spread<B: Send>(
    helpers: &mut [Helper],
    blocks: &mut impl Iterator<Item = (usize, B)>,
    evaluate: &(dyn Fn(usize, B) + Sync),
    own: &mut dyn FnMut(),
) {
    let Some((helper, rest)) = helpers.split_first_mut() else {
        return own();
    };
    let Some((b, block)) = blocks.next() else {
        return own();
    };
    let mut block = Some(block);
    let mut job = || {
        if let Some(block) = block.take() {
            evaluate(b, block);
        }
    };
    helper.run(&mut job, || spread(rest, blocks, evaluate, own));
}

/// One block's log-joint and its slices: `((((part, params), grad), loglik), logprior)`.
type Block<'a, L, P, T> = ((((&'a mut L, P), &'a mut [T]), &'a mut [T]), &'a mut [T]);

/// What runs on a block once every block is evaluated: `(block, its members, params, grad,
/// loglik, logprior)`.
type Finish<'f, P, T> = dyn Fn(usize, Range<usize>, P, &mut [T], &[T], &[T]) + Sync + 'f;

/// Evaluates one block of members (`loglik.len()` of them, the first being member `first` of the
/// ensemble; `batch` is theirs — shared, or their own rows) with `part`, `at_once` members per call or, when `None`, as many as
/// [`default_members_per_call`] finds fit in cache from the storage `part` measured on its
/// previous call — so that one call's intermediate values stay in cache however large the
/// ensemble is.
#[allow(clippy::too_many_arguments)]
fn evaluate_block<T: Element, L: LogJoint<T>>(
    part: &mut L,
    first: usize,
    at_once: Option<usize>,
    params: &[T],
    batch: Batch<'_, T>,
    weights: Weights<T>,
    grad: &mut [T],
    loglik: &mut [T],
    logprior: &mut [T],
) -> Result<(), AutogradError> {
    let members = loglik.len();
    // The caller sends empty ensembles and empty layouts to the log-joint directly.
    debug_assert!(members > 0 && params.len() >= members);
    let p = params.len() / members;
    let mut start = 0;
    while start < members {
        let count = at_once
            .unwrap_or_else(|| {
                default_members_per_call::<T>(p, part.workspace_per_member(batch.rows))
            })
            .clamp(1, members - start);
        let (params, grad) = (&params[start * p..], &mut grad[start * p..]);
        let end = start + count;
        part.set_first_member(first + start);
        part.evaluate(
            count,
            &params[..count * p],
            batch.members(start..end),
            weights,
            LogJointOutput {
                loglik: &mut loglik[start..end],
                logprior: &mut logprior[start..end],
                grad: &mut grad[..count * p],
            },
        )?;
        start = end;
    }
    Ok(())
}

/// Where the blocks of one evaluation meet before any of them runs its `finish`: every block
/// arrives (also when it fails or panics), and `finish` runs only if none failed.
#[derive(Default)]
struct Meeting {
    arrived: AtomicUsize,
    failed: AtomicBool,
}

impl Meeting {
    /// Waits (spinning, then yielding) until `blocks` blocks have arrived; whether all succeeded.
    fn all_succeeded(&self, blocks: usize) -> bool {
        let mut spins = 0u32;
        while self.arrived.load(Ordering::Acquire) < blocks {
            if spins < 64 {
                core::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        !self.failed.load(Ordering::Acquire)
    }
}

/// A block's arrival at the [`Meeting`], made when dropped — so a panicking block arrives too,
/// as a failure, and no other block waits for it forever.
struct Arrival<'a> {
    meeting: &'a Meeting,
    succeeded: bool,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if !self.succeeded {
            self.meeting.failed.store(true, Ordering::Release);
        }
        self.meeting.arrived.fetch_add(1, Ordering::AcqRel);
    }
}

impl<L> ParallelLogJoint<L> {
    /// Members per block (the last block may hold fewer): `members` shared by one part per thread
    /// that can run it, with at least [`ParallelLogJoint::new`]'s minimum of members per block.
    /// The number of blocks is derived from it, `members.div_ceil(block_size)`, which can be
    /// fewer than the parts (25 members over 6 parts: blocks of 5, so 5 blocks).
    fn block_size<T: Element>(&self, members: usize) -> usize
    where
        L: LogJoint<T>,
    {
        // A block is worth a thread when it holds about 4,600 parameters' worth of members (four
        // of the seed's 1,153-parameter MLPs); one large network already is.
        let p = self.parts[0].layout().member_size().max(1);
        let min_members = MIN_BLOCK_PARAMS
            .div_ceil(p)
            .clamp(1, self.min_members_per_part.max(1));
        let parts = self
            .parts
            .len()
            .min(self.helpers.len() + 1)
            .min(members / min_members)
            .max(1);
        members.div_ceil(parts).max(1)
    }

    /// Evaluates `members` members in blocks of [`ParallelLogJoint::block_size`] — the first on
    /// this thread, each other on a helper — `params` being their parameter slices; then, when
    /// every block succeeded, runs `finish` on each block on the thread that evaluated it.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_blocks<T, P>(
        &mut self,
        members: usize,
        p: usize,
        params: impl Iterator<Item = P>,
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
        finish: Option<&Finish<'_, P, T>>,
    ) -> Result<(), AutogradError>
    where
        T: Element,
        L: LogJoint<T> + Send,
        P: AsRef<[T]> + Send,
    {
        let per_block = self.block_size(members);
        let blocks = members.div_ceil(per_block);
        let LogJointOutput {
            loglik,
            logprior,
            grad,
        } = out;
        let at_once = self.members_per_call;
        let first_member = self.first_member;
        // Errors are reported for the lowest failing block, as a sequential evaluation would.
        let first_error: Mutex<Option<(usize, AutogradError)>> = Mutex::new(None);
        let meeting = Meeting::default();
        let run = |b: usize, ((((part, params), grad), loglik), logprior): Block<'_, L, P, T>| {
            let mut arrival = Arrival {
                meeting: &meeting,
                succeeded: false,
            };
            let first = first_member + b * per_block;
            let own = b * per_block..b * per_block + loglik.len();
            let result = evaluate_block(
                part,
                first,
                at_once,
                params.as_ref(),
                batch.members(own),
                weights,
                grad,
                loglik,
                logprior,
            );
            arrival.succeeded = result.is_ok();
            if let Err(e) = result {
                let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_none_or(|(first, _)| b < *first) {
                    *slot = Some((b, e));
                }
            }
            drop(arrival);
            if let Some(finish) = finish
                && meeting.all_succeeded(blocks)
            {
                let range = b * per_block..b * per_block + loglik.len();
                finish(b, range, params, grad, loglik, logprior);
            }
        };
        let mut blocks = self.parts[..blocks]
            .iter_mut()
            .zip(params)
            .zip(grad.chunks_mut(per_block * p))
            .zip(loglik.chunks_mut(per_block))
            .zip(logprior.chunks_mut(per_block))
            .enumerate();
        let mut own = blocks.next().map(|(_, block)| block);
        spread(&mut self.helpers, &mut blocks, &run, &mut || {
            if let Some(block) = own.take() {
                run(0, block);
            }
        });
        debug_assert!(blocks.next().is_none(), "a block without a thread");
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether `evaluate` goes to the first log-joint unsplit (nothing to split); checks the
    /// buffers otherwise — a per-member batch must be the ensemble's, as each block takes its
    /// members' rows.
    fn unsplit<T: Element>(
        &self,
        members: usize,
        params: usize,
        batch: &Batch<'_, T>,
        grad: usize,
    ) -> Result<bool, AutogradError>
    where
        L: LogJoint<T>,
    {
        let p = self.parts[0].layout().member_size();
        if members == 0 || p == 0 {
            return Ok(true);
        }
        if let Some(batch_members) = batch.per_member
            && batch_members != members
        {
            return Err(AutogradError::BufferLength {
                what: "per-member batch (members)",
                len: batch_members,
                expected: members,
            });
        }
        if params != members * p || grad != members * p {
            return Err(AutogradError::BufferLength {
                what: "params or grad",
                len: params.min(grad),
                expected: members * p,
            });
        }
        Ok(false)
    }
}

impl<T: Element, L: LogJoint<T> + Send> LogJoint<T> for ParallelLogJoint<L> {
    fn layout(&self) -> &ParamLayout {
        self.parts[0].layout()
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError> {
        if self.unsplit(members, params.len(), &batch, out.grad.len())? {
            // Nothing to split: the log-joint takes the whole ensemble at once.
            self.parts[0].set_first_member(self.first_member);
            return self.parts[0].evaluate(members, params, batch, weights, out);
        }
        let p = params.len() / members;
        let chunks = params.chunks(self.block_size(members) * p);
        self.evaluate_blocks(members, p, chunks, batch, weights, out, None)
    }

    fn member_blocks(&self, members: usize, _batch: &Batch<'_, T>, blocks: &mut Vec<Range<usize>>) {
        blocks.clear();
        let p = self.parts[0].layout().member_size();
        let per_block = if p == 0 {
            members.max(1)
        } else {
            self.block_size(members)
        };
        blocks.extend(
            (0..members)
                .step_by(per_block)
                .map(|start| start..(start + per_block).min(members)),
        );
        if blocks.is_empty() {
            blocks.push(0..0);
        }
    }

    fn evaluate_then(
        &mut self,
        members: usize,
        params: &mut [T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
        then: &(dyn Fn(EvaluatedBlock<'_, T>) + Sync),
    ) -> Result<(), AutogradError> {
        if self.unsplit(members, params.len(), &batch, out.grad.len())? {
            self.parts[0].set_first_member(self.first_member);
            return self.parts[0].evaluate_then(members, params, batch, weights, out, then);
        }
        let p = params.len() / members;
        let chunks = params.chunks_mut(self.block_size(members) * p);
        let finish = |index, members, params, grad: &mut [T], loglik: &[T], logprior: &[T]| {
            then(EvaluatedBlock {
                index,
                members,
                params,
                grad,
                loglik,
                logprior,
            })
        };
        self.evaluate_blocks(members, p, chunks, batch, weights, out, Some(&finish))
    }

    fn set_first_member(&mut self, first: usize) {
        self.first_member = first;
    }

    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        self.parts[0].workspace_per_member(rows)
    }

    /// Each member's position in the part that evaluated it (the furthest of the parts', as a
    /// part that never evaluated a member reports 0 for it).
    fn stream_positions(&self, positions: &mut Vec<u64>) -> bool {
        positions.clear();
        let mut part = Vec::new();
        let mut any = false;
        for p in &self.parts {
            if p.stream_positions(&mut part) {
                any = true;
                if positions.len() < part.len() {
                    positions.resize(part.len(), 0);
                }
                for (total, &d) in positions.iter_mut().zip(&part) {
                    *total = (*total).max(d);
                }
            }
        }
        any
    }

    fn seek_streams(&mut self, positions: &[u64]) {
        for p in &mut self.parts {
            p.seek_streams(positions);
        }
    }

    /// One thread per part that has one (the parts beyond the helpers made run on the caller).
    fn threads(&self) -> usize {
        self.parts.len().min(self.helpers.len() + 1)
    }

    /// `work` with the first part on this thread and with each further part on its helper.
    fn on_each_thread(&mut self, work: &(dyn Fn(&mut dyn LogJoint<T>) + Sync)) -> bool {
        let threads = LogJoint::<T>::threads(self);
        if threads < 2 {
            return false;
        }
        let (own, others) = self.parts[..threads]
            .split_first_mut()
            .expect("at least two parts");
        let mut others = others.iter_mut().enumerate();
        let run = |_: usize, part: &mut L| work(part);
        spread(&mut self.helpers, &mut others, &run, &mut || {
            work(&mut *own)
        });
        true
    }
}
