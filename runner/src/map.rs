//! Layer 2: `EnsembleMAP` — `init` / `update` / `run` over the Layer 1 primitives, with a fused
//! training loop that can stop early, freeze members and survive diverging ones.

use crate::progress::ProgressBar;
use std::fmt;

use flock_autograd::{Batch, LogJoint, LogJointOutput, ParamLayout, Parameters, Weights};
use flock_ensemble::{
    EnsembleError, EnsembleState, MemberRng, MiniBatcher, OptimizerBlocks, Sampling, ensemble_init,
    ensemble_step,
};
use flock_kernels::Element;
use flock_optim::{Adam, AdamConfig, GradientTransformation, OptimError, adam};

/// What a run gives back: the final (or best) parameters and every member's loss curve.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleResult<T> {
    /// Parameters after the run (each member's best, with [`RunOptions::keep_best`] or
    /// [`RunOptions::validation`]).
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

/// What to do when a member diverges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnDivergence {
    /// Freeze it at its last finite parameters and go on with the others (reported in
    /// [`EnsembleResult::diverged`]).
    #[default]
    Freeze,
    /// Stop the run with [`RunError::Diverged`], which carries the result so far.
    Stop,
}

/// What a callback sees every `every` steps.
#[derive(Debug)]
pub struct Progress<'a, T> {
    /// Steps taken so far.
    pub step: usize,
    /// The latest per-member losses.
    pub losses: &'a [T],
    /// The current parameters (e.g. to score held-out data).
    pub params: &'a Parameters<T>,
    /// Members currently frozen.
    pub frozen: &'a [bool],
}

/// What a callback asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// Stop the run after this step.
    pub stop: bool,
    /// Members to freeze from now on (per-member early stopping).
    pub freeze: Vec<usize>,
}

impl Control {
    /// Go on.
    pub fn proceed() -> Control {
        Control::default()
    }
    /// Stop now.
    pub fn stop() -> Control {
        Control {
            stop: true,
            freeze: Vec::new(),
        }
    }
}

/// A callback: called every `every` steps with the run's [`Progress`].
pub type Callback<'c, T> = Box<dyn FnMut(&Progress<'_, T>) -> Control + 'c>;

/// Options of [`EnsembleMAP::run`].
pub struct RunOptions<'c, T> {
    /// Examples per step; `None` = the full data set (pyrox's `batch_size=None`).
    pub batch_size: Option<usize>,
    /// How mini-batches are drawn.
    pub sampling: Sampling,
    /// A callback and how often it runs.
    pub callback: Option<(usize, Callback<'c, T>)>,
    /// Keep each member's parameters at its lowest loss instead of the last ones.
    pub keep_best: bool,
    /// Diverging members: freeze or stop.
    pub on_divergence: OnDivergence,
    /// Show a progress bar (steps, steps/s, mean loss, eta) on stderr; see [`crate::progress`].
    pub progress: bool,
    /// The step to start from when resuming a run from a checkpoint (its batches are skipped,
    /// so the resumed run sees exactly the batches the uninterrupted one would).
    pub start_step: usize,
    /// Held-out data for early stopping: each member ends with its parameters at its best
    /// held-out score (instead of the last ones) and, with a patience, stops training when the
    /// score no longer improves. Cannot be combined with `keep_best`.
    pub validation: Option<Validation<'c, T>>,
}

/// Held-out data scored during a run ([`RunOptions::validation`]).
///
/// Every `every` steps (and after the last one) each member's held-out score — its mean
/// negative log-likelihood per held-out row, `−ℓ_e(θ_e; data) / rows`, prior excluded — is
/// computed with the run's own log-joint; member `e` keeps the parameters of its best score.
/// Scoring reads the parameters only, so a run's training trajectory is the same bits with and
/// without validation for deterministic log-joints (a stochastic one, such as a VI objective,
/// draws its noise for the scoring too).
///
/// ```
/// # use flock_autograd::Batch;
/// use flock_runner::map::Validation;
/// let (x, y) = (vec![0.0, 0.5, 1.0], vec![0.0, 0.25, 1.0]);
/// let held_out = Validation::new(Batch::new(&x, &y, 3)?, 10).with_patience(5);
/// assert_eq!((held_out.every, held_out.patience), (10, Some(5)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Validation<'c, T> {
    /// The held-out rows (the same columns as the training data).
    pub data: Batch<'c, T>,
    /// Steps between scorings (≥ 1).
    pub every: usize,
    /// Freeze a member once this many scorings in a row did not improve its best (`None` =
    /// never); the run stops when every member is frozen.
    pub patience: Option<usize>,
}

