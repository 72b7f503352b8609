//! The training loop — the one loop every fit in flock goes through ([`EnsembleMAP::train`];
//! `EnsembleVI`, `fit`, the UCI protocol and the command line all call it) — and its hooks.
//!
//! A run in progress is a [`Training`]: parameters and optimizer state, the steps taken, every
//! member's loss curve so far and the bookkeeping of best-parameter keeping, freezing and
//! divergence. [`EnsembleMAP::train`] takes it forward; everything else is a hook in
//! [`RunOptions`]:
//!
//! - [`Validation`]: scores held-out data every so many steps with a [`Scorer`] (the log-joint's
//!   NLL by default; a VI fit scores the mixture of its guides' draws) and keeps each member at
//!   its best score, optionally freezing members that stop improving;
//! - [`Checkpointing`]: hands a [`Snapshot`] of the whole [`Training`] to a [`CheckpointSink`]
//!   every so many steps (a file with [`Checkpointing::to_file`]), from which
//!   [`EnsembleMAP::restore`] continues to the bits of an uninterrupted run;
//! - [`ProgressHook`]: told the step and the mean loss after every step (the `flock` command
//!   draws a progress bar with it);
//! - a [`Callback`] that can stop the run or freeze members.
//!
//! [`EnsembleMAP::train`]: crate::map::EnsembleMAP::train
//! [`EnsembleMAP::restore`]: crate::map::EnsembleMAP::restore

use core::ops::ControlFlow;
use std::fmt;
use std::path::PathBuf;

use flock_autograd::{Batch, LogJoint, LogJointOutput, Parameters, Weights};
use flock_ensemble::{
    ApartRecord, Batches, DataOrder, EnsembleError, EnsembleState, MemberHeldOut, OptimizerBlocks,
    Sampling, StepsApart, ensemble_step, ensemble_steps_apart, steps_apart_pay,
};
use flock_kernels::Element;
use flock_optim::{GradientTransformation, MemberState};

use crate::checkpoint::{CheckpointError, write_training};
use crate::distributed::{Communicator, bytes_f64};
use crate::error::RunError;
use crate::feed::{feed_batches, gather_ahead};
use crate::map::{Divergence, EnsembleResult};

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

/// How the members take their steps: all together at every step, or each on its own for a run
/// of steps (between two steps at which a hook is due). The results are the same bits either
/// way; only the speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StepOrder {
    /// Apart where it pays ([`steps_apart_pay`]: a log-joint of several threads, and members of
    /// a megabyte or more of parameters and optimizer state, or members whose values on full
    /// batches fill a call of the log-joint alone, or blocks of members that would leave a
    /// thread a fifth more than its share), together otherwise. A log-joint that has not
    /// evaluated yet cannot tell how much a member's values take: the first step then goes
    /// together, and the order of the rest is chosen after it.
    #[default]
    Auto,
    /// Every member steps at every step ([`ensemble_step`]): the members of each thread's block
    /// go through each op together.
    Together,
    /// Each member takes a run of steps on its own ([`ensemble_steps_apart`]), one member per
    /// thread at a time — where the run's options allow: a member-sharded run (`peers`, whose
    /// ranks decide together after every step), [`OnDivergence::Stop`] and `keep_best` (which
    /// offers each step's parameters before its update) step together. A log-joint that draws
    /// noise (VI) has each member's random stream follow the member from thread to thread.
    Apart,
}

impl StepOrder {
    /// Every order, in the order of their names' listing.
    pub const ALL: [StepOrder; 3] = [StepOrder::Auto, StepOrder::Together, StepOrder::Apart];

    /// The order's name on the command line: `auto`, `together` or `apart`.
    pub fn name(self) -> &'static str {
        match self {
            StepOrder::Auto => "auto",
            StepOrder::Together => "together",
            StepOrder::Apart => "apart",
        }
    }

    /// The order named `name` ([`StepOrder::name`]).
    pub fn from_name(name: &str) -> Option<StepOrder> {
        StepOrder::ALL.into_iter().find(|o| o.name() == name)
    }
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

/// Told how a run goes after every step (e.g. to draw a progress bar); it cannot change the
/// run, only stop it.
pub trait ProgressHook {
    /// A step is done.
    fn update(&mut self, report: &StepReport);

    /// Asked after every [`update`](ProgressHook::update) (in a member-sharded run, just before
    /// it, so that the answer travels with the step's exchange): `true` stops the run with
    /// [`RunError::Interrupted`] (after the step's
    /// checkpoint, if one was due). For a user's Ctrl-C; never by default.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// What a [`ProgressHook`] is told after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Steps done, counted from the run's start (resumed runs included).
    pub step: usize,
    /// The step this call of the loop ends at.
    pub until: usize,
    /// The mean of the members' finite losses at this step (NaN if none is finite): the
    /// negative log-joint (or ELBO) on the whole training set, estimated from the batch.
    pub mean_loss: f64,
    /// Training rows (divide `mean_loss` by it for a per-row figure).
    pub rows: usize,
}

/// Scores each member's parameters on held-out data for [`Validation`]: lower is better, and NaN
/// never counts as better.
pub trait Scorer<T: Element> {
    /// Writes each member's score of `params` to `scores` (`[E]`). `log_joint` is the run's own
    /// (the default scorer, [`LogJointNll`], evaluates it; others may ignore it).
    ///
    /// # Errors
    /// A typed error naming what could not be scored.
    fn score(
        &mut self,
        log_joint: &mut dyn LogJoint<T>,
        params: &Parameters<T>,
        scores: &mut Vec<f64>,
    ) -> Result<(), RunError<T>>;
}

