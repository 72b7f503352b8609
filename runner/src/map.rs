//! Layer 2: `EnsembleMAP` — `init` / `update` / `run` over the Layer 1 primitives, the runner of
//! the one training loop ([`crate::train`]) — and the one-shot `ensemble_map`.

use core::ops::Range;
use std::path::Path;

use flock_autograd::{Batch, LogJoint, ParamLayout, Parameters};
use flock_ensemble::{
    EnsembleError, EnsembleState, MemberRng, SeedStream, ensemble_init_members, ensemble_step,
};
use flock_kernels::Element;
use flock_optim::{Adam, AdamConfig, GradientTransformation, adam};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::error::RunError;
use crate::sharded::select_members;
use crate::train::{LogJointNll, Objective, RunOptions, Scorer, StateFile, Training, train_loop};

/// What a run gives back: the final (or best) parameters and every member's loss curve.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleResult<T> {
    /// Parameters after the run (each member's best, with [`RunOptions::keep_best`](crate::train::RunOptions::keep_best) or
    /// [`RunOptions::validation`](crate::train::RunOptions::validation)).
    pub params: Parameters<T>,
    /// `losses[e·steps + t]`: member `e`'s loss returned by step `t` (at the parameters before
    /// that step's update), shape `[E, steps]` like pyrox's.
    pub losses: Vec<T>,
    /// Steps taken.
    pub steps: usize,
    /// Whether a callback (or the validation patience) stopped the run before `num_epochs`.
    pub stopped_early: bool,
    /// Members that diverged (non-finite loss or gradient) and the step at which they did; they
    /// keep their last finite parameters.
    pub diverged: Vec<Divergence>,
}

impl<T: Copy> EnsembleResult<T> {
    /// Member `e`'s loss curve.
    pub fn member_losses(&self, e: usize) -> &[T] {
        &self.losses[e * self.steps..(e + 1) * self.steps]
    }
}

impl<T: Element> EnsembleResult<T> {
    /// The members `members` (in that order; repeats allowed) as an ensemble of their own:
    /// their parameters, loss curves and divergence reports.
    ///
    /// ```
    /// use flock_autograd::{ParamLayout, Parameters};
    /// use flock_runner::map::EnsembleResult;
    /// let mut layout = ParamLayout::new();
    /// layout.add("w", [1])?;
    /// let result = |values: Vec<f64>| EnsembleResult {
    ///     params: Parameters::from_values(layout.clone(), values.len(), values.clone()).unwrap(),
    ///     losses: values.iter().flat_map(|v| [v * 10.0, *v]).collect(),
    ///     steps: 2,
    ///     stopped_early: false,
    ///     diverged: vec![],
    /// };
    /// let (a, b) = (result(vec![1.0, 2.0, 3.0]), result(vec![4.0]));
    /// let picked = a.select(&[2, 0])?;
    /// assert_eq!(picked.params.values(), &[3.0, 1.0]);
    /// assert_eq!(picked.member_losses(0), &[30.0, 3.0]);
    /// let merged = EnsembleResult::merge(&[picked, b])?;
    /// assert_eq!(merged.params.values(), &[3.0, 1.0, 4.0]);
    /// assert!(a.select(&[3]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for an empty selection or an index past the ensemble.
    pub fn select(&self, members: &[usize]) -> Result<EnsembleResult<T>, RunError<T>> {
        let size = self.params.members();
        if members.is_empty() {
            return Err(EnsembleError::ZeroMembers.into());
        }
        if let Some(&bad) = members.iter().find(|&&e| e >= size) {
            return Err(EnsembleError::InvalidArgument {
                name: "members",
                value: bad as f64,
                expected: "member indices below the ensemble size",
            }
            .into());
        }
        let mut values = Vec::with_capacity(members.len() * self.params.layout().member_size());
        let mut losses = Vec::with_capacity(members.len() * self.steps);
        let mut diverged = Vec::new();
        for (new, &e) in members.iter().enumerate() {
            values.extend_from_slice(self.params.member(e));
            losses.extend_from_slice(self.member_losses(e));
            diverged.extend(
                self.diverged
                    .iter()
                    .filter(|d| d.member == e)
                    .map(|d| Divergence {
                        member: new,
                        step: d.step,
                    }),
            );
        }
        Ok(EnsembleResult {
            params: Parameters::from_values(self.params.layout().clone(), members.len(), values)?,
            losses,
            steps: self.steps,
            stopped_early: self.stopped_early,
            diverged,
        })
    }

