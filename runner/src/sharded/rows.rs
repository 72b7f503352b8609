//! Row sharding: a log-joint that sums a batch's gradient over fixed chunks of rows, in chunk
//! order, the chunks shared by ranks.

use core::ops::Range;

use flock_autograd::{
    AutogradError, Batch, EvaluatedBlock, LogJoint, LogJointOutput, ParamLayout, Weights,
    evaluate_then_one_block,
};
use flock_kernels::Element;

use crate::distributed::{Communicator, block};

/// A log-joint whose batches are cut into chunks of `chunk_rows` rows (by position in the
/// batch, the last one shorter): each chunk is evaluated apart — the first with the prior, the
/// others without — and the chunks' log-likelihoods and gradients are added in chunk order. The
/// chunks are shared by `peers` (each rank a contiguous block of them; every rank receives every
/// chunk's sums, so every rank takes the same step): row sharding. Chunk boundaries and the
/// order of the sums do not depend on the number of ranks, so neither do the bits — one process
/// (or none of MPI) gives the bits of any number of ranks. Without `chunk_rows` it is `inner`
/// itself.
///
/// Deterministic log-joints only: a log-joint that draws noise per evaluation (VI) would draw it
/// per chunk, at positions that depend on the rank.
pub(crate) struct RowShards<'c, L, T> {
    pub(crate) inner: L,
    pub(crate) chunk_rows: Option<usize>,
    pub(crate) peers: Option<&'c dyn Communicator>,
    /// Each of this rank's chunks' `ℓ`, `π` and gradient, and a per-member batch's gathered rows.
    partial: Vec<T>,
    x_rows: Vec<T>,
    y_rows: Vec<T>,
}

impl<'c, L, T> RowShards<'c, L, T> {
    /// `inner` over chunks of `chunk_rows` rows shared by `peers` (`None`: `inner` itself).
    pub(crate) fn new(
        inner: L,
        chunk_rows: Option<usize>,
        peers: Option<&'c dyn Communicator>,
    ) -> Self {
        RowShards {
            inner,
            chunk_rows,
            peers,
            partial: Vec::new(),
            x_rows: Vec::new(),
            y_rows: Vec::new(),
        }
    }
}

impl<L: LogJoint<T>, T: Element> LogJoint<T> for RowShards<'_, L, T> {
    fn layout(&self) -> &ParamLayout {
        self.inner.layout()
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError> {
        let Some(chunk_rows) = self.chunk_rows.filter(|&c| c > 0) else {
            return self.inner.evaluate(members, params, batch, weights, out);
        };
        let rows = batch.rows;
        let chunks = rows.div_ceil(chunk_rows).max(1);
        let (rank, size) = self.peers.map_or((0, 1), |p| (p.rank(), p.size()));
        let mine = block(chunks, rank, size);
        let p = params.len() / members.max(1);
        // One chunk's results: ℓ [E], π [E], gradient [E·P].
        let width = 2 * members + members * p;
        self.partial.resize(mine.len() * width, T::ZERO);
        let (xc, yc) = (batch.x_cols(), batch.y_cols());
        for (slot, c) in mine.clone().enumerate() {
            let range = c * chunk_rows..((c + 1) * chunk_rows).min(rows);
            let n = range.len();
            let chunk = match batch.per_member {
                None => Batch::new(
                    &batch.x[range.start * xc..range.end * xc],
                    &batch.y[range.start * yc..range.end * yc],
                    n,
                )?,
                Some(copies) => {
                    self.x_rows.clear();
                    self.y_rows.clear();
                    for e in 0..copies {
                        let (x0, y0) = (e * rows * xc, e * rows * yc);
                        self.x_rows.extend_from_slice(
                            &batch.x[x0 + range.start * xc..x0 + range.end * xc],
                        );
                        self.y_rows.extend_from_slice(
                            &batch.y[y0 + range.start * yc..y0 + range.end * yc],
                        );
                    }
                    Batch::per_member(&self.x_rows, &self.y_rows, n, copies)?
                }
            };
            let chunk_weights = Weights {
                loglik: weights.loglik,
                logprior: if c == 0 { weights.logprior } else { T::ZERO },
            };
            let part = &mut self.partial[slot * width..(slot + 1) * width];
            let (loglik, rest) = part.split_at_mut(members);
            let (logprior, grad) = rest.split_at_mut(members);
            self.inner.evaluate(
                members,
                params,
                chunk,
                chunk_weights,
                LogJointOutput {
                    loglik,
                    logprior,
                    grad,
                },
            )?;
        }
        let gathered;
        let every_chunk: &[T] = match self.peers {
            None => &self.partial,
            Some(peers) => {
                let bytes: Vec<u8> = self
                    .partial
                    .iter()
                    .flat_map(|v| v.to_f64().to_le_bytes())
                    .collect();
                gathered = peers
                    .all_gather(&bytes)
                    .iter()
                    .flat_map(|part| {
                        part.chunks_exact(8)
                            .map(|b| T::from_f64(f64::from_le_bytes(b.try_into().expect("8"))))
                    })
                    .collect::<Vec<T>>();
                &gathered
            }
        };
        debug_assert_eq!(every_chunk.len(), chunks * width);
        // Chunk 0 carries the prior; ℓ and the gradient are added chunk after chunk.
        let first = &every_chunk[..width];
        out.loglik.copy_from_slice(&first[..members]);
        out.logprior.copy_from_slice(&first[members..2 * members]);
        out.grad.copy_from_slice(&first[2 * members..]);
        for part in every_chunk[width..].chunks_exact(width) {
            for (total, &v) in out.loglik.iter_mut().zip(&part[..members]) {
                *total += v;
            }
            for (total, &v) in out.grad.iter_mut().zip(&part[2 * members..]) {
                *total += v;
            }
        }
        Ok(())
    }

    fn set_first_member(&mut self, first: usize) {
        self.inner.set_first_member(first);
    }

    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        self.inner.workspace_per_member(rows)
    }

    fn member_blocks(&self, members: usize, batch: &Batch<'_, T>, blocks: &mut Vec<Range<usize>>) {
        match self.chunk_rows {
            None => self.inner.member_blocks(members, batch, blocks),
            Some(_) => {
                blocks.clear();
                blocks.push(0..members);
            }
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
        if self.chunk_rows.is_none() {
            return self
                .inner
                .evaluate_then(members, params, batch, weights, out, then);
        }
        evaluate_then_one_block(self, members, params, batch, weights, out, then)
    }

    fn threads(&self) -> usize {
        match self.chunk_rows {
            None => self.inner.threads(),
            Some(_) => 1,
        }
    }

    /// `inner`'s threads when the batches are not cut into chunks; one otherwise (each chunk's
    /// sums are shared by the ranks at every evaluation).
    fn on_each_thread(&mut self, work: &(dyn Fn(&mut dyn LogJoint<T>) + Sync)) -> bool {
        self.chunk_rows.is_none() && self.inner.on_each_thread(work)
    }
}