/// The default held-out score: each member's mean negative log-likelihood per held-out row,
/// `−ℓ_e(θ_e; data) / rows`, prior excluded, computed with the run's own log-joint and
/// accumulated in f64.
#[derive(Debug)]
pub struct LogJointNll<'d, T> {
    data: Batch<'d, T>,
    loglik: Vec<T>,
    logprior: Vec<T>,
    grad: Vec<T>,
}

impl<'d, T: Element> LogJointNll<'d, T> {
    /// Scores `data` (the same columns as the training data).
    pub fn new(data: Batch<'d, T>) -> Self {
        LogJointNll {
            data,
            loglik: Vec::new(),
            logprior: Vec::new(),
            grad: Vec::new(),
        }
    }
}

impl<T: Element> Scorer<T> for LogJointNll<'_, T> {
    fn score(
        &mut self,
        log_joint: &mut dyn LogJoint<T>,
        params: &Parameters<T>,
        scores: &mut Vec<f64>,
    ) -> Result<(), RunError<T>> {
        let data = self.data;
        if data.rows == 0 {
            return Err(EnsembleError::EmptyBatch.into());
        }
        for (what, buf) in [("x", data.x), ("y", data.y)] {
            if let Some(index) = buf.iter().position(|v| !v.to_f64().is_finite()) {
                return Err(EnsembleError::NonFiniteData { what, index }.into());
            }
        }
        if params.layout() != log_joint.layout() {
            return Err(EnsembleError::LayoutMismatch {
                state: params.layout().member_size(),
                log_joint: log_joint.layout().member_size(),
            }
            .into());
        }
        let members = params.members();
        self.loglik.resize(members, T::ZERO);
        self.logprior.resize(members, T::ZERO);
        self.grad.resize(params.values().len(), T::ZERO);
        log_joint.evaluate(
            members,
            params.values(),
            data,
            Weights::values_only(),
            LogJointOutput {
                loglik: &mut self.loglik,
                logprior: &mut self.logprior,
                grad: &mut self.grad,
            },
        )?;
        let rows = data.rows as f64;
        scores.clear();
        scores.extend(self.loglik.iter().map(|l| -l.to_f64() / rows));
        Ok(())
    }
}

/// Held-out scoring during a run ([`RunOptions::validation`]).
///
/// Every `every` steps (and after the last one) each member is scored by `scorer` and keeps
/// the parameters of its best score. Scoring reads the parameters only, so a run's training
/// trajectory is the same bits with and without validation for deterministic log-joints (a
/// stochastic one, such as a VI objective scored through itself, draws its noise for the scoring
/// too).
///
/// ```
/// # use flock_autograd::Batch;
/// use flock_runner::train::Validation;
/// let (x, y) = (vec![0.0, 0.5, 1.0], vec![0.0, 0.25, 1.0]);
/// let held_out = Validation::new(Batch::new(&x, &y, 3)?, 10).with_patience(5);
/// assert_eq!((held_out.every, held_out.patience), (10, Some(5)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Validation<'c, T> {
    /// How each member is scored.
    pub scorer: Box<dyn Scorer<T> + 'c>,
    /// Steps between scorings (≥ 1).
    pub every: usize,
    /// Freeze a member once this many scorings in a row did not improve its best (`None` =
    /// never); the run stops when every member is frozen.
    pub patience: Option<usize>,
}

impl<'c, T: Element> Validation<'c, T> {
    /// Scores `data` with the run's log-joint ([`LogJointNll`]) every `every` steps, keeping each
    /// member's best parameters; no patience.
    pub fn new(data: Batch<'c, T>, every: usize) -> Self {
        Validation::with_scorer(LogJointNll::new(data), every)
    }

    /// Scores with `scorer` every `every` steps.
    pub fn with_scorer(scorer: impl Scorer<T> + 'c, every: usize) -> Self {
        Validation {
            scorer: Box::new(scorer),
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

impl<T> fmt::Debug for Validation<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validation")
            .field("every", &self.every)
            .field("patience", &self.patience)
            .finish_non_exhaustive()
    }
}

/// A [`Training`] as a checkpoint holds it: the optimizer state flattened to f64
/// ([`MemberState::save`]) with its [`MemberState::tag`], and the log-joint's random-stream
/// positions when it draws noise.
#[derive(Debug)]
pub struct Snapshot<'a, T> {
    /// Steps taken.
    pub step: usize,
    /// The current parameters.
    pub params: &'a Parameters<T>,
    /// The optimizer state's values.
    pub optimizer_state: &'a [f64],
    /// The optimizer state's tag.
    pub optimizer_tag: &'a str,
    /// The losses so far, step-major (`[step, E]`).
    pub losses: &'a [T],
    /// Each member's best score and parameters, when kept.
    pub best: Option<&'a BestParams<T>>,
    /// Scorings since each member's best (validation with patience).
    pub stale: &'a [usize],
    /// Frozen members.
    pub frozen: &'a [bool],
    /// Members that diverged, and when.
    pub diverged: &'a [Divergence],
    /// Each member's random-stream position ([`LogJoint::stream_positions`]).
    pub streams: Option<&'a [u64]>,
}

