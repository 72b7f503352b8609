//! Members in parallel: one log-joint per thread, each on a contiguous block of members.

use flock_autograd::{AutogradError, Batch, LogJoint, LogJointOutput, ParamLayout, Weights};
use flock_kernels::Element;
use std::sync::Mutex;

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
/// are done. A
/// step is ~100 µs, and waking a sleeping thread costs 10–20 µs on the 2-core development machine
/// (handing work to rayon's global pool from outside it: 13–22 µs per call, measured).
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
    /// `None`: [`default_members_per_call`] of the layout.
    members_per_call: Option<usize>,
    first_member: usize,
    /// One helper thread per part after the first (fewer if the system could not make them:
    /// the remaining blocks then run on the caller, with the same results).
    helpers: Vec<Helper>,
}

/// The default number of members one call of a part's log-joint evaluates at most, for `P`
/// parameters per member: `65,536 / P` clamped to `1..=16` — 16 for the seed's MLP (`P = 1,153`),
/// 3 for hidden width 128, 1 for width 256. Every op of a recorded graph sweeps all the members of
/// its call, so wide networks want few members per call (their activations then stay in cache)
/// and small ones many (each call's fixed cost is then shared). Measured on one thread, E = 16,
/// B = 80: width 256 f32 7.7 ms per step at 1 member per call against 11.4 ms at 16; E = 256 of
/// the seed's MLP f64 28.7 µs per member at 16 against 43.7 µs all at once.
///
/// ```
/// use flock_ensemble::default_members_per_call;
/// assert_eq!(default_members_per_call(1_153), 16); // 1→32→32→1
/// assert_eq!(default_members_per_call(16_897), 3); // 1→128→128→1
/// assert_eq!(default_members_per_call(66_561), 1); // 1→256→256→1
/// ```
pub fn default_members_per_call(params_per_member: usize) -> usize {
    (65_536 / params_per_member.max(1)).clamp(1, 16)
}

impl<L> ParallelLogJoint<L> {
    /// One block of members per element of `parts` (e.g. one per core); at least 4 members per
    /// block, so tiny ensembles are not split. Each block is evaluated
    /// [`default_members_per_call`] members at a time.
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
type Block<'a, L, T> = (
    (((&'a mut L, &'a [T]), &'a mut [T]), &'a mut [T]),
    &'a mut [T],
);

/// Evaluates one block of members (`loglik.len()` of them, the first being member `first` of the
/// ensemble) with `part`, at most `at_once` members per call, so that one call's intermediate
/// values stay in cache however large the ensemble is.
#[allow(clippy::too_many_arguments)]
fn evaluate_block<T: Element, L: LogJoint<T>>(
    part: &mut L,
    first: usize,
    at_once: usize,
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
    let at_once = at_once.max(1);
    let chunks = params
        .chunks(at_once * p)
        .zip(grad.chunks_mut(at_once * p))
        .zip(loglik.chunks_mut(at_once))
        .zip(logprior.chunks_mut(at_once));
    for (i, (((params, grad), loglik), logprior)) in chunks.enumerate() {
        part.set_first_member(first + i * at_once);
        part.evaluate(
            loglik.len(),
            params,
            batch,
            weights,
            LogJointOutput {
                loglik,
                logprior,
                grad,
            },
        )?;
    }
    Ok(())
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
        let p = self.parts[0].layout().member_size();
        if batch.per_member.is_some() || members == 0 || p == 0 {
            // One batch per member (or nothing to split): the log-joint takes the whole ensemble
            // at once.
            self.parts[0].set_first_member(self.first_member);
            return self.parts[0].evaluate(members, params, batch, weights, out);
        }
        if params.len() != members * p || out.grad.len() != members * p {
            return Err(AutogradError::BufferLength {
                what: "params or grad",
                len: params.len().min(out.grad.len()),
                expected: members * p,
            });
        }
        let blocks = self
            .parts
            .len()
            .min(members / self.min_members_per_part.max(1))
            .max(1);
        let per_block = members.div_ceil(blocks);
        let LogJointOutput {
            loglik,
            logprior,
            grad,
        } = out;
        let at_once = self
            .members_per_call
            .unwrap_or_else(|| default_members_per_call(p));
        let first_member = self.first_member;
        let run = |b: usize, ((((part, params), grad), loglik), logprior): Block<'_, L, T>| {
            let first = first_member + b * per_block;
            evaluate_block(
                part, first, at_once, params, batch, weights, grad, loglik, logprior,
            )
        };
        let blocks = self.parts[..blocks]
            .iter_mut()
            .zip(params.chunks(per_block * p))
            .zip(grad.chunks_mut(per_block * p))
            .zip(loglik.chunks_mut(per_block))
            .zip(logprior.chunks_mut(per_block));
        // Errors are reported for the lowest failing block, as a sequential evaluation would.
        let first_error: Mutex<Option<(usize, AutogradError)>> = Mutex::new(None);
        let record = |b: usize, result: Result<(), AutogradError>| {
            if let Err(e) = result {
                let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_none_or(|(first, _)| b < *first) {
                    *slot = Some((b, e));
                }
            }
        };
        let mut blocks = blocks.enumerate();
        let mut own = blocks.next().map(|(_, block)| block);
        spread(
            &mut self.helpers,
            &mut blocks,
            &|b, block| record(b, run(b, block)),
            &mut || {
                if let Some(block) = own.take() {
                    record(0, run(0, block));
                }
            },
        );
        // Blocks beyond the helpers (only if threads could not be made) run here.
        for (b, block) in blocks {
            record(b, run(b, block));
        }
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    fn set_first_member(&mut self, first: usize) {
        self.first_member = first;
    }
}
