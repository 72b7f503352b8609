//! The training every estimator shares: data split into training and held-out rows, then the
//! members — point estimates through [`EnsembleMAP`] or Gaussian guides through
//! [`EnsembleVI`] — trained in the one loop, with a fit's hooks (state file, resume, progress).

use std::path::PathBuf;

use flock_autograd::{Batch, ParamLayout, Parameters, Tape};
use flock_ensemble::{DataOrder, MemberHeldOut, MemberRng, ParallelLogJoint, Sampling, SeedStream};
use flock_kernels::Element;
use flock_optim::{AdamConfig, LearningRate, adam, cosine_decay_schedule};

use super::FitHooks;
use super::data::{held_rows, hold_out};
use super::network::Network;
use super::spec::{FitMethod, FitSpec, LearningRateSchedule};
use super::variational::{GuideMixtureNll, NetworkModel, guide_draws};
use crate::checkpoint::Checkpoint;
use crate::distributed::Communicator;
use crate::error::{Error, RunError};
use crate::map::{EnsembleMAP, EnsembleResult};
use crate::sharded::{GatheredStateFile, RankLayout, RowShards, gather_result, read_shared_state};
use crate::train::{Checkpointing, RunOptions, Validation};
use crate::vi::{EnsembleVI, ViConfig};

/// Data ready to train on: standardised inputs `[rows, features]` and targets (a classifier's
/// class indices as numbers), the rows held out for early stopping, and a fixed likelihood's σ
/// on the standardised scale.
pub(crate) struct Prepared<T> {
    pub(crate) xs: Vec<T>,
    pub(crate) ys: Vec<T>,
    pub(crate) held_out: HeldOut<T>,
    pub(crate) sigma_std: f64,
}

/// The rows a fit holds out for early stopping.
pub(crate) enum HeldOut<T> {
    /// None: every member trains on every row and keeps its last parameters.
    None,
    /// One split for every member (inputs `[rows, features]` and targets), taken out of the
    /// training rows: a shared data order, or a VI fit.
    Shared(Vec<T>, Vec<T>),
    /// Each member holds out this many of the training rows, its own ([`MemberHeldOut`], drawn
    /// from `(SeedStream::HeldOutRows, e)` once the run's members are known): a point-estimate
    /// fit whose members each draw their own batches.
    PerMember(usize),
}

impl<T: Copy> Prepared<T> {
    /// `spec.validation_fraction` of the rows held out (seeded by `spec.seed`): one split, or
    /// each member its own when the members draw their own batches of a point-estimate fit.
    ///
    /// # Errors
    /// [`Error::TooFewRows`] when the fraction leaves no row on one side.
    pub(crate) fn split(
        spec: &FitSpec,
        xs: Vec<T>,
        ys: Vec<T>,
        features: usize,
        sigma_std: f64,
    ) -> Result<Prepared<T>, Error> {
        let per_member = spec.data_order == DataOrder::PerMember
            && matches!(spec.method, FitMethod::Map)
            && spec.validation_fraction > 0.0;
        let (xs, ys, held_out) = if per_member {
            let held = held_rows(spec.validation_fraction, ys.len())?;
            (xs, ys, HeldOut::PerMember(held))
        } else {
            match hold_out(spec.validation_fraction, spec.seed, xs, ys, features)? {
                (xs, ys, Some((hx, hy))) => (xs, ys, HeldOut::Shared(hx, hy)),
                (xs, ys, None) => (xs, ys, HeldOut::None),
            }
        };
        Ok(Prepared {
            xs,
            ys,
            held_out,
            sigma_std,
        })
    }
}

/// How a training call ended.
pub(crate) enum Trained<T> {
    /// Every epoch trained: the members (or guides) and, for VI, the networks drawn from them.
    Done {
        result: EnsembleResult<T>,
        draws: Option<Parameters<T>>,
    },
    /// Stopped after the hooks' epoch limit, the state in the state file.
    Paused { steps: usize, of: usize },
}