/// Where [`Checkpointing`] puts its snapshots.
pub trait CheckpointSink<T> {
    /// Saves `snapshot`.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] and the like; the run stops with it.
    fn save(&mut self, snapshot: &Snapshot<'_, T>) -> Result<(), CheckpointError>;
}

/// The training-state file of [`Checkpointing::to_file`]: each snapshot replaces the last,
/// written atomically ([`write_training`]).
#[derive(Clone, Debug)]
pub struct StateFile {
    /// The file.
    pub path: PathBuf,
}

impl<T: Element> CheckpointSink<T> for StateFile {
    fn save(&mut self, snapshot: &Snapshot<'_, T>) -> Result<(), CheckpointError> {
        write_training(&self.path, snapshot)
    }
}

/// Saves the run every `every` steps (and at the end of each call of the loop).
pub struct Checkpointing<'c, T> {
    /// Steps between saves (e.g. one epoch's), ≥ 1.
    pub every: usize,
    /// Where the snapshots go.
    pub sink: Box<dyn CheckpointSink<T> + 'c>,
}

impl<'c, T: Element> Checkpointing<'c, T> {
    /// Every `every` steps to the training-state file `path` (replaced each time), which
    /// [`Checkpoint::read`](crate::checkpoint::Checkpoint::read) and
    /// [`EnsembleMAP::restore`](crate::map::EnsembleMAP::restore) read back.
    pub fn to_file(path: impl Into<PathBuf>, every: usize) -> Self {
        Checkpointing {
            every,
            sink: Box::new(StateFile { path: path.into() }),
        }
    }
}

impl<T> fmt::Debug for Checkpointing<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpointing")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// Options of [`EnsembleMAP::run`](crate::map::EnsembleMAP::run) and
/// [`EnsembleMAP::train`](crate::map::EnsembleMAP::train).
pub struct RunOptions<'c, T> {
    /// Examples per step; `None` = the full data set (pyrox's `batch_size=None`).
    pub batch_size: Option<usize>,
    /// How mini-batches are drawn.
    pub sampling: Sampling,
    /// Whether members share one data order or each draws its own.
    pub data_order: DataOrder,
    /// Rows each member holds out (for the run's members, over the data's rows): its batches
    /// are drawn from the rows it keeps ([`Batches::holding_out`]); `data_order` must then be
    /// [`DataOrder::PerMember`]. A `validation` on each member's own held-out rows
    /// ([`MemberHeldOut::gather`] into a per-member batch) completes the split.
    pub held_out_rows: Option<&'c MemberHeldOut>,
    /// A callback and how often it runs.
    pub callback: Option<(usize, Callback<'c, T>)>,
    /// Keep each member's parameters at its lowest loss instead of the last ones.
    pub keep_best: bool,
    /// Diverging members: freeze or stop.
    pub on_divergence: OnDivergence,
    /// Told the step and mean loss after every step (`None`: library runs are silent).
    pub progress: Option<Box<dyn ProgressHook + 'c>>,
    /// Held-out data for early stopping: each member ends with its parameters at its best
    /// held-out score (instead of the last ones) and, with a patience, stops training when the
    /// score no longer improves. Cannot be combined with `keep_best`.
    pub validation: Option<Validation<'c, T>>,
    /// Save the run every so many steps, to resume it later.
    pub checkpoint: Option<Checkpointing<'c, T>>,
    /// The processes of a member-sharded run, each training its block of members
    /// ([`EnsembleMAP::with_members`](crate::map::EnsembleMAP::with_members)); `None` for a
    /// run of one process. The decisions that depend on every member are taken together after
    /// each step (one small all-gather of the step's losses and flags): the run stops when a
    /// callback on any rank asks or, with a validation patience, when every member of every
    /// rank is frozen; the user's interruption on any rank stops them all; the progress hook's
    /// mean loss is every member's. Cannot be combined with [`OnDivergence::Stop`].
    pub peers: Option<&'c dyn Communicator>,
    /// Members stepped together or apart (the same bits; [`StepOrder::Auto`] picks the faster).
    pub step_order: StepOrder,
}

impl<T> Default for RunOptions<'_, T> {
    fn default() -> Self {
        RunOptions {
            batch_size: None,
            sampling: Sampling::WithoutReplacement,
            data_order: DataOrder::Shared,
            held_out_rows: None,
            callback: None,
            keep_best: false,
            on_divergence: OnDivergence::Freeze,
            progress: None,
            validation: None,
            checkpoint: None,
            peers: None,
            step_order: StepOrder::Auto,
        }
    }
}

impl<T> fmt::Debug for RunOptions<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("batch_size", &self.batch_size)
            .field("sampling", &self.sampling)
            .field("data_order", &self.data_order)
            .field(
                "held_out_rows",
                &self.held_out_rows.map(|h| h.held_per_member()),
            )
            .field("callback_every", &self.callback.as_ref().map(|c| c.0))
            .field("keep_best", &self.keep_best)
            .field("on_divergence", &self.on_divergence)
            .field("progress", &self.progress.is_some())
            .field("validation", &self.validation)
            .field("checkpoint", &self.checkpoint)
            .field("ranks", &self.peers.map(|p| p.size()))
            .field("step_order", &self.step_order)
            .finish()
    }
}

