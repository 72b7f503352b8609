//! `ensemble_steps_apart`: a run of steps for every member, each member taking its steps on its
//! own — member after member, on whichever thread is free — instead of every member stepping
//! together at every step ([`ensemble_step`](crate::ensemble_step)).
//!
//! Members are independent, so the bits are those of stepping them together. What changes is
//! what a core holds: stepped together, every step sweeps every member's parameters, gradient
//! and optimizer state (3.8 MB a member for the Fashion-MNIST MLP in f32 with Adam, 19 MB for
//! five) through a last-level cache both cores share; stepped apart, each core sweeps one
//! member's at a time.

use std::sync::Mutex;

use flock_autograd::{Batch, LogJoint, LogJointOutput, Weights};
use flock_kernels::Element;
use flock_kernels::elementwise::all_finite;
use flock_optim::{GradientTransformation, Layout, MemberState};

use crate::batch::MemberBatches;
use crate::loss::{check_batch, check_weights, member_loss};
use crate::{Batches, EnsembleError, EnsembleState, default_members_per_call};

/// Steps a member takes before the thread that holds it looks for the member that is furthest
/// behind (its own, if none is): small enough that the threads end a run within a few steps of
/// each other whatever the number of members, large enough that a member's state stays in a
/// core's cache for many steps in a row.
const PIECE_STEPS: usize = 8;

/// The bytes of a member's parameters, gradient and two optimizer moments (`4·P` values) from
/// which [`steps_apart_pay`] says yes whatever the blocks: 1 MiB, a Zen 3 or Zen 4 core's L2
/// cache or more.
const MEMBER_STATE_BYTES: usize = 1 << 20;

/// Whether [`ensemble_steps_apart`] is expected to beat [`ensemble_step`](crate::ensemble_step)
/// for `members` members of `log_joint` on batches of `rows` examples like `batch`: the
/// log-joint evaluates on two threads or more, and
///
/// - a member's parameters, gradient and two optimizer moments take 1 MiB or more
///   (`4·P·size_of::<T>()`, `P ≥ 65,536` in f32) — each core then holds one member's state
///   instead of sweeping every member's through the shared cache every step; or
/// - every step takes the whole of `batch` (`rows` is its rows) and, stepped together, each call
///   of the log-joint would take one member anyway
///   ([`default_members_per_call`](crate::default_members_per_call) of the storage the
///   log-joint measured on its last evaluation, scaled to `rows`; never before its first) — then
///   stepping apart loses no call's shared cost, and its pieces of eight steps, taken
///   by whichever thread is free, follow cores that run unevenly from one moment to the next,
///   where together every step waits for the slower block; or
/// - the blocks of members stepped together ([`LogJoint::member_blocks`]) leave a thread with a
///   fifth more than its share of the members (five members as blocks of 3 and 2, or as one
///   block where small members are not split at all).
///
/// Otherwise stepping together wins: each call of the log-joint then takes several members,
/// sharing its fixed cost.
///
/// Measured on the 2-core Zen 3 (AVX2) development machine, `flock fit --step-order`, the same
/// model bytes: Fashion-MNIST's 784 → 200 → 200 → 200 → 10 MLP (`P` = 239,410, f32), five
/// members, 1.22× faster apart (two members: 1.08×); 10,000 Fashion-MNIST images, five members
/// of 784 → 64 → 64 → 10 (`P` = 55,050): 1.21×; the UCI protein data, one hidden layer of 50
/// (`P` = 551, f64): five members (one block) 1.5×, seven 1.6×, but 16 members (blocks of 8 and
/// 8) 1.05× and 17 (9 and 8) 1.1× *slower* apart, and ten members of 32 units (5 and 5) 1.2×
/// slower. On a 2-core Intel Xeon (model 207, x86-64-v3 build), training runs of 32 and 64
/// steps on two threads, together and apart in turns (`workloads` bench): the wide workload (16
/// members of 1 → 128 → 128 → 1 on 80 rows, one member a call in f64) 2,178–4,275 µs a step
/// together and 2,196–2,921 µs apart, apart faster in 13 pairs of 18 (median time ratio 0.935;
/// p = 0.096 by a sign test: the direction of a gain, not a call) — the slowest together steps
/// were the host's uneven minutes, which the pieces absorbed; the seed's (seven or fifteen
/// members a call) either way. With mini-batches the one-member calls alone do not decide: the
/// scale workload (64 members of 1 → 64 → 64 → 1, batches of 256 of 4,096 rows, one member a
/// call) in runs of 10 steps, `cargo xtask ab` of the two rules, 8 pairs: apart 1.14× (f32) and
/// 1.12× (f64) the time together on two threads (medians; within the noise, 5 and 6 pairs of 8
/// slower).
///
/// ```
/// use flock_autograd::{Batch, Graph, ParamLayout, TapeLogJoint};
/// use flock_ensemble::{ParallelLogJoint, steps_apart_pay};
/// let mut layout = ParamLayout::new();
/// let w = layout.add("w", [100])?;
/// let make = || TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f32>, _x, _y| {
///     let w = g.param(w)?;
///     let s = g.sum_squares(w);
///     Ok((s, s))
/// });
/// let batch = Batch::new(&[0.0f32], &[0.0], 1)?;
/// let two = ParallelLogJoint::new(vec![make(), make()]);
/// if two.parts().len() == 2 {
///     assert!(steps_apart_pay(&two, 5, &batch, 1)); // small members: one block of 5
///     assert!(!steps_apart_pay(&two, 16, &batch, 1)); // blocks of 8 and 8
/// }
/// assert!(!steps_apart_pay(&make(), 5, &batch, 1)); // one thread
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
pub fn steps_apart_pay<T: Element>(
    log_joint: &dyn LogJoint<T>,
    members: usize,
    batch: &Batch<'_, T>,
    rows: usize,
) -> bool {
    let threads = log_joint.threads();
    if threads < 2 || members < 2 {
        return false;
    }
    let p = log_joint.layout().member_size();
    if 4 * p * core::mem::size_of::<T>() >= MEMBER_STATE_BYTES {
        return true;
    }
    if rows >= batch.rows
        && let Some(workspace) = log_joint.workspace_per_member(rows)
        && default_members_per_call::<T>(p, Some(workspace)) == 1
    {
        return true;
    }
    let mut blocks = Vec::new();
    log_joint.member_blocks(members, batch, &mut blocks);
    let busiest = blocks.iter().map(|b| b.len()).max().unwrap_or(members);
    // The busiest thread's members against its share, members / threads: apart at 1.2 or more.
    5 * busiest * threads >= 6 * members
}