    /// Several results side by side as one ensemble (the members of `parts[0]` first, then
    /// `parts[1]`'s, …); they must share the parameter layout and the number of steps.
    ///
    /// # Errors
    /// [`RunError::IncompatiblePart`] naming the first part that differs from `parts[0]`;
    /// [`RunError::Ensemble`] for no parts.
    pub fn merge(parts: &[EnsembleResult<T>]) -> Result<EnsembleResult<T>, RunError<T>> {
        let first = parts.first().ok_or(EnsembleError::ZeroMembers)?;
        for (index, part) in parts.iter().enumerate() {
            if part.params.layout() != first.params.layout() {
                return Err(RunError::IncompatiblePart {
                    index,
                    what: "parameter layout",
                });
            }
            if part.steps != first.steps {
                return Err(RunError::IncompatiblePart {
                    index,
                    what: "number of steps",
                });
            }
        }
        let members: usize = parts.iter().map(|p| p.params.members()).sum();
        let mut values = Vec::with_capacity(members * first.params.layout().member_size());
        let mut losses = Vec::with_capacity(members * first.steps);
        let mut diverged = Vec::new();
        let mut offset = 0;
        for part in parts {
            values.extend_from_slice(part.params.values());
            losses.extend_from_slice(&part.losses);
            diverged.extend(part.diverged.iter().map(|d| Divergence {
                member: d.member + offset,
                step: d.step,
            }));
            offset += part.params.members();
        }
        Ok(EnsembleResult {
            params: Parameters::from_values(first.params.layout().clone(), members, values)?,
            losses,
            steps: first.steps,
            stopped_early: parts.iter().any(|p| p.stopped_early),
            diverged,
        })
    }
}

/// A member that diverged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The member.
    pub member: usize,
    /// The step at which its loss or gradient was first non-finite.
    pub step: usize,
}

/// An ensemble of MAP estimates (pyrox's `EnsembleMAP`): the configuration in one value, with
/// `init(seed)`, `update(state, batch, scale)` and `run(...)`.
///
/// `run` is one fused loop over preallocated buffers — batch selection, forward, backward and
/// optimizer update back to back — that a callback can stop early or use to freeze members.
/// Runners are plain values: `run` can be called any number of times.
///
/// ```
/// use flock_autograd::*;
/// use flock_runner::map::EnsembleMAP;
/// use flock_runner::train::RunOptions;
/// use flock_optim::{AdamConfig, adam};
///
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 8, 1, Activation::Tanh))?;
/// let net = mlp.clone();
/// let log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
///     let f = net.forward(g, x)?;
///     let f = g.squeeze_last(f)?;
///     let ll = g.normal_log_density(y, f, Arg::Const(0.1))?;
///     let theta = g.all_params();
///     Ok((ll, g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.0))?))
/// });
/// let l2 = layout.clone();
/// let init = move |rng: &mut flock_ensemble::MemberRng| {
///     let mut block = vec![0.0; l2.member_size()];
///     mlp.init_member(&l2, rng, &mut block).unwrap();
///     block
/// };
/// let mut map = EnsembleMAP::new(log_joint, init, adam(1e-2, AdamConfig::default())?, 4, 1.0)?;
/// let x: Vec<f64> = (0..40).map(|i| i as f64 / 20.0 - 1.0).collect();
/// let y: Vec<f64> = x.iter().map(|v| v * v).collect();
/// let data = Batch::new(&x, &y, 40)?;
/// let result = map.run(0, 300, data, RunOptions::default())?;
/// assert_eq!((result.steps, result.losses.len()), (300, 4 * 300));
/// assert!(result.member_losses(0)[299] < result.member_losses(0)[0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct EnsembleMAP<T, L, F, O> {
    log_joint: L,
    init_fn: F,
    optimizer: O,
    ensemble_size: usize,
    members: Range<usize>,
    prior_weight: f64,
    layout: ParamLayout,
    _element: core::marker::PhantomData<T>,
}