impl<T> RunOptions<'_, T> {
    /// The settings that contradict each other or cannot run, refused before the first step.
    fn check(&self) -> Result<(), EnsembleError> {
        let invalid = |name, value, expected| {
            Err(EnsembleError::InvalidArgument {
                name,
                value,
                expected,
            })
        };
        if let Some(v) = &self.validation {
            if self.keep_best {
                return invalid(
                    "validation",
                    1.0,
                    "either keep_best (lowest training loss) or validation, not both",
                );
            }
            if v.every == 0 {
                return invalid(
                    "validation.every",
                    0.0,
                    "at least one step between scorings",
                );
            }
        }
        if self.peers.is_some() && self.on_divergence == OnDivergence::Stop {
            return invalid(
                "on_divergence",
                1.0,
                "Freeze in a member-sharded run (one rank cannot stop the others' members)",
            );
        }
        if self.checkpoint.as_ref().is_some_and(|c| c.every == 0) {
            return invalid(
                "checkpoint.every",
                0.0,
                "at least one step between checkpoints",
            );
        }
        Ok(())
    }

    /// The mini-batches of `members` (the whole ensemble's indices) over `rows` data rows,
    /// drawn from `seed`: each member's own kept rows when it holds some out, else all rows in
    /// the data order asked for.
    fn batches(
        &self,
        rows: usize,
        members: core::ops::Range<usize>,
        seed: u64,
    ) -> Result<Batches, EnsembleError> {
        let batch_size = self.batch_size.unwrap_or(rows).max(1);
        let Some(split) = self.held_out_rows else {
            return Batches::for_members(
                rows.max(1),
                batch_size,
                self.sampling,
                seed,
                members,
                self.data_order,
            );
        };
        if self.data_order != DataOrder::PerMember {
            return Err(EnsembleError::InvalidArgument {
                name: "held_out_rows",
                value: split.held_per_member() as f64,
                expected: "a data order of each member's own (DataOrder::PerMember)",
            });
        }
        if split.members() != members || split.rows() != rows {
            return Err(EnsembleError::InvalidArgument {
                name: "held_out_rows",
                value: split.rows() as f64,
                expected: "a split of the run's data rows for the run's members",
            });
        }
        Batches::holding_out(split, batch_size, self.sampling, seed)
    }
}

/// Each member's best (lowest) score so far and its parameters at that score: the state of
/// best-parameter keeping and of held-out early stopping.
///
/// ```
/// use flock_autograd::{ParamLayout, Parameters};
/// use flock_runner::train::BestParams;
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

/// A run in progress: everything [`EnsembleMAP::train`](crate::map::EnsembleMAP::train) needs to
/// go on — parameters and optimizer state, the steps taken, every member's losses so far, each
/// member's best parameters (when kept), and which members are frozen or diverged.
/// Training a `Training` to step `a`, then on to `b`, gives the bits of training it to `b` at
/// once; so does saving it in between and restoring it
/// ([`EnsembleMAP::restore`](crate::map::EnsembleMAP::restore)).
#[derive(Clone, Debug)]
pub struct Training<T, S> {
    /// Parameters and optimizer state.
    pub state: EnsembleState<T, S>,
    pub(crate) step: usize,
    /// Losses, step-major: `losses[t·E + e]`.
    pub(crate) losses: Vec<T>,
    pub(crate) best: Option<BestParams<T>>,
    pub(crate) stale: Vec<usize>,
    pub(crate) frozen: Vec<bool>,
    pub(crate) diverged: Vec<Divergence>,
    pub(crate) stopped_early: bool,
}

impl<T: Element, S: MemberState> Training<T, S> {
    /// A run that has taken no step yet, from `state`.
    pub fn new(state: EnsembleState<T, S>) -> Self {
        let members = state.members();
        Training {
            state,
            step: 0,
            losses: Vec::new(),
            best: None,
            stale: vec![0; members],
            frozen: vec![false; members],
            diverged: Vec::new(),
            stopped_early: false,
        }
    }

    /// Steps taken.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Members.
    pub fn members(&self) -> usize {
        self.state.members()
    }

    /// Member `e`'s losses so far, one per step.
    pub fn member_losses(&self, e: usize) -> impl Iterator<Item = T> + '_ {
        let members = self.members();
        self.losses.iter().skip(e).step_by(members).copied()
    }

    /// Each member's best score and parameters, when the run keeps them.
    pub fn best(&self) -> Option<&BestParams<T>> {
        self.best.as_ref()
    }

    /// Members that diverged, and when.
    pub fn diverged(&self) -> &[Divergence] {
        &self.diverged
    }

    /// Whether the last call of the loop ended before its last step (a callback, or every member
    /// frozen by the validation patience).
    pub fn stopped_early(&self) -> bool {
        self.stopped_early
    }

    /// The run so far as a result: the parameters (each member's best when kept), the losses as
    /// `[E, steps]`.
    pub fn result(&self) -> EnsembleResult<T> {
        let members = self.members();
        let steps = self.step;
        let mut losses = vec![T::ZERO; members * steps];
        for (t, row) in self.losses.chunks_exact(members.max(1)).enumerate() {
            for (e, &loss) in row.iter().enumerate() {
                losses[e * steps + t] = loss;
            }
        }
        let params = match &self.best {
            Some(best) => best.clone().into_params(&self.state.params),
            None => self.state.params.clone(),
        };
        EnsembleResult {
            params,
            losses,
            steps,
            stopped_early: self.stopped_early,
            diverged: self.diverged.clone(),
        }
    }

    /// Hands the run to `sink` as a [`Snapshot`], with `streams` (the log-joint's random-stream
    /// positions, if it draws noise).
    ///
    /// # Errors
    /// The sink's.
    pub fn save_to(
        &self,
        sink: &mut (impl CheckpointSink<T> + ?Sized),
        streams: Option<&[u64]>,
    ) -> Result<(), CheckpointError> {
        let opt = self.state.opt_state();
        let mut values = Vec::new();
        opt.save(&mut values);
        let tag = opt.tag();
        sink.save(&Snapshot {
            step: self.step,
            params: &self.state.params,
            optimizer_state: &values,
            optimizer_tag: &tag,
            losses: &self.losses,
            best: self.best.as_ref(),
            stale: &self.stale,
            frozen: &self.frozen,
            diverged: &self.diverged,
            streams,
        })
    }
}