impl<'c, T> Validation<'c, T> {
    /// Scores `data` every `every` steps, keeping each member's best parameters; no patience.
    pub fn new(data: Batch<'c, T>, every: usize) -> Self {
        Validation {
            data,
            every,
            patience: None,
        }
    }

    /// Freezes a member after `patience` scorings without improvement.
    #[must_use]
    pub fn with_patience(mut self, patience: usize) -> Self {
        self.patience = Some(patience);
        self
    }
}

impl<T> Default for RunOptions<'_, T> {
    fn default() -> Self {
        RunOptions {
            batch_size: None,
            sampling: Sampling::WithoutReplacement,
            callback: None,
            keep_best: false,
            on_divergence: OnDivergence::Freeze,
            progress: false,
            start_step: 0,
            validation: None,
        }
    }
}

impl<T> fmt::Debug for RunOptions<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("batch_size", &self.batch_size)
            .field("sampling", &self.sampling)
            .field("callback_every", &self.callback.as_ref().map(|c| c.0))
            .field("keep_best", &self.keep_best)
            .field("on_divergence", &self.on_divergence)
            .field("progress", &self.progress)
            .field("start_step", &self.start_step)
            .field(
                "validation",
                &self.validation.as_ref().map(|v| (v.every, v.patience)),
            )
            .finish()
    }
}

/// Why a runner failed.
#[derive(Debug)]
pub enum RunError<T> {
    /// A Layer 1 error (bad data, shapes, arguments).
    Ensemble(EnsembleError),
    /// A bad optimizer hyperparameter.
    Optim(OptimError),
    /// A member diverged and [`OnDivergence::Stop`] was asked for; nothing is lost: `partial`
    /// holds the parameters and losses up to that step.
    Diverged {
        /// The member and step.
        divergence: Divergence,
        /// The result so far.
        partial: Box<EnsembleResult<T>>,
    },
    /// [`EnsembleResult::merge`]: part `index` differs from the first part.
    IncompatiblePart {
        /// The part.
        index: usize,
        /// What differs (`"parameter layout"`, `"number of steps"`).
        what: &'static str,
    },
}

impl<T> fmt::Display for RunError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Ensemble(e) => write!(f, "{e}"),
            RunError::Optim(e) => write!(f, "{e}"),
            RunError::Diverged { divergence, .. } => write!(
                f,
                "member {} diverged at step {} (non-finite loss or gradient); the result up to it is kept",
                divergence.member, divergence.step
            ),
            RunError::IncompatiblePart { index, what } => write!(
                f,
                "cannot merge: part {index} has another {what} than part 0"
            ),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for RunError<T> {}

impl<T> From<EnsembleError> for RunError<T> {
    fn from(e: EnsembleError) -> Self {
        RunError::Ensemble(e)
    }
}

impl<T> From<flock_autograd::AutogradError> for RunError<T> {
    fn from(e: flock_autograd::AutogradError) -> Self {
        RunError::Ensemble(EnsembleError::Autograd(e))
    }
}

impl<T> From<OptimError> for RunError<T> {
    fn from(e: OptimError) -> Self {
        RunError::Optim(e)
    }
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
/// use flock_runner::map::{EnsembleMAP, RunOptions};
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
    prior_weight: f64,
    layout: ParamLayout,
    _element: core::marker::PhantomData<T>,
}

