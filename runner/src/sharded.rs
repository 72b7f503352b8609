//! Member-sharded runs ([`crate::distributed`]): every rank trains a contiguous block of the
//! members ([`EnsembleMAP::with_members`](crate::map::EnsembleMAP::with_members)); here the
//! blocks become one ensemble again — the result at the end ([`gather_result`]) and the training
//! state at each checkpoint ([`GatheredStateFile`]: one file, written by rank 0, the state of
//! every member) — and a saved state is split into blocks for any number of ranks
//! ([`select_members`]), so a run resumes on another rank count to the same bits.

use core::ops::Range;
use std::path::PathBuf;

use flock_autograd::{
    AutogradError, Batch, EvaluatedBlock, LogJoint, LogJointOutput, ParamLayout, Parameters,
    Weights,
};
use flock_ensemble::EnsembleState;
use flock_kernels::Element;
use flock_optim::{GradientTransformation, MemberState};

use crate::checkpoint::{
    Checkpoint, CheckpointError, divergence_list, parse_divergences, result_bytes, training_bytes,
};
use crate::distributed::{Communicator, Subgroup, block};
use crate::error::Error;
use crate::map::{Divergence, EnsembleResult};
use crate::train::{BestParams, CheckpointSink, Snapshot, StateFile, Training};

fn mismatch(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Mismatch {
        reason: reason.into(),
    }
}

/// Every rank's block of members side by side — the whole ensemble, on every rank (`local`
/// itself without `peers`). Travels as [`result_bytes`] with the divergence reports.
///
/// # Errors
/// [`CheckpointError`] if a rank's bytes do not read back, or the blocks disagree on the steps.
pub(crate) fn gather_result<T: Element>(
    peers: Option<&dyn Communicator>,
    local: EnsembleResult<T>,
) -> Result<EnsembleResult<T>, CheckpointError> {
    let Some(peers) = peers else {
        return Ok(local);
    };
    let bytes = result_bytes(&local, &[("diverged", &divergence_list(&local.diverged))]);
    let layout = local.params.layout();
    let parts = peers
        .all_gather(&bytes)
        .iter()
        .map(|bytes| {
            let checkpoint = Checkpoint::from_bytes(bytes)?;
            let mut part = checkpoint.result::<T>(layout)?;
            part.stopped_early = local.stopped_early;
            part.diverged = parse_divergences(checkpoint.metadata("diverged").unwrap_or(""))?;
            Ok(part)
        })
        .collect::<Result<Vec<_>, CheckpointError>>()?;
    EnsembleResult::merge(&parts).map_err(|e| mismatch(e.to_string()))
}

/// Several runs' members side by side as one run — a member-sharded run's blocks, in rank
/// order; they must have taken the same steps. Random-stream positions (`streams`, one list per
/// part, or none) are joined the same way.
///
/// # Errors
/// [`CheckpointError::Mismatch`] for parts that do not fit together.
#[allow(clippy::type_complexity)]
pub(crate) fn merge_members<T, O>(
    parts: Vec<(Training<T, O::State>, Option<Vec<u64>>)>,
    optimizer: &O,
) -> Result<(Training<T, O::State>, Option<Vec<u64>>), CheckpointError>
where
    T: Element,
    O: GradientTransformation<T>,
{
    let Some((first, _)) = parts.first() else {
        return Err(mismatch("no parts to merge"));
    };
    let (step, layout) = (first.step, first.state.params.layout().clone());
    let members: usize = parts.iter().map(|(t, _)| t.members()).sum();
    let keeps_best = first.best.is_some();
    let has_streams = parts[0].1.is_some();
    for (index, (part, streams)) in parts.iter().enumerate() {
        if part.step != step
            || part.state.params.layout() != &layout
            || part.best.is_some() != keeps_best
            || streams.is_some() != has_streams
        {
            return Err(mismatch(format!(
                "block {index} is not at the same step of the same run as block 0"
            )));
        }
    }
    let mut values = Vec::with_capacity(members * layout.member_size());
    let mut opt_state: Option<O::State> = None;
    let (mut best_scores, mut best_values) = (Vec::new(), Vec::new());
    let (mut stale, mut frozen, mut diverged) = (Vec::new(), Vec::new(), Vec::new());
    let mut streams = has_streams.then(Vec::new);
    let mut stopped_early = false;
    let mut offset = 0;
    for (part, part_streams) in &parts {
        values.extend_from_slice(part.state.params.values());
        match opt_state.as_mut() {
            None => opt_state = Some(part.state.opt_state()),
            Some(state) => state.append(part.state.opt_state()),
        }
        if let Some(best) = &part.best {
            best_scores.extend_from_slice(best.scores());
            best_values.extend_from_slice(best.params().values());
        }
        stale.extend_from_slice(&part.stale);
        frozen.extend_from_slice(&part.frozen);
        diverged.extend(part.diverged.iter().map(|d| Divergence {
            member: d.member + offset,
            step: d.step,
        }));
        if let (Some(all), Some(mine)) = (streams.as_mut(), part_streams) {
            all.extend_from_slice(mine);
        }
        stopped_early |= part.stopped_early;
        offset += part.members();
    }
    // Losses are step-major: step t's row is every block's row t, block after block.
    let mut losses = Vec::with_capacity(members * step);
    for t in 0..step {
        for (part, _) in &parts {
            let e = part.members();
            losses.extend_from_slice(&part.losses[t * e..(t + 1) * e]);
        }
    }
    let params = Parameters::from_values(layout.clone(), members, values)
        .map_err(|e| mismatch(e.to_string()))?;
    let mut state =
        EnsembleState::from_params(params, optimizer).map_err(|e| mismatch(e.to_string()))?;
    *state.opt_state_mut() = opt_state.expect("at least one part");
    let mut training = Training::new(state);
    training.step = step;
    training.losses = losses;
    if keeps_best {
        let best = Parameters::from_values(layout, members, best_values)
            .map_err(|e| mismatch(e.to_string()))?;
        training.best =
            Some(BestParams::from_parts(best_scores, best).map_err(|e| mismatch(e.to_string()))?);
    }
    training.stale = stale;
    training.frozen = frozen;
    training.diverged = diverged;
    training.stopped_early = stopped_early;
    Ok((training, streams))
}