/// What the loop minimises: `−(ℓ + prior_weight·π)` of `log_joint`, stepped by `optimizer`.
pub(crate) struct Objective<'a, L, O> {
    pub(crate) log_joint: &'a mut L,
    pub(crate) optimizer: &'a O,
    pub(crate) prior_weight: f64,
    /// The whole ensemble's index of the training's member 0 (a member-sharded run's block).
    pub(crate) first_member: usize,
}

/// The loop: trains `training` on `data` until step `num_steps` (`options` as
/// [`RunOptions`] says), with the mini-batches of `batch_seed`.
pub(crate) fn train_loop<T, L, O>(
    objective: Objective<'_, L, O>,
    training: &mut Training<T, O::State>,
    batch_seed: u64,
    num_steps: usize,
    data: Batch<'_, T>,
    options: RunOptions<'_, T>,
) -> Result<EnsembleResult<T>, RunError<T>>
where
    T: Element,
    L: LogJoint<T>,
    O: GradientTransformation<T>,
{
    options.check()?;
    let members = training.members();
    let first_member = objective.first_member;
    let mut batches =
        options.batches(data.rows, first_member..first_member + members, batch_seed)?;
    // Examples each member's step takes (its batch's rows).
    let step_rows = options
        .batch_size
        .map_or(data.rows, |b| b.min(data.rows))
        .max(1);
    let apart_allowed = options.peers.is_none()
        && options.on_divergence == OnDivergence::Freeze
        && !options.keep_best;
    let apart = apart_allowed
        && match options.step_order {
            StepOrder::Together => false,
            StepOrder::Apart => true,
            StepOrder::Auto => steps_apart_pay(&*objective.log_joint, members, &data, step_rows),
        };
    // A log-joint that has not evaluated yet cannot tell how much storage a member takes, which
    // `steps_apart_pay` weighs for full batches: under `Auto` the first step goes together and
    // the order is chosen again after it (the same bits either way).
    let choose_after_first = apart_allowed
        && !apart
        && options.step_order == StepOrder::Auto
        && members >= 2
        && step_rows >= data.rows
        && objective.log_joint.threads() >= 2
        && objective
            .log_joint
            .workspace_per_member(step_rows)
            .is_none();
    let RunOptions {
        callback,
        keep_best,
        on_divergence,
        progress,
        validation,
        checkpoint,
        peers,
        ..
    } = options;
    let p = training.state.params.layout().member_size();
    if (keep_best || validation.is_some()) && training.best.is_none() {
        training.best = Some(BestParams::new(&training.state.params));
    }
    let scale = batches.scale();
    let first = training.step.min(num_steps);
    batches.skip(first);
    training
        .losses
        .reserve(members * num_steps.saturating_sub(first));
    let mut frozen = Frozen::of(training);
    training.stopped_early = false;
    let mut hooks = Hooks {
        callback,
        validation,
        checkpoint,
        progress,
        peers,
        on_divergence,
        members,
        num_steps,
        rows: data.rows,
        scores: Vec::with_capacity(members),
        streams: Vec::new(),
        diverged: Vec::new(),
    };
    // Together from the start, or for the first step only (then `go_apart` says how the rest
    // goes), unless apart from the start.
    let go_apart = apart || {
        let log_joint: &mut L = &mut *objective.log_joint;
        let (optimizer, prior_weight) = (objective.optimizer, objective.prior_weight);
        let mut previous = keep_best.then(|| training.state.params.values().to_vec());
        let ahead = gather_ahead(&batches, data);
        // What comes after the first step when it is taken together to measure the log-joint:
        // the rest of the run apart (`true`) or together (`false`); `None` when the hooks stopped
        // the run there.
        let after_first = core::cell::Cell::new(None);
        let mut take_step =
            |step: usize, batch: Batch<'_, T>| -> Result<ControlFlow<()>, RunError<T>> {
                if let Some(prev) = previous.as_mut() {
                    prev.copy_from_slice(training.state.params.values());
                }
                let losses = ensemble_step(
                    &mut training.state,
                    batch,
                    log_joint,
                    optimizer,
                    prior_weight,
                    scale,
                )?;
                training.losses.extend_from_slice(losses);
                training.step = step + 1;
                let latest = training.losses.len() - members;
                frozen.restore(training);
                if let (Some(best), Some(prev)) = (training.best.as_mut(), &previous) {
                    for e in 0..members {
                        best.offer(e, training.losses[latest + e], &prev[e * p..(e + 1) * p]);
                    }
                }
                hooks.diverged.clear();
                hooks.diverged.extend_from_slice(training.state.diverged());
                match hooks.after_step(training, &mut frozen, log_joint, step)? {
                    AfterStep::Continue if choose_after_first && step == first => {
                        let apart = steps_apart_pay(&*log_joint, members, &data, step_rows);
                        after_first.set(Some(apart));
                        Ok(ControlFlow::Break(()))
                    }
                    AfterStep::Continue => Ok(ControlFlow::Continue(())),
                    AfterStep::Stop => Ok(ControlFlow::Break(())),
                    AfterStep::Interrupted => Err(RunError::Interrupted { step: step + 1 }),
                }
            };
        if !choose_after_first || first >= num_steps {
            feed_batches(&mut batches, data, first..num_steps, ahead, take_step)?;
            false
        } else {
            // One step together (a batch drawn for it alone), then the rest in the order chosen.
            feed_batches(&mut batches, data, first..first + 1, ahead, &mut take_step)?;
            match after_first.get() {
                Some(true) => true,
                None => false,
                Some(false) => {
                    feed_batches(&mut batches, data, first + 1..num_steps, ahead, take_step)?;
                    false
                }
            }
        }
    };
    if go_apart {
        train_apart(
            objective,
            training,
            &mut batches,
            data,
            &mut hooks,
            &mut frozen,
        )?;
    }
    Ok(training.result())
}