/// A run of [`ensemble_steps_apart`]: how many steps, on what, and which members are held.
#[derive(Clone, Copy, Debug)]
pub struct StepsApart<'a, T> {
    /// The whole data set the batches are drawn from (`N` rows).
    pub data: Batch<'a, T>,
    /// Steps every member takes.
    pub steps: usize,
    /// Members held where they are (`[E]`, e.g. frozen by the training loop): evaluated on
    /// their batches, their losses recorded, their parameters and optimizer state not moved.
    pub held: &'a [bool],
    /// The whole ensemble's index of member 0 (a member-sharded run's block), handed to the
    /// log-joint with [`LogJoint::set_first_member`].
    pub first_member: usize,
}

/// What [`ensemble_steps_apart`] recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApartRecord<T> {
    /// Each step's losses, step-major: `losses[t·E + e]` is member `e`'s loss at the run's step
    /// `t`, at its parameters before that step's update.
    pub losses: Vec<T>,
    /// `(t, e)` for each member `e` whose loss or gradient was not finite at the run's step `t`
    /// (its first such step; unheld members only), in step order, members in order within a
    /// step.
    pub diverged: Vec<(usize, usize)>,
}

/// `run.steps` steps on `L_e = −scale·ℓ_e − prior_weight·π_e` for every member, each member
/// taking its steps on its own: a thread takes a member for 8 steps — its batches
/// drawn from its own copy of `batches` (shared or its own order), one evaluation of that member
/// alone, the optimizer update — then the member furthest behind. With a log-joint of one thread
/// ([`LogJoint::on_each_thread`] says no) the calling thread takes every piece.
///
/// The bits are those of `run.steps` calls of [`ensemble_step`](crate::ensemble_step) on the
/// same batches with the training loop's default handling of divergence: a member whose loss or
/// gradient is not finite is left as it was at that step (reported in
/// [`ApartRecord::diverged`]) and held from then on; a held member is evaluated (its losses
/// recorded) and its update undone, as the loop undoes a frozen member's. `batches` ends where
/// `run.steps` draws would have left it. A log-joint that draws noise for each member
/// ([`LogJoint::stream_positions`]: a VI objective) has each member's stream moved to the thread
/// that takes its piece ([`LogJoint::seek_streams`]), and every copy's streams end where the
/// members' left them.
///
/// ```
/// use flock_autograd::*;
/// use flock_ensemble::*;
/// use flock_optim::{AdamConfig, adam};
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 8, 1, Activation::Tanh))?;
/// let (net, l2, p) = (mlp.clone(), layout.clone(), layout.member_size());
/// let mut log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
///     let f = net.forward(g, x)?;
///     let f = g.squeeze_last(f)?;
///     let ll = g.normal_log_density(y, f, Arg::Const(0.1))?;
///     let theta = g.all_params();
///     Ok((ll, g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.0))?))
/// });
/// let optimizer = adam(1e-2, AdamConfig::default())?;
/// let init = |rng: &mut MemberRng| {
///     let mut block = vec![0.0; p];
///     mlp.init_member(&l2, rng, &mut block).unwrap();
///     block
/// };
/// let x: Vec<f64> = (0..20).map(|i| i as f64 / 10.0 - 1.0).collect();
/// let y: Vec<f64> = x.iter().map(|v| v * v).collect();
/// let data = Batch::new(&x, &y, 20)?;
/// let order = || Batches::new(20, 5, Sampling::WithoutReplacement, 7, 3, DataOrder::PerMember);
///
/// // 30 steps together ...
/// let mut together = ensemble_init(&layout, init, &optimizer, 3, 0)?;
/// let (mut batches, mut xb, mut yb) = (order()?, Vec::new(), Vec::new());
/// for _ in 0..30 {
///     let batch = batches.next(data, &mut xb, &mut yb)?;
///     ensemble_step(&mut together, batch, &mut log_joint, &optimizer, 1.0, batches.scale())?;
/// }
/// // ... are 30 steps apart.
/// let mut apart = ensemble_init(&layout, init, &optimizer, 3, 0)?;
/// let mut record = ApartRecord::default();
/// let run = StepsApart { data, steps: 30, held: &[false; 3], first_member: 0 };
/// ensemble_steps_apart(&mut apart, &mut order()?, &mut log_joint, &optimizer, 1.0, run,
///     &mut record)?;
/// assert_eq!(apart.params, together.params);
/// assert_eq!((record.losses.len(), record.diverged.len()), (90, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`ensemble_step`](crate::ensemble_step) (the first failing step's, lowest member first);
/// [`EnsembleError::InvalidArgument`] when `run.held` is not one flag per member or the layout
/// has no parameters. On error the members may have taken some of the run's steps, each its own
/// number: restore the state (and the log-joint's streams, [`LogJoint::seek_streams`]) from a
/// copy taken before the run to go on.
pub fn ensemble_steps_apart<T, O, L>(
    state: &mut EnsembleState<T, O::State>,
    batches: &mut Batches,
    log_joint: &mut L,
    optimizer: &O,
    prior_weight: f64,
    run: StepsApart<'_, T>,
    record: &mut ApartRecord<T>,
) -> Result<(), EnsembleError>
where
    T: Element,
    O: GradientTransformation<T>,
    L: LogJoint<T>,
{
    let scale = batches.scale();
    check_weights(prior_weight, scale)?;
    let p = log_joint.layout().member_size();
    if p != state.params.layout().member_size() {
        return Err(EnsembleError::LayoutMismatch {
            state: state.params.layout().member_size(),
            log_joint: p,
        });
    }
    let members = state.members();
    if run.held.len() != members {
        return Err(EnsembleError::InvalidArgument {
            name: "held",
            value: run.held.len() as f64,
            expected: "one flag per member",
        });
    }
    if p == 0 {
        return Err(EnsembleError::InvalidArgument {
            name: "parameters per member",
            value: 0.0,
            expected: "at least one parameter to step members apart",
        });
    }
    record.losses.clear();
    record.diverged.clear();
    if run.steps == 0 {
        return Ok(());
    }
    let singles: Vec<_> = (0..members).map(|e| e..e + 1).collect();
    state.opt.split_as(&singles);
    let EnsembleState {
        params, opt, work, ..
    } = state;
    work.grad.resize(members * p, T::ZERO);
    let context = Context {
        data: run.data,
        weights: Weights {
            loglik: T::from_f64(-scale),
            logprior: T::from_f64(-prior_weight),
        },
        prior_weight,
        optimizer,
        first_member: run.first_member,
    };
    // A log-joint that draws noise (a VI objective): each member's stream goes with it to
    // whichever thread takes its pieces.
    let mut positions = Vec::new();
    let streams = log_joint.stream_positions(&mut positions);
    let stream_of =
        |e: usize| streams.then(|| positions.get(run.first_member + e).copied().unwrap_or(0));
    let jobs: Vec<Mutex<MemberRun<'_, T, O::State>>> = params
        .values_mut()
        .chunks_mut(p)
        .zip(work.grad.chunks_mut(p))
        .zip(opt.blocks.iter_mut())
        .enumerate()
        .map(|(e, ((params, grad), block))| {
            Mutex::new(MemberRun {
                member: e,
                params,
                grad,
                opt: block.state.get_mut().unwrap_or_else(|p| p.into_inner()),
                layout: &block.layout,
                batches: batches.member_batches(e),
                x: Vec::new(),
                y: Vec::new(),
                losses: Vec::with_capacity(run.steps),
                held: run.held[e],
                kept: None,
                diverged_at: None,
                next: 0,
                stream: stream_of(e),
                error: None,
            })
        })
        .collect();
    let schedule = Mutex::new(Schedule {
        left: vec![run.steps.div_ceil(PIECE_STEPS); members],
        busy: vec![false; members],
        failed: false,
    });
    let work = |part: &mut dyn LogJoint<T>| {
        let mut current = None;
        loop {
            // The schedule's lock is let go before the steps (a `while let` would hold it).
            let next = lock(&schedule).next(current);
            let Some(e) = next else { break };
            current = Some(e);
            let mut job = lock(&jobs[e]);
            let end = (job.next + PIECE_STEPS).min(run.steps);
            if !job.take_steps(part, end, &context) {
                lock(&schedule).failed = true;
            }
        }
    };
    if !log_joint.on_each_thread(&work) {
        work(log_joint);
    }
    let mut jobs: Vec<_> = jobs
        .into_iter()
        .map(|j| j.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    if let Some((_, _, error)) = jobs
        .iter_mut()
        .filter_map(|j| j.error.take().map(|(t, err)| (t, j.member, err)))
        .min_by_key(|&(t, e, _)| (t, e))
    {
        return Err(error);
    }
    record.losses.resize(run.steps * members, T::ZERO);
    for job in &jobs {
        for (t, &loss) in job.losses.iter().enumerate() {
            record.losses[t * members + job.member] = loss;
        }
    }
    record.diverged.extend(
        jobs.iter()
            .filter_map(|j| j.diverged_at.map(|t| (t, j.member))),
    );
    record.diverged.sort_unstable();
    if streams {
        // Every copy of the log-joint (each thread's part) to the members' positions, so that
        // whichever part evaluates a member next — together or apart — goes on from there.
        positions.resize(positions.len().max(run.first_member + members), 0);
        for job in &jobs {
            positions[run.first_member + job.member] = job.stream.unwrap_or(0);
        }
        log_joint.seek_streams(&positions);
    }
    let ends = jobs.into_iter().map(|j| j.batches).collect();
    batches.set_member_batches(ends);
    Ok(())
}

fn lock<S>(m: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every member's steps share.
struct Context<'a, T, O> {
    data: Batch<'a, T>,
    weights: Weights<T>,
    prior_weight: f64,
    optimizer: &'a O,
    first_member: usize,
}

/// Which member a free thread takes next: the one with the most pieces left among those no
/// thread holds (the thread's own on a tie, then the lowest).
struct Schedule {
    /// Pieces each member has left.
    left: Vec<usize>,
    /// Members a thread holds.
    busy: Vec<bool>,
    /// A member's step failed: no more pieces are handed out.
    failed: bool,
}

impl Schedule {
    /// Releases `current` (the member the asking thread held, if any) and hands out the next
    /// piece; `None` when none is left that no other thread holds.
    fn next(&mut self, current: Option<usize>) -> Option<usize> {
        if let Some(c) = current {
            self.busy[c] = false;
        }
        if self.failed {
            return None;
        }
        let free = |e: &usize| !self.busy[*e] && self.left[*e] > 0;
        let most = (0..self.left.len())
            .filter(free)
            .map(|e| self.left[e])
            .max()?;
        let e = current
            .filter(|c| free(c) && self.left[*c] == most)
            .or_else(|| (0..self.left.len()).find(|e| free(e) && self.left[*e] == most))?;
        self.busy[e] = true;
        self.left[e] -= 1;
        Some(e)
    }
}

/// One member's part of a run: its parameters, gradient and optimizer state, its batches, and
/// what it recorded.
struct MemberRun<'a, T, S> {
    member: usize,
    params: &'a mut [T],
    grad: &'a mut [T],
    opt: &'a mut S,
    layout: &'a Layout,
    batches: MemberBatches,
    x: Vec<T>,
    y: Vec<T>,
    losses: Vec<T>,
    held: bool,
    /// What a held member is put back to after each update: its parameters and optimizer state
    /// at its first held step of the run (its own part of the state does not move after that).
    kept: Option<(Vec<T>, S)>,
    diverged_at: Option<usize>,
    /// The run's next step for this member.
    next: usize,
    /// Draws taken from the member's random stream ([`LogJoint::stream_positions`]; `None`:
    /// the log-joint draws no noise).
    stream: Option<u64>,
    error: Option<(usize, EnsembleError)>,
}