/// The init and batch streams `run` derives from its seed (pyrox splits its key in two).
pub(crate) fn split_seed(seed: u64) -> (u64, u64) {
    (
        seed,
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1),
    )
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
            prior_weight,
            layout,
            _element: core::marker::PhantomData,
        })
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

    /// Fresh members and optimizer state; member `e` depends only on `(seed, e)`.
    ///
    /// # Errors
    /// [`RunError::Ensemble`] when `init_fn` returns a bad block.
    pub fn init(&mut self, seed: u64) -> Result<EnsembleState<T, O::State>, RunError<T>> {
        Ok(ensemble_init(
            &self.layout,
            &mut self.init_fn,
            &self.optimizer,
            self.ensemble_size,
            seed,
        )?)
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
    /// `−ℓ_e(θ_e; data) / rows`, `[E]`, accumulated in f64. The score
    /// [`RunOptions::validation`] uses.
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for an empty batch, non-finite data, or a layout or shape mismatch.
    pub fn held_out_nll(
        &mut self,
        params: &Parameters<T>,
        data: Batch<'_, T>,
    ) -> Result<Vec<f64>, RunError<T>> {
        let mut scratch = HeldOut::default();
        scratch.score(&mut self.log_joint, params, data)?;
        Ok(scratch.scores)
    }

    /// `init` from the first half of `seed`, then [`EnsembleMAP::run_from`] with batches drawn
    /// from the second half.
    ///
    /// # Errors
    /// As [`EnsembleMAP::run_from`].
    pub fn run(
        &mut self,
        seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        let (init_seed, batch_seed) = split_seed(seed);
        let state = self.init(init_seed)?;
        self.run_from(state, batch_seed, num_epochs, data, options)
    }

    /// Trains `state` for `num_epochs` steps (fewer if a callback stops it) on `data` (all `N`
    /// examples; mini-batches of `options.batch_size` use `scale = N/|B|`).
    ///
    /// # Errors
    /// Layer 1's errors for bad data; [`RunError::Diverged`] with [`OnDivergence::Stop`].
    pub fn run_from(
        &mut self,
        mut state: EnsembleState<T, O::State>,
        batch_seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        self.train(&mut state, batch_seed, num_epochs, data, options)
    }

    /// [`EnsembleMAP::run_from`] on a state it updates in place, so the caller keeps the
    /// optimizer state (e.g. to save a checkpoint with
    /// [`save_state`](crate::checkpoint::save_state) and resume later with
    /// [`RunOptions::start_step`], to the bits of an uninterrupted run).
    ///
    /// # Errors
    /// As [`EnsembleMAP::run_from`].
    pub fn train(
        &mut self,
        state: &mut EnsembleState<T, O::State>,
        batch_seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        mut options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        let members = state.members();
        let p = self.layout.member_size();
        let n = data.rows;
        if let Some(v) = &options.validation {
            if options.keep_best {
                return Err(EnsembleError::InvalidArgument {
                    name: "validation",
                    value: 1.0,
                    expected: "either keep_best (lowest training loss) or validation, not both",
                }
                .into());
            }
            if v.every == 0 {
                return Err(EnsembleError::InvalidArgument {
                    name: "validation.every",
                    value: 0.0,
                    expected: "at least one step between scorings",
                }
                .into());
            }
        }
        let mut held_out = options
            .validation
            .map(|v| (v, HeldOut::default(), vec![0usize; members]));
        let mut batcher = MiniBatcher::new(
            n.max(1),
            options.batch_size.unwrap_or(n).max(1),
            options.sampling,
            batch_seed,
        )?;
        let scale = batcher.scale();
        let (mut x_batch, mut y_batch) = (Vec::new(), Vec::new());
        let mut history: Vec<T> = Vec::with_capacity(members * num_epochs);
        let mut frozen = vec![false; members];
        let mut frozen_params: Vec<Option<Vec<T>>> = vec![None; members];
        let mut frozen_state: Option<OptimizerBlocks<O::State>> = None;
        let mut diverged = Vec::new();
        let mut best =
            (options.keep_best || held_out.is_some()).then(|| BestParams::new(&state.params));
        let mut previous = options.keep_best.then(|| state.params.values().to_vec());
        let last = num_epochs.saturating_sub(1);
        let (mut stopped_early, mut steps) = (false, 0);
        let mut bar = options
            .progress
            .then(|| ProgressBar::new("train", "steps", num_epochs));
        let first = options.start_step.min(num_epochs);
        if !batcher.is_full_batch() {
            for _ in 0..first {
                batcher.next_indices();
            }
        }

        for (index, step) in (first..num_epochs).enumerate() {
            let batch = if batcher.is_full_batch() {
                data
            } else {
                batcher.next_batch(data.x, data.y, &mut x_batch, &mut y_batch);
                Batch::new(&x_batch, &y_batch, batcher.batch_size()).map_err(EnsembleError::from)?
            };
            if let Some(prev) = previous.as_mut() {
                prev.copy_from_slice(state.params.values());
            }
            let losses = ensemble_step(
                state,
                batch,
                &mut self.log_joint,
                &self.optimizer,
                self.prior_weight,
                scale,
            )?;
            history.extend_from_slice(losses);
            steps = index + 1;
            // Frozen members do not move: put back their parameters and optimizer state.
            if frozen.iter().any(|&f| f) {
                for e in (0..members).filter(|&e| frozen[e]) {
                    if let Some(block) = &frozen_params[e] {
                        state.params.member_mut(e).copy_from_slice(block);
                    }
                    if let Some(snapshot) = &frozen_state {
                        state.restore_member_opt_state(snapshot, e);
                    }
                }
            }
            if let (Some(best), Some(prev)) = (best.as_mut(), &previous) {
                let losses = &history[index * members..];
                for e in 0..members {
                    best.offer(e, losses[e], &prev[e * p..(e + 1) * p]);
                }
            }
            let mut to_freeze: Vec<usize> = Vec::new();
            if let (Some((v, scratch, stale)), Some(best)) = (held_out.as_mut(), best.as_mut())
                && ((step + 1) % v.every == 0 || step == last)
            {
                scratch.score(&mut self.log_joint, &state.params, v.data)?;
                for e in (0..members).filter(|&e| !frozen[e]) {
                    let score = T::from_f64(scratch.scores[e]);
                    if best.offer(e, score, state.params.member(e)) {
                        stale[e] = 0;
                    } else {
                        stale[e] += 1;
                        if v.patience.is_some_and(|patience| stale[e] >= patience) {
                            to_freeze.push(e);
                        }
                    }
                }
            }
            for &e in state.diverged() {
                if !frozen[e] {
                    let divergence = Divergence { member: e, step };
                    diverged.push(divergence);
                    if options.on_divergence == OnDivergence::Stop {
                        let partial = finish(
                            state.params.clone(),
                            history,
                            members,
                            steps,
                            false,
                            diverged,
                            best,
                        );
                        return Err(RunError::Diverged {
                            divergence,
                            partial: Box::new(partial),
                        });
                    }
                    to_freeze.push(e);
                }
            }
            if let Some((every, callback)) = options.callback.as_mut()
                && *every > 0
                && (step + 1) % *every == 0
            {
                let control = callback(&Progress {
                    step: step + 1,
                    losses: &history[index * members..],
                    params: &state.params,
                    frozen: &frozen,
                });
                to_freeze.extend(control.freeze.into_iter().filter(|&e| e < members));
                if control.stop {
                    stopped_early = step + 1 < num_epochs;
                    break;
                }
            }
            if !to_freeze.is_empty() {
                frozen_state = Some(state.opt_blocks().clone());
                for e in to_freeze {
                    frozen[e] = true;
                    frozen_params[e] = Some(state.params.member(e).to_vec());
                }
                if held_out.is_some() && frozen.iter().all(|&f| f) {
                    stopped_early = step + 1 < num_epochs;
                    break;
                }
            }
            if let Some(bar) = bar.as_mut() {
                let latest = &history[index * members..];
                let (sum, count) = latest
                    .iter()
                    .map(|v| v.to_f64())
                    .filter(|v| v.is_finite())
                    .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
                bar.update(step + 1, Some(sum / count.max(1) as f64));
            }
        }
        Ok(finish(
            state.params.clone(),
            history,
            members,
            steps,
            stopped_early,
            diverged,
            best,
        ))
    }
}