/// Steps a run takes apart at most ([`train_apart`]): the progress hook hears of a run's steps
/// when the run ends.
const RUN_APART_STEPS: usize = 128;

/// The loop with members stepped apart ([`ensemble_steps_apart`]) for runs of steps that end
/// where a hook is due (a held-out scoring, a checkpoint, a callback) or after
/// [`RUN_APART_STEPS`]; after each run its steps are told to the hooks in order, as the
/// lockstep loop would have told them. Same bits as the lockstep loop: members are independent,
/// and nothing between two hook steps reads more than one member. A run inside which the lockstep
/// loop would stop — the last unfrozen member diverging with validation on, or the progress hook
/// asking to stop — is taken again from its start up to that step. If a run fails, `training` is
/// put back where the run started.
fn train_apart<T, L, O>(
    objective: Objective<'_, L, O>,
    training: &mut Training<T, O::State>,
    batches: &mut Batches,
    data: Batch<'_, T>,
    hooks: &mut Hooks<'_, T>,
    frozen: &mut Frozen<T, O::State>,
) -> Result<(), RunError<T>>
where
    T: Element,
    L: LogJoint<T>,
    O: GradientTransformation<T>,
{
    let Objective {
        log_joint,
        optimizer,
        prior_weight,
        first_member,
    } = objective;
    let members = hooks.members;
    let mut record = ApartRecord::default();
    let mut start = training.step.min(hooks.num_steps);
    while start < hooks.num_steps {
        let end = hooks.next_due(start).min(start + RUN_APART_STEPS);
        let mut streams = Vec::new();
        let has_streams = log_joint.stream_positions(&mut streams);
        let before = RunStart {
            params: training.state.params.clone(),
            opt: training.state.opt_blocks().clone(),
            batches: batches.clone(),
            held: training.frozen.clone(),
            streams: has_streams.then_some(streams),
        };
        // Takes the run's first `steps` steps from its start (again, after `before.restore`).
        let take = |log_joint: &mut L,
                    training: &mut Training<T, O::State>,
                    batches: &mut Batches,
                    steps: usize,
                    record: &mut ApartRecord<T>|
         -> Result<(), RunError<T>> {
            let run = StepsApart {
                data,
                steps,
                held: &before.held,
                first_member,
            };
            ensemble_steps_apart(
                &mut training.state,
                batches,
                log_joint,
                optimizer,
                prior_weight,
                run,
                record,
            )
            .map_err(|error| {
                before.restore(training, batches, log_joint);
                error.into()
            })
        };
        take(log_joint, training, batches, end - start, &mut record)?;
        if let Some(t) = hooks.stop_inside(&before.held, &record, end - start) {
            // The lockstep loop stops after step `t`: the run again, up to there.
            before.restore(training, batches, log_joint);
            take(log_joint, training, batches, t + 1, &mut record)?;
        }
        let steps = record.losses.len() / members.max(1);
        for (t, losses) in record.losses.chunks_exact(members).enumerate() {
            let step = start + t;
            training.losses.extend_from_slice(losses);
            training.step = step + 1;
            hooks.diverged.clear();
            hooks.diverged.extend(
                record
                    .diverged
                    .iter()
                    .filter(|&&(at, _)| at == t)
                    .map(|&(_, e)| e),
            );
            match hooks.after_step(training, frozen, log_joint, step)? {
                AfterStep::Continue => {}
                AfterStep::Stop => return Ok(()),
                AfterStep::Interrupted => {
                    if t + 1 < steps {
                        // Asked to stop inside the run: the run again up to this step (the
                        // hooks have heard of it already), so the training ends here.
                        before.restore(training, batches, log_joint);
                        take(
                            log_joint,
                            training,
                            batches,
                            t + 1,
                            &mut ApartRecord::default(),
                        )?;
                    }
                    return Err(RunError::Interrupted { step: step + 1 });
                }
            }
        }
        start += steps;
    }
    Ok(())
}

/// Where a run apart started: what [`train_apart`] puts back to take it again (or after an
/// error).
struct RunStart<T, S> {
    params: Parameters<T>,
    opt: OptimizerBlocks<S>,
    batches: Batches,
    /// The members frozen at the start.
    held: Vec<bool>,
    /// The log-joint's random-stream positions at the start, if it draws noise.
    streams: Option<Vec<u64>>,
}

impl<T: Element, S: MemberState> RunStart<T, S> {
    /// Puts `training`'s parameters and optimizer state, `batches` and the log-joint's random
    /// streams back to the run's start.
    fn restore(
        &self,
        training: &mut Training<T, S>,
        batches: &mut Batches,
        log_joint: &mut impl LogJoint<T>,
    ) {
        if let Some(streams) = &self.streams {
            log_joint.seek_streams(streams);
        }
        training
            .state
            .params
            .values_mut()
            .copy_from_slice(self.params.values());
        for e in 0..training.members() {
            training.state.restore_member_opt_state(&self.opt, e);
        }
        batches.clone_from(&self.batches);
    }
}