/// Members `block` of `whole` as a run of their own (member `e` of it is `whole`'s member
/// `block.start + e`): one rank's share of a saved run.
///
/// # Errors
/// [`CheckpointError::Mismatch`] for a block past the run's members.
pub(crate) fn select_members<T, O>(
    whole: Training<T, O::State>,
    block: Range<usize>,
    optimizer: &O,
) -> Result<Training<T, O::State>, CheckpointError>
where
    T: Element,
    O: GradientTransformation<T>,
{
    let members = whole.members();
    if block.is_empty() || block.end > members {
        return Err(mismatch(format!(
            "members {block:?} of a saved run of {members}"
        )));
    }
    if block == (0..members) {
        return Ok(whole);
    }
    let layout = whole.state.params.layout().clone();
    let p = layout.member_size();
    let values = whole.state.params.values()[block.start * p..block.end * p].to_vec();
    let mut mine = whole.state.opt_state();
    if block.start > 0 {
        mine = mine.split_off(block.start, members);
    }
    if block.end < members {
        let _tail = mine.split_off(block.len(), members - block.start);
    }
    let params = Parameters::from_values(layout.clone(), block.len(), values)
        .map_err(|e| mismatch(e.to_string()))?;
    let mut state =
        EnsembleState::from_params(params, optimizer).map_err(|e| mismatch(e.to_string()))?;
    *state.opt_state_mut() = mine;
    let mut training = Training::new(state);
    training.step = whole.step;
    training.losses = whole
        .losses
        .chunks_exact(members)
        .flat_map(|row| row[block.clone()].iter().copied())
        .collect();
    if let Some(best) = &whole.best {
        let values = best.params().values()[block.start * p..block.end * p].to_vec();
        let params = Parameters::from_values(layout, block.len(), values)
            .map_err(|e| mismatch(e.to_string()))?;
        training.best = Some(
            BestParams::from_parts(best.scores()[block.clone()].to_vec(), params)
                .map_err(|e| mismatch(e.to_string()))?,
        );
    }
    training.stale = whole.stale[block.clone()].to_vec();
    training.frozen = whole.frozen[block.clone()].to_vec();
    training.diverged = whole
        .diverged
        .iter()
        .filter(|d| block.contains(&d.member))
        .map(|d| Divergence {
            member: d.member - block.start,
            step: d.step,
        })
        .collect();
    training.stopped_early = whole.stopped_early;
    Ok(training)
}

/// The checkpoints of a member-sharded run: at each save every rank sends its block's state
/// (as [`training_bytes`]) to every other, and the run's rank 0 writes the whole run's state to `path` —
/// the file a one-process run of every member would write, which any number of ranks resumes.
/// Random-stream positions travel as each block's own members' (the loop reports them by the
/// whole ensemble's member index).
pub(crate) struct GatheredStateFile<'a, O> {
    /// The file (rank 0's).
    pub(crate) path: PathBuf,
    /// The ranks.
    pub(crate) peers: &'a dyn Communicator,
    /// This rank's members.
    pub(crate) block: Range<usize>,
    /// The run's optimizer (to rebuild each block's state).
    pub(crate) optimizer: &'a O,
    /// Whether this process writes the file (the run's rank 0; `peers` may be a column of a 2-D
    /// layout whose first rank is not).
    pub(crate) writes: bool,
}