impl<T, L, F, O> EnsembleMAP<T, L, F, O>
where
    T: Element,
    L: LogJoint<T>,
    F: FnMut(&mut MemberRng) -> Vec<T>,
    O: GradientTransformation<T>,
{
    /// A runner for `ensemble_size` members of `log_joint` (`prior_weight` 1 = MAP, 0 = MLE).
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for zero members or a bad `prior_weight`.
    pub fn new(
        log_joint: L,
        init_fn: F,
        optimizer: O,
        ensemble_size: usize,
        prior_weight: f64,
    ) -> Result<Self, RunError<T>> {
        if ensemble_size == 0 {
            return Err(EnsembleError::ZeroMembers.into());
        }
        if !(prior_weight.is_finite() && prior_weight >= 0.0) {
            return Err(EnsembleError::InvalidArgument {
                name: "prior_weight",
                value: prior_weight,
                expected: "a finite number ≥ 0 (0 = MLE, 1 = MAP)",
            }
            .into());
        }
        let layout = log_joint.layout().clone();
        Ok(EnsembleMAP {
            log_joint,
            init_fn,
            optimizer,
            ensemble_size,
            members: 0..ensemble_size,
            prior_weight,
            layout,
            _element: core::marker::PhantomData,
        })
    }

    /// Trains only members `block` of the ensemble — one process's share of a member-sharded
    /// run ([`crate::distributed`]). Each of them starts from the parameters, draws the batches
    /// and the noise it has in the whole ensemble (its streams depend only on `(seed, e)`), so
    /// the blocks' results side by side ([`EnsembleResult::merge`]) are the whole run's bits.
    /// The [`Training`]s of [`EnsembleMAP::start`] and [`EnsembleMAP::restore`] then hold the
    /// block's members only (member `e` of the block is member `block.start + e`).
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for an empty block or one past the ensemble.
    pub fn with_members(mut self, block: Range<usize>) -> Result<Self, RunError<T>> {
        if block.is_empty() || block.end > self.ensemble_size {
            return Err(EnsembleError::InvalidArgument {
                name: "members",
                value: block.end as f64,
                expected: "a non-empty block of members within the ensemble",
            }
            .into());
        }
        self.log_joint.set_first_member(block.start);
        self.members = block;
        Ok(self)
    }

    /// The members this runner trains: every one (`0..E`), or the block of
    /// [`EnsembleMAP::with_members`].
    pub fn members(&self) -> Range<usize> {
        self.members.clone()
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// Members `E`.
    pub fn ensemble_size(&self) -> usize {
        self.ensemble_size
    }

    /// The log-joint.
    pub fn log_joint(&self) -> &L {
        &self.log_joint
    }

    /// The log-joint, mutably (e.g. to restart a noise stream).
    pub fn log_joint_mut(&mut self) -> &mut L {
        &mut self.log_joint
    }

    /// Fresh members (those of [`EnsembleMAP::members`]) and optimizer state; member `e` depends
    /// only on `(seed, e)`.
    ///
    /// # Errors
    /// [`RunError::Ensemble`] when `init_fn` returns a bad block.
    pub fn init(&mut self, seed: u64) -> Result<EnsembleState<T, O::State>, RunError<T>> {
        Ok(ensemble_init_members(
            &self.layout,
            &mut self.init_fn,
            &self.optimizer,
            self.members.clone(),
            seed,
        )?)
    }

    /// A fresh run seeded `seed`: [`EnsembleMAP::init`] from `seed`'s
    /// [`SeedStream::Init`], no step taken. [`EnsembleMAP::train`] it with the same seed.
    ///
    /// # Errors
    /// As [`EnsembleMAP::init`].
    pub fn start(&mut self, seed: u64) -> Result<Training<T, O::State>, RunError<T>> {
        Ok(Training::new(self.init(SeedStream::Init.seed(seed))?))
    }

    /// One step on `batch` with `scale = N/|B|`; returns the per-member losses before it.
    ///
    /// # Errors
    /// Layer 1's errors.
    pub fn update<'s>(
        &mut self,
        state: &'s mut EnsembleState<T, O::State>,
        batch: Batch<'_, T>,
        scale: f64,
    ) -> Result<&'s [T], RunError<T>> {
        Ok(ensemble_step(
            state,
            batch,
            &mut self.log_joint,
            &self.optimizer,
            self.prior_weight,
            scale,
        )?)
    }

    /// Each member's mean negative log-likelihood per row of `data` (prior excluded):
    /// `−ℓ_e(θ_e; data) / rows`, `[E]`, accumulated in f64 — the score
    /// [`Validation::new`](crate::train::Validation::new) keeps members by.
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for an empty batch, non-finite data, or a layout or shape mismatch.
    pub fn held_out_nll(
        &mut self,
        params: &Parameters<T>,
        data: Batch<'_, T>,
    ) -> Result<Vec<f64>, RunError<T>> {
        let mut scores = Vec::new();
        LogJointNll::new(data).score(&mut self.log_joint, params, &mut scores)?;
        Ok(scores)
    }

    /// Fresh members from `seed`, trained for `num_epochs` steps with the mini-batches of
    /// `seed`: [`EnsembleMAP::start`], then [`EnsembleMAP::train`].
    ///
    /// # Errors
    /// As [`EnsembleMAP::train`].
    pub fn run(
        &mut self,
        seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        let mut training = self.start(seed)?;
        self.train(&mut training, seed, num_epochs, data, options)
    }

    /// Trains `state` for `num_epochs` steps on `data` with the mini-batches of `seed` (e.g. a
    /// state made by hand, or pyrox's initial parameters).
    ///
    /// # Errors
    /// As [`EnsembleMAP::train`].
    pub fn run_from(
        &mut self,
        state: EnsembleState<T, O::State>,
        seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        self.train(&mut Training::new(state), seed, num_epochs, data, options)
    }

    /// The training loop: takes `training` from its step to step `num_steps` on `data` (all `N`
    /// examples; mini-batches of `options.batch_size` use `scale = N/|B|`, drawn from `seed`'s
    /// [`SeedStream::Batches`] in the order an uninterrupted run would draw them) and returns
    /// the run so far as a result. Fewer steps if a callback or the validation patience stops
    /// it. Calling it again with a larger `num_steps` continues the run to the same bits as one
    /// call.
    ///
    /// # Errors
    /// Layer 1's errors for bad data; a hook's error; [`RunError::Diverged`] with
    /// [`OnDivergence::Stop`](crate::train::OnDivergence::Stop).
    pub fn train(
        &mut self,
        training: &mut Training<T, O::State>,
        seed: u64,
        num_steps: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        train_loop(
            Objective {
                log_joint: &mut self.log_joint,
                optimizer: &self.optimizer,
                prior_weight: self.prior_weight,
                first_member: self.members.start,
            },
            training,
            SeedStream::Batches.seed(seed),
            num_steps,
            data,
            options,
        )
    }

    /// Saves `training` to `path` (a training-state file, as
    /// [`Checkpointing::to_file`](crate::train::Checkpointing::to_file) writes every so many
    /// steps), with the log-joint's random-stream positions when it draws noise.
    ///
    /// # Errors
    /// [`CheckpointError::Io`].
    pub fn save(
        &self,
        path: &Path,
        training: &Training<T, O::State>,
    ) -> Result<(), CheckpointError> {
        let mut streams = Vec::new();
        let has_streams = self.log_joint.stream_positions(&mut streams);
        if has_streams {
            streams.resize(streams.len().max(training.members()), 0);
        }
        training.save_to(
            &mut StateFile {
                path: path.to_owned(),
            },
            has_streams.then_some(&streams[..]),
        )
    }

    /// The run saved in `checkpoint` (by [`EnsembleMAP::save`] or a
    /// [`Checkpointing`](crate::train::Checkpointing) hook), ready for [`EnsembleMAP::train`] to
    /// continue to the bits of an uninterrupted run; the log-joint's random streams are moved to
    /// where the saved run had taken them. A runner of a block of members
    /// ([`EnsembleMAP::with_members`]) takes its block from the state of the whole ensemble —
    /// whatever the blocks of the run that saved it.
    ///
    /// # Errors
    /// [`CheckpointError`] for a checkpoint of another model or optimizer.
    pub fn restore(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> Result<Training<T, O::State>, CheckpointError> {
        let (whole, streams) =
            checkpoint.training(&self.optimizer, &self.layout, self.ensemble_size)?;
        if let Some(streams) = streams {
            self.log_joint.seek_streams(&streams);
        }
        select_members(whole, self.members.clone(), &self.optimizer)
    }
}