/// Each member's best (lowest) score so far and its parameters at that score: the state of
/// best-parameter keeping and of held-out early stopping, in [`EnsembleMAP::train`] and in the
/// `flock fit` loop (which saves it in its resumable training state).
///
/// ```
/// use flock_autograd::{ParamLayout, Parameters};
/// use flock_runner::map::BestParams;
/// let mut layout = ParamLayout::new();
/// layout.add("w", [2])?;
/// let now = Parameters::from_values(layout, 2, vec![1.0, 1.0, 2.0, 2.0])?;
/// let mut best = BestParams::new(&now);
/// assert!(best.offer(0, 0.5, &[9.0, 9.0]));
/// assert!(!best.offer(0, 0.7, &[8.0, 8.0])); // worse: not kept
/// assert!(!best.offer(1, f64::NAN, &[7.0, 7.0])); // NaN never improves
/// // Member 1 never had a finite score, so it keeps its current parameters.
/// assert_eq!(best.into_params(&now).values(), &[9.0, 9.0, 2.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BestParams<T> {
    scores: Vec<T>,
    params: Parameters<T>,
}

impl<T: Element> BestParams<T> {
    /// No score yet (every best score `+∞`); `params` only gives the shape.
    pub fn new(params: &Parameters<T>) -> BestParams<T> {
        BestParams {
            scores: vec![T::INFINITY; params.members()],
            params: params.clone(),
        }
    }

    /// A state saved earlier (`scores` has one entry per member of `params`).
    ///
    /// # Errors
    /// [`EnsembleError::InvalidArgument`] if the lengths disagree.
    pub fn from_parts(
        scores: Vec<T>,
        params: Parameters<T>,
    ) -> Result<BestParams<T>, EnsembleError> {
        if scores.len() != params.members() {
            return Err(EnsembleError::InvalidArgument {
                name: "best scores",
                value: scores.len() as f64,
                expected: "one score per member",
            });
        }
        Ok(BestParams { scores, params })
    }

