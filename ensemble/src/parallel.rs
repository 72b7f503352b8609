//! Members in parallel: one log-joint per thread, each on a contiguous block of members.

use flock_autograd::{AutogradError, Batch, LogJoint, LogJointOutput, ParamLayout, Weights};
use flock_kernels::Element;
use rayon::prelude::*;

/// Evaluates a [`LogJoint`] on several threads by splitting the ensemble into contiguous blocks
/// of members, one copy of the log-joint (and its tape) per block.
///
/// Parameters are member-major, so a block of members is a contiguous slice of the parameter and
/// gradient buffers, and members never mix: results are bitwise those of one sequential
/// evaluation, whatever the number of blocks. Small ensembles stay on one thread.
///
/// The blocks run on rayon's pool. Call the training loop from a thread of that pool —
/// `rayon::scope(|_| …)` around the fit, as the `flock` binary, the `seed_cold` example and the
/// benchmarks do: from any other thread, every evaluation is injected into the pool and the caller
/// sleeps until it is done, which costs 13–22 µs per step on the 2-core development machine (an
/// empty `rayon::join` from outside the pool; 0.02 µs from inside), against a seed step of
/// about 120 µs.
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
    first_member: usize,
}

impl<L> ParallelLogJoint<L> {
    /// One block of members per element of `parts` (e.g. one per core); at least 4 members per
    /// block, so tiny ensembles are not split.
    ///
    /// # Panics
    /// If `parts` is empty.
    pub fn new(parts: Vec<L>) -> ParallelLogJoint<L> {
        assert!(
            !parts.is_empty(),
            "ParallelLogJoint needs at least one log-joint"
        );
        ParallelLogJoint {
            parts,
            min_members_per_part: 4,
            first_member: 0,
        }
    }
}

impl<L> ParallelLogJoint<L> {
    /// The log-joints, one per block.
    pub fn parts(&self) -> &[L] {
        &self.parts
    }

    /// The log-joints, one per block, mutably.
    pub fn parts_mut(&mut self) -> &mut [L] {
        &mut self.parts
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
        let p = self.parts[0].layout().member_size();
        let blocks = self
            .parts
            .len()
            .min(members / self.min_members_per_part.max(1))
            .max(1);
        if blocks == 1 || batch.per_member.is_some() {
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
        let per_block = members.div_ceil(blocks);
        let LogJointOutput {
            loglik,
            logprior,
            grad,
        } = out;
        let first_member = self.first_member;
        self.parts[..blocks]
            .par_iter_mut()
            .enumerate()
            .map(|(b, part)| {
                part.set_first_member(first_member + b * per_block);
                part
            })
            .zip(params.par_chunks(per_block * p))
            .zip(grad.par_chunks_mut(per_block * p))
            .zip(loglik.par_chunks_mut(per_block))
            .zip(logprior.par_chunks_mut(per_block))
            .map(|((((part, params), grad), loglik), logprior)| {
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
                )
            })
            .collect::<Result<Vec<()>, AutogradError>>()?;
        Ok(())
    }

    fn set_first_member(&mut self, first: usize) {
        self.first_member = first;
    }
}