/// Trains `spec`'s members of `network` (laid out by `layout`) on `data`, on `threads` threads
/// (default every core), with `hooks`.
///
/// # Errors
/// Training errors; [`Error::File`] for a state file that cannot be written or read.
pub(crate) fn train_network<T: Element>(
    spec: &FitSpec,
    network: &Network,
    layout: &ParamLayout,
    data: Prepared<T>,
    threads: Option<usize>,
    hooks: FitHooks<'_>,
) -> Result<Trained<T>, Error> {
    let Prepared {
        xs,
        ys,
        held_out,
        sigma_std,
    } = data;
    let layout = layout.clone();
    let rows = ys.len();
    let ranks = hooks.ranks.filter(|r| r.size() > 1);
    if let Some(chunk_rows) = hooks.row_chunks {
        if chunk_rows == 0 {
            return Err(Error::InvalidArgument {
                name: "row_chunks",
                value: "0".into(),
                expected: "at least one row per chunk",
            });
        }
        if matches!(spec.method, FitMethod::Vi(_)) {
            return Err(Error::InvalidArgument {
                name: "row_chunks",
                value: chunk_rows.to_string(),
                expected: "no row chunks for VI (its noise is drawn per evaluation): shard \
                           members instead",
            });
        }
    }
    // Member sharding: this rank's block, the loop's decisions taken with the ranks of the
    // other blocks. Row sharding: the log-joint's chunks shared by the ranks of the block.
    let rank_layout = RankLayout::new(ranks, spec.members, hooks.row_chunks, hooks.row_ranks)?;
    let members = rank_layout.members.clone();
    let peers = rank_layout
        .member_peers
        .as_ref()
        .map(|p| p as &dyn Communicator);
    let row_peers = rank_layout
        .row_peers
        .as_ref()
        .map(|p| p as &dyn Communicator);
    let writes = ranks.is_none_or(|r| r.is_root());
    let init = network
        .mlp
        .member_init_with::<T, MemberRng>(spec.weight_init, &layout);
    // Each member's own held-out rows, drawn for this rank's members; they train on the others.
    let member_split = match held_out {
        HeldOut::PerMember(held) => Some(MemberHeldOut::new(
            rows,
            held,
            SeedStream::HeldOutRows.seed(spec.seed),
            members.clone(),
        )?),
        _ => None,
    };
    let member_held = member_split.as_ref().map(|split| split.gather(&xs, &ys));
    let trained_rows = rows - member_split.as_ref().map_or(0, |s| s.held_per_member());
    let batch_size = spec.batch_size.clamp(1, trained_rows.max(1));
    let steps_per_epoch = trained_rows.div_ceil(batch_size);
    let steps = spec.epochs * steps_per_epoch;
    let learning_rate: LearningRate = match spec.schedule {
        LearningRateSchedule::Constant => spec.learning_rate.into(),
        LearningRateSchedule::CosineDecay => {
            cosine_decay_schedule(spec.learning_rate, steps.max(1) as u64, 0.0, 1.0)?.into()
        }
    };
    let optimizer = adam(learning_rate, AdamConfig::default())?;
    let data = Batch::new(&xs, &ys, rows)?;
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let file_error = |path: &PathBuf| {
        let path = path.clone();
        move |source| Error::File { path, source }
    };
    // A training-state file that cannot be written is named like any other file.
    let run_error = |e: RunError<T>| match (e, &hooks.state_file) {
        (RunError::Checkpoint(source), Some(path)) => Error::File {
            path: path.clone(),
            source,
        },
        (e, _) => Error::from(e),
    };
    let checkpoint = match (&hooks.state_file, hooks.resume, ranks) {
        (Some(path), true, None) if path.exists() => {
            Some(Checkpoint::read(path).map_err(file_error(path))?)
        }
        (Some(path), true, Some(peers)) => {
            read_shared_state(path, peers).map_err(file_error(path))?
        }
        _ => None,
    };
    // Checkpoints: one process writes its state file; the ranks of a member-sharded fit gather
    // theirs into one, on rank 0; of a row-sharded fit (every rank holds every member) rank 0
    // writes its own.
    let sink_optimizer = optimizer.clone();
    let checkpointing = |path: &PathBuf| -> Option<Checkpointing<'_, T>> {
        match peers {
            Some(peers) => Some(Checkpointing {
                every: steps_per_epoch,
                sink: Box::new(GatheredStateFile {
                    path: path.clone(),
                    peers,
                    block: members.clone(),
                    optimizer: &sink_optimizer,
                    writes,
                }),
            }),
            None if !writes => None,
            None => Some(Checkpointing::to_file(path.clone(), steps_per_epoch)),
        }
    };
    let run_options = |validation| RunOptions {
        batch_size: Some(batch_size),
        sampling: Sampling::WithoutReplacement,
        data_order: spec.data_order,
        held_out_rows: member_split.as_ref(),
        validation,
        checkpoint: hooks.state_file.as_ref().and_then(checkpointing),
        peers,
        step_order: hooks.step_order,
        ..RunOptions::default()
    };
    let until = |step: usize| {
        hooks
            .max_epochs_this_call
            .map_or(steps, |e| (step + e * steps_per_epoch).min(steps))
    };
    let mut progress = hooks.progress;
    let (result, draws) = match spec.method {
        FitMethod::Map => {
            let log_joint = RowShards::new(
                ParallelLogJoint::new(
                    (0..threads)
                        .map(|_| {
                            network.log_joint::<T>(&layout, sigma_std, spec.prior_weight != 0.0)
                        })
                        .collect(),
                ),
                hooks.row_chunks,
                row_peers,
            );
            let mut map =
                EnsembleMAP::new(log_joint, init, optimizer, spec.members, spec.prior_weight)?
                    .with_members(members.clone())?;
            let mut training = match &checkpoint {
                Some(c) => map
                    .restore(c)
                    .map_err(file_error(hooks.state_file.as_ref().expect("read")))?,
                None => map.start(spec.seed)?,
            };
            let held = match (&held_out, &member_held, &member_split) {
                (HeldOut::Shared(hx, hy), ..) => Some(Batch::new(hx, hy, hy.len())?),
                (_, Some((hx, hy)), Some(split)) => Some(Batch::per_member(
                    hx,
                    hy,
                    split.held_per_member(),
                    members.len(),
                )?),
                _ => None,
            };
            let validation = held.map(|held| Validation::new(held, steps_per_epoch));
            let mut options = run_options(validation);
            options.progress = progress.take();
            let end = until(training.step());
            let result = map
                .train(&mut training, spec.seed, end, data, options)
                .map_err(run_error)?;
            (gather_result(peers, result)?, None)
        }
        FitMethod::Vi(vi) => {
            let model = NetworkModel::new(network.clone(), &layout, sigma_std);
            let config = ViConfig {
                ensemble_size: spec.members,
                kl_weight: vi.kl_weight,
                init_scale: vi.init_scale,
                guide: vi.guide(),
                threads,
                ..ViConfig::default()
            };
            let mut runner = EnsembleVI::new(model, data, init, optimizer, config)?
                .with_members(members.clone())?;
            let mut training = match &checkpoint {
                Some(c) => runner
                    .restore(c, spec.seed)
                    .map_err(file_error(hooks.state_file.as_ref().expect("read")))?,
                None => runner.start(spec.seed)?,
            };
            let shared = match &held_out {
                HeldOut::Shared(hx, hy) => Some((hx, hy)),
                _ => None,
            };
            let validation = shared.map(|(hx, hy)| {
                let scorer = GuideMixtureNll {
                    network,
                    layout: &layout,
                    guide: vi.guide(),
                    samples: vi.samples,
                    seed: spec.seed,
                    first_member: members.start,
                    sigma_std,
                    x: hx,
                    y: hy.iter().map(|v| v.to_f64()).collect(),
                    tape: Tape::new(),
                };
                Validation::with_scorer(scorer, steps_per_epoch)
            });
            let mut options = run_options(validation);
            options.progress = progress.take();
            let end = until(training.step());
            let result = runner
                .train(&mut training, spec.seed, end, data, options)
                .map_err(run_error)?;
            let result = gather_result(peers, result)?;
            let draws = if result.steps == steps {
                Some(guide_draws(
                    &result.params,
                    &layout,
                    vi.guide(),
                    vi.samples,
                    spec.seed,
                )?)
            } else {
                None
            };
            (result, draws)
        }
    };
    if result.steps < steps {
        return Ok(Trained::Paused {
            steps: result.steps,
            of: steps,
        });
    }
    Ok(Trained::Done { result, draws })
}