impl<T: Element, S: MemberState> MemberRun<'_, T, S> {
    /// Takes the member's steps up to `end` with `log_joint`; `false` (the error kept) if one
    /// failed.
    fn take_steps<O: GradientTransformation<T, State = S>>(
        &mut self,
        log_joint: &mut dyn LogJoint<T>,
        end: usize,
        context: &Context<'_, T, O>,
    ) -> bool {
        let member = context.first_member + self.member;
        let mut positions = Vec::new();
        if let Some(position) = self.stream {
            // This thread's part may have last drawn for the member several pieces ago (or
            // never): its stream to where the member's last piece left it.
            positions.resize(member + 1, 0);
            positions[member] = position;
            log_joint.seek_streams(&positions);
        }
        let mut taken = true;
        while self.next < end {
            if let Err(error) = self.step(log_joint, context) {
                self.error = Some((self.next, error));
                taken = false;
                break;
            }
            self.next += 1;
        }
        if self.stream.is_some() {
            log_joint.stream_positions(&mut positions);
            self.stream = Some(positions.get(member).copied().unwrap_or(0));
        }
        taken
    }

    /// One step of the member: its batch, its evaluation, its update (undone if it is held or
    /// did not evaluate to finite values).
    fn step<O: GradientTransformation<T, State = S>>(
        &mut self,
        log_joint: &mut dyn LogJoint<T>,
        context: &Context<'_, T, O>,
    ) -> Result<(), EnsembleError> {
        let batch = self.batches.next(context.data, &mut self.x, &mut self.y)?;
        check_batch(&batch)?;
        let (mut loglik, mut logprior) = ([T::ZERO], [T::ZERO]);
        log_joint.set_first_member(context.first_member + self.member);
        log_joint.evaluate(
            1,
            self.params,
            batch,
            context.weights,
            LogJointOutput {
                loglik: &mut loglik,
                logprior: &mut logprior,
                grad: self.grad,
            },
        )?;
        let loss = member_loss(
            context.weights,
            context.prior_weight,
            loglik[0],
            logprior[0],
        );
        let finite = loss.is_finite() && all_finite(self.grad);
        let optimizer = context.optimizer;
        if finite && !self.held {
            optimizer.update_and_apply(self.grad, self.opt, self.params, self.layout);
        } else {
            // As `ensemble_step` and the training loop do for a diverging or frozen member of
            // a block: the update runs (so a value the members share moves on), then the
            // member's own parameters and state are put back.
            if !finite {
                self.grad.fill(T::ZERO);
            }
            let (params, state) = self
                .kept
                .get_or_insert_with(|| (self.params.to_vec(), self.opt.clone()));
            optimizer.update_and_apply(self.grad, self.opt, self.params, self.layout);
            self.params.copy_from_slice(params);
            self.opt.copy_member(state, 0, 1);
            if !finite && !self.held {
                self.diverged_at = Some(self.next);
                self.held = true;
            }
        }
        self.losses.push(loss);
        Ok(())
    }
}