/// What the loop does after a step.
enum AfterStep {
    Continue,
    Stop,
    /// The user asked to stop.
    Interrupted,
}

/// The hooks of a run ([`RunOptions`]) and what they keep between steps.
struct Hooks<'c, T> {
    callback: Option<(usize, Callback<'c, T>)>,
    validation: Option<Validation<'c, T>>,
    checkpoint: Option<Checkpointing<'c, T>>,
    progress: Option<Box<dyn ProgressHook + 'c>>,
    peers: Option<&'c dyn Communicator>,
    on_divergence: OnDivergence,
    members: usize,
    num_steps: usize,
    /// Training rows.
    rows: usize,
    scores: Vec<f64>,
    streams: Vec<u64>,
    /// The members that diverged at the step being told.
    diverged: Vec<usize>,
}

impl<T: Element> Hooks<'_, T> {
    /// The first step from `start` on after which a hook is due (a held-out scoring, a
    /// checkpoint, a callback), as a step count: the run's end at the latest.
    fn next_due(&self, start: usize) -> usize {
        let after = |every: usize| (start / every + 1) * every;
        let mut due = self.num_steps;
        if let Some(v) = &self.validation {
            due = due.min(after(v.every));
        }
        if let Some(c) = &self.checkpoint {
            due = due.min(after(c.every));
        }
        if let Some((every, _)) = &self.callback
            && *every > 0
        {
            due = due.min(after(*every));
        }
        due
    }

    /// The step of a run of `steps` (from members `held` at its start) before whose end the
    /// lockstep loop would stop: with validation on, the step at which the last unfrozen
    /// member diverged, if the run goes on after it.
    fn stop_inside(&self, held: &[bool], record: &ApartRecord<T>, steps: usize) -> Option<usize> {
        if self.validation.is_none() || record.diverged.is_empty() {
            return None;
        }
        let mut frozen = held.to_vec();
        for &(t, e) in &record.diverged {
            frozen[e] = true;
            if frozen.iter().all(|&f| f) {
                return (t + 1 < steps).then_some(t);
            }
        }
        None
    }

    /// Everything after step `step` (its losses recorded, the members that diverged at it in
    /// `self.diverged`): held-out scoring, divergences, the callback, freezing, the progress
    /// hook, the checkpoint, and whether to stop.
    fn after_step<L: LogJoint<T>, S: MemberState>(
        &mut self,
        training: &mut Training<T, S>,
        frozen: &mut Frozen<T, S>,
        log_joint: &mut L,
        step: usize,
    ) -> Result<AfterStep, RunError<T>> {
        let members = self.members;
        let last = self.num_steps.saturating_sub(1);
        let latest = training.losses.len() - members;
        let mut to_freeze: Vec<usize> = Vec::new();
        if let Some(v) = self.validation.as_mut()
            && ((step + 1).is_multiple_of(v.every) || step == last)
        {
            training.score_held_out(v, log_joint, &mut self.scores, &mut to_freeze)?;
        }
        training.record_divergences(step, &self.diverged, self.on_divergence, &mut to_freeze)?;
        let mut stop = false;
        if let Some((every, callback)) = self.callback.as_mut()
            && *every > 0
            && (step + 1).is_multiple_of(*every)
        {
            let control = callback(&Progress {
                step: step + 1,
                losses: &training.losses[latest..],
                params: &training.state.params,
                frozen: &training.frozen,
            });
            to_freeze.extend(control.freeze.into_iter().filter(|&e| e < members));
            stop = control.stop;
        }
        let froze = !to_freeze.is_empty();
        if froze {
            frozen.freeze(training, &to_freeze);
        }
        let mut step_state = StepState {
            froze,
            all_frozen: training.frozen.iter().all(|&f| f),
            stop,
            interrupted: false,
        };
        if let (Some(hook), Some(_)) = (self.progress.as_mut(), self.peers) {
            // Asked before the step is reported: the answer travels with the step's flags.
            step_state.interrupted = hook.stop_requested();
        }
        let own_losses = &training.losses[latest..];
        let (step_state, mean_loss) = match self.peers {
            None => (
                step_state,
                mean_of_finite(own_losses.iter().map(|v| v.to_f64())),
            ),
            Some(peers) => {
                let (state, every_loss) = step_state.combine(peers, own_losses);
                (state, mean_of_finite(every_loss.into_iter()))
            }
        };
        let stop = step_state.stop
            || (self.validation.is_some() && step_state.froze && step_state.all_frozen);
        let mut interrupted = step_state.interrupted;
        if let Some(hook) = self.progress.as_mut() {
            hook.update(&StepReport {
                step: step + 1,
                until: self.num_steps,
                mean_loss,
                rows: self.rows,
            });
            if self.peers.is_none() {
                interrupted = hook.stop_requested();
            }
        }
        if let Some(c) = self.checkpoint.as_mut()
            && (stop || (step + 1).is_multiple_of(c.every) || step == last)
        {
            let has_streams = log_joint.stream_positions(&mut self.streams);
            if has_streams {
                self.streams.resize(members.max(self.streams.len()), 0);
            }
            training.save_to(&mut *c.sink, has_streams.then_some(&self.streams[..]))?;
        }
        if interrupted {
            return Ok(AfterStep::Interrupted);
        }
        if stop {
            training.stopped_early = step + 1 < self.num_steps;
            return Ok(AfterStep::Stop);
        }
        Ok(AfterStep::Continue)
    }
}