/// The knobs of [`ensemble_map`], pyrox's: `EnsembleMAP` with Adam at `learning_rate`.
///
/// ```
/// use flock_runner::map::MapOptions;
/// let options = MapOptions { ensemble_size: 8, num_epochs: 500, ..MapOptions::default() };
/// assert_eq!((options.learning_rate, options.prior_weight, options.batch_size), (5e-3, 1.0, None));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapOptions {
    /// Members `E`.
    pub ensemble_size: usize,
    /// Steps (full-batch epochs, or mini-batch steps with `batch_size`).
    pub num_epochs: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Weight of the log-prior (1 = MAP, 0 = MLE).
    pub prior_weight: f64,
    /// Examples per step (`None` = full batch).
    pub batch_size: Option<usize>,
    /// Seed of the initial parameters and the batches.
    pub seed: u64,
}

impl Default for MapOptions {
    /// pyrox's defaults: 16 members, 1,000 steps, Adam 5e-3, MAP, full batch, seed 0.
    fn default() -> Self {
        MapOptions {
            ensemble_size: 16,
            num_epochs: 1000,
            learning_rate: 5e-3,
            prior_weight: 1.0,
            batch_size: None,
            seed: 0,
        }
    }
}

/// pyrox's `ensemble_map`: an ensemble of MAP estimates of `log_joint`, each member initialised
/// by `init_fn`, trained with Adam as `options` says.
///
/// # Errors
/// As [`EnsembleMAP::run`].
pub fn ensemble_map<T, L, F>(
    log_joint: L,
    init_fn: F,
    data: Batch<'_, T>,
    options: MapOptions,
) -> Result<EnsembleResult<T>, RunError<T>>
where
    T: Element,
    L: LogJoint<T>,
    F: FnMut(&mut MemberRng) -> Vec<T>,
{
    let optimizer: Adam = adam(options.learning_rate, AdamConfig::default())?;
    let mut map = EnsembleMAP::new(
        log_joint,
        init_fn,
        optimizer,
        options.ensemble_size,
        options.prior_weight,
    )?;
    let run = RunOptions {
        batch_size: options.batch_size,
        ..RunOptions::default()
    };
    map.run(options.seed, options.num_epochs, data, run)
}