impl<T, O> CheckpointSink<T> for GatheredStateFile<'_, O>
where
    T: Element,
    O: GradientTransformation<T>,
{
    fn save(&mut self, snapshot: &Snapshot<'_, T>) -> Result<(), CheckpointError> {
        let own_streams = snapshot
            .streams
            .map(|s| s.get(self.block.clone()).unwrap_or_default());
        let bytes = training_bytes(&Snapshot {
            streams: own_streams,
            ..*snapshot
        });
        let parts = self.peers.all_gather(&bytes);
        if !self.writes {
            return Ok(());
        }
        let parts = parts
            .iter()
            .map(|bytes| {
                let checkpoint = Checkpoint::from_bytes(bytes)?;
                let members = checkpoint
                    .metadata("members")
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(|| mismatch("a block's state without its member count"))?;
                checkpoint.training::<T, O>(self.optimizer, snapshot.params.layout(), members)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (whole, streams) = merge_members(parts, self.optimizer)?;
        whole.save_to(
            &mut StateFile {
                path: self.path.clone(),
            },
            streams.as_deref(),
        )
    }
}

/// The training state in `path` for every rank: rank 0 reads it (`None` if there is none) and
/// sends the bytes to the others, so the ranks need no shared file system; an error on rank 0
/// is every rank's.
///
/// # Errors
/// [`CheckpointError::Io`] (rank 0's, on every rank) and those of [`Checkpoint::from_bytes`].
pub(crate) fn read_shared_state(
    path: &std::path::Path,
    peers: &dyn Communicator,
) -> Result<Option<Checkpoint>, CheckpointError> {
    // The first byte says what follows: 0 no state, 1 the file's bytes, 2 rank 0's error.
    let mut message = Vec::new();
    if peers.is_root() {
        message = match std::fs::read(path) {
            Ok(bytes) => [&[1u8][..], &bytes].concat(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![0],
            Err(e) => [&[2u8][..], e.to_string().as_bytes()].concat(),
        };
    }
    peers.broadcast(&mut message, 0);
    match message.split_first() {
        Some((1, bytes)) => Checkpoint::from_bytes(bytes).map(Some),
        Some((2, text)) => Err(CheckpointError::Io(std::io::Error::other(format!(
            "rank 0: {}",
            String::from_utf8_lossy(text)
        )))),
        _ => Ok(None),
    }
}

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
        let LogJointOutput {
            loglik,
            logprior,
            grad,
        } = out;
        self.evaluate(
            members,
            params,
            batch,
            weights,
            LogJointOutput {
                loglik: &mut *loglik,
                logprior: &mut *logprior,
                grad: &mut *grad,
            },
        )?;
        then(EvaluatedBlock {
            index: 0,
            members: 0..members,
            params,
            grad,
            loglik,
            logprior,
        });
        Ok(())
    }
}

/// How a fit's ranks share the work: `R = G·K` ranks as `G` member groups (each a contiguous
/// block of the members) of `K` ranks sharing the group's rows (`K = 1`: members only; `G = 1`:
/// rows only). Rank `r` is in member group `r / K` at row position `r mod K`.
pub(crate) struct RankLayout<'w> {
    /// This rank's members.
    pub(crate) members: Range<usize>,
    /// The ranks at this rank's row position in every member group, when members are shared.
    pub(crate) member_peers: Option<Subgroup<'w>>,
    /// The ranks of this rank's member group, when rows are shared.
    pub(crate) row_peers: Option<Subgroup<'w>>,
}

impl<'w> RankLayout<'w> {
    /// The layout of `members` members over `world` (`None` or one rank: everything here): rows
    /// shared by `row_ranks` ranks (default every rank) when `row_chunks` is set, else members
    /// only.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `row_ranks` without row chunks or not dividing the ranks,
    /// and for fewer members than member groups.
    pub(crate) fn new(
        world: Option<&'w dyn Communicator>,
        members: usize,
        row_chunks: Option<usize>,
        row_ranks: Option<usize>,
    ) -> Result<RankLayout<'w>, Error> {
        let size = world.map_or(1, |w| w.size());
        let k = match (row_chunks, row_ranks) {
            (None, Some(k)) => {
                return Err(Error::InvalidArgument {
                    name: "row_ranks",
                    value: k.to_string(),
                    expected: "row chunks to share (row ranks only mean something with them)",
                });
            }
            (None, None) => 1,
            (Some(_), None) => size,
            (Some(_), Some(k)) if k > 0 && size.is_multiple_of(k) => k,
            (Some(_), Some(k)) => {
                return Err(Error::InvalidArgument {
                    name: "row_ranks",
                    value: k.to_string(),
                    expected: "a divisor of the number of ranks (ranks = member groups × row ranks)",
                });
            }
        };
        let groups = size / k;
        if members < groups {
            return Err(Error::InvalidArgument {
                name: "members",
                value: members.to_string(),
                expected: "at least one member per rank in a member-sharded fit (per member \
                           group with row ranks)",
            });
        }
        let Some(world) = world.filter(|_| size > 1) else {
            return Ok(RankLayout {
                members: 0..members,
                member_peers: None,
                row_peers: None,
            });
        };
        let (group, position) = (world.rank() / k, world.rank() % k);
        Ok(RankLayout {
            members: block(members, group, groups),
            member_peers: (groups > 1)
                .then(|| Subgroup::new(world, (0..groups).map(|g| g * k + position).collect()))
                .flatten(),
            row_peers: (k > 1)
                .then(|| Subgroup::new(world, (group * k..(group + 1) * k).collect()))
                .flatten(),
        })
    }
}