/// Frozen members (from an earlier call, a restored run, a callback, a patience run out or a
/// divergence) do not move: their parameters and optimizer state as they were when frozen are
/// put back after every step.
struct Frozen<T, S> {
    /// Each frozen member's parameters.
    params: Vec<Option<Vec<T>>>,
    /// The optimizer state when the last member froze (a frozen member's part never changes).
    state: Option<OptimizerBlocks<S>>,
}

impl<T: Element, S: MemberState + Clone> Frozen<T, S> {
    /// The members `training` has frozen already.
    fn of(training: &Training<T, S>) -> Self {
        let params = (0..training.members())
            .map(|e| training.frozen[e].then(|| training.state.params.member(e).to_vec()))
            .collect();
        let state = training
            .frozen
            .iter()
            .any(|&f| f)
            .then(|| training.state.opt_blocks().clone());
        Frozen { params, state }
    }

    /// Puts every frozen member's parameters and optimizer state back after a step.
    fn restore(&self, training: &mut Training<T, S>) {
        for e in (0..training.members()).filter(|&e| training.frozen[e]) {
            if let Some(block) = &self.params[e] {
                training.state.params.member_mut(e).copy_from_slice(block);
            }
            if let Some(snapshot) = &self.state {
                training.state.restore_member_opt_state(snapshot, e);
            }
        }
    }

    /// Freezes `members` where they are now.
    fn freeze(&mut self, training: &mut Training<T, S>, members: &[usize]) {
        self.state = Some(training.state.opt_blocks().clone());
        for &e in members {
            training.frozen[e] = true;
            self.params[e] = Some(training.state.params.member(e).to_vec());
        }
    }
}

impl<T: Element, S: MemberState> Training<T, S> {
    /// Scores the held-out data with `validation` and offers each unfrozen member's parameters
    /// as its best; adds to `to_freeze` the members whose patience has run out.
    fn score_held_out(
        &mut self,
        validation: &mut Validation<'_, T>,
        log_joint: &mut dyn LogJoint<T>,
        scores: &mut Vec<f64>,
        to_freeze: &mut Vec<usize>,
    ) -> Result<(), RunError<T>> {
        let Some(best) = self.best.as_mut() else {
            return Ok(());
        };
        validation
            .scorer
            .score(log_joint, &self.state.params, scores)?;
        for e in (0..self.frozen.len()).filter(|&e| !self.frozen[e]) {
            if best.offer(e, T::from_f64(scores[e]), self.state.params.member(e)) {
                self.stale[e] = 0;
            } else {
                self.stale[e] += 1;
                if validation
                    .patience
                    .is_some_and(|patience| self.stale[e] >= patience)
                {
                    to_freeze.push(e);
                }
            }
        }
        Ok(())
    }

    /// Records the members `diverged` at `step` (unfrozen ones: a frozen member's loss is
    /// not its own any more) and adds them to `to_freeze` — or, with [`OnDivergence::Stop`],
    /// ends the run with the first of them and the results so far.
    fn record_divergences(
        &mut self,
        step: usize,
        diverged: &[usize],
        on_divergence: OnDivergence,
        to_freeze: &mut Vec<usize>,
    ) -> Result<(), RunError<T>> {
        for &e in diverged {
            if !self.frozen[e] {
                let divergence = Divergence { member: e, step };
                self.diverged.push(divergence);
                if on_divergence == OnDivergence::Stop {
                    return Err(RunError::Diverged {
                        divergence,
                        partial: Box::new(self.result()),
                    });
                }
                to_freeze.push(e);
            }
        }
        Ok(())
    }
}

/// The mean of the finite `values` (NaN if none is), summed in order.
fn mean_of_finite(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count > 0 {
        sum / count as f64
    } else {
        f64::NAN
    }
}

/// What one step decided, before the other ranks of a member-sharded run are heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StepState {
    /// Members were frozen at this step.
    froze: bool,
    /// Every member is frozen.
    all_frozen: bool,
    /// A callback asked to stop.
    stop: bool,
    /// The user asked to stop.
    interrupted: bool,
}

impl StepState {
    /// Every rank's state and losses combined, the same on every rank: members frozen anywhere,
    /// every member frozen everywhere, a stop or an interruption anywhere; the losses of every
    /// member in the whole ensemble's order (the ranks' blocks follow each other).
    fn combine<T: Element>(self, peers: &dyn Communicator, losses: &[T]) -> (StepState, Vec<f64>) {
        let flags = [self.froze, self.all_frozen, self.stop, self.interrupted]
            .iter()
            .enumerate()
            .fold(0u8, |bits, (i, &on)| bits | (u8::from(on) << i));
        let mut message = vec![flags];
        message.extend(losses.iter().flat_map(|v| v.to_f64().to_le_bytes()));
        let parts = peers.all_gather(&message);
        let mut all = StepState {
            froze: false,
            all_frozen: true,
            stop: false,
            interrupted: false,
        };
        let mut every_loss = Vec::new();
        for part in &parts {
            let (flags, values) = part.split_first().expect("every rank sends its flags");
            all.froze |= flags & 1 != 0;
            all.all_frozen &= flags & 2 != 0;
            all.stop |= flags & 4 != 0;
            all.interrupted |= flags & 8 != 0;
            every_loss.extend(bytes_f64(values));
        }
        (all, every_loss)
    }
}
