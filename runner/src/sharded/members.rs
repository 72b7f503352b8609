//! Member sharding's other half: the blocks of members the ranks trained become one ensemble
//! again — the result at the end ([`gather_result`]) and the training state at each checkpoint
//! ([`GatheredStateFile`]: one file, written by rank 0, the state of every member) — and a saved
//! state is split into blocks for any number of ranks ([`select_members`]), so a run resumes on
//! another rank count, or layout, to the same bits.

use core::ops::Range;
use std::path::PathBuf;

use flock_autograd::Parameters;
use flock_ensemble::EnsembleState;
use flock_kernels::Element;
use flock_optim::{GradientTransformation, MemberState};

use crate::checkpoint::{
    Checkpoint, CheckpointError, divergence_list, parse_divergences, result_bytes, training_bytes,
};
use crate::distributed::Communicator;
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