    /// Member `e` scored `score` with parameters `member_params`: kept if it beats the best so
    /// far (NaN never does). Returns whether it did.
    pub fn offer(&mut self, e: usize, score: T, member_params: &[T]) -> bool {
        let better = score < self.scores[e];
        if better {
            self.scores[e] = score;
            self.params.member_mut(e).copy_from_slice(member_params);
        }
        better
    }

    /// The best score of each member (`+∞` for one never scored).
    pub fn scores(&self) -> &[T] {
        &self.scores
    }

    /// The parameters at each member's best score.
    pub fn params(&self) -> &Parameters<T> {
        &self.params
    }

    /// Each member's best parameters; a member that never had a finite score (diverged from the
    /// start, say) keeps its parameters in `last`.
    pub fn into_params(self, last: &Parameters<T>) -> Parameters<T> {
        let mut params = self.params;
        for (e, score) in self.scores.iter().enumerate() {
            if !score.is_finite() {
                params.member_mut(e).copy_from_slice(last.member(e));
            }
        }
        params
    }
}

/// Builds the result: losses transposed to `[E, steps]`, best parameters when kept.
fn finish<T: Element>(
    params: Parameters<T>,
    history: Vec<T>,
    members: usize,
    steps: usize,
    stopped_early: bool,
    diverged: Vec<Divergence>,
    best: Option<BestParams<T>>,
) -> EnsembleResult<T> {
    let mut losses = vec![T::ZERO; members * steps];
    for t in 0..steps {
        for e in 0..members {
            losses[e * steps + t] = history[t * members + e];
        }
    }
    let params = match best {
        Some(best) => best.into_params(&params),
        None => params,
    };
    EnsembleResult {
        params,
        losses,
        steps,
        stopped_early,
        diverged,
    }
}

/// pyrox's `ensemble_map`: `EnsembleMAP` with `adam(5e-3)` and `prior_weight = 1`, trained
/// full-batch for `num_epochs` steps.
///
/// # Errors
/// As [`EnsembleMAP::run`].
#[allow(clippy::type_complexity)]
pub fn ensemble_map<T, L, F>(
    log_joint: L,
    init_fn: F,
    data: Batch<'_, T>,
    ensemble_size: usize,
    num_epochs: usize,
    seed: u64,
) -> Result<EnsembleResult<T>, RunError<T>>
where
    T: Element,
    L: LogJoint<T>,
    F: FnMut(&mut MemberRng) -> Vec<T>,
{
    let optimizer: Adam = adam(5e-3, AdamConfig::default())?;
    let mut map = EnsembleMAP::new(log_joint, init_fn, optimizer, ensemble_size, 1.0)?;
    map.run(seed, num_epochs, data, RunOptions::default())
}

/// Scratch for scoring held-out data: per-member scores and the log-joint's output buffers.
#[derive(Debug, Default)]
struct HeldOut<T> {
    scores: Vec<f64>,
    loglik: Vec<T>,
    logprior: Vec<T>,
    grad: Vec<T>,
}

impl<T: Element> HeldOut<T> {
    /// Fills `scores` with `−ℓ_e / rows` for every member of `params`.
    fn score<L: LogJoint<T>>(
        &mut self,
        log_joint: &mut L,
        params: &Parameters<T>,
        data: Batch<'_, T>,
    ) -> Result<(), EnsembleError> {
        if data.rows == 0 {
            return Err(EnsembleError::EmptyBatch);
        }
        for (what, buf) in [("x", data.x), ("y", data.y)] {
            if let Some(index) = buf.iter().position(|v| !v.to_f64().is_finite()) {
                return Err(EnsembleError::NonFiniteData { what, index });
            }
        }
        if params.layout() != log_joint.layout() {
            return Err(EnsembleError::LayoutMismatch {
                state: params.layout().member_size(),
                log_joint: log_joint.layout().member_size(),
            });
        }
        let members = params.members();
        self.loglik.resize(members, T::ZERO);
        self.logprior.resize(members, T::ZERO);
        self.grad.resize(params.values().len(), T::ZERO);
        log_joint.evaluate(
            members,
            params.values(),
            data,
            Weights {
                loglik: T::ONE,
                logprior: T::ZERO,
            },
            LogJointOutput {
                loglik: &mut self.loglik,
                logprior: &mut self.logprior,
                grad: &mut self.grad,
            },
        )?;
        let rows = data.rows as f64;
        self.scores.clear();
        self.scores
            .extend(self.loglik.iter().map(|l| -l.to_f64() / rows));
        Ok(())
    }
}
