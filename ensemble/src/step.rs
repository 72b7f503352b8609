//! `ensemble_step`: one optimizer update for every member.

use core::ops::Range;
use std::sync::atomic::Ordering;

use flock_autograd::{Batch, EvaluatedBlock, LogJoint, LogJointOutput, Parameters, Weights};
use flock_kernels::Element;
use flock_kernels::elementwise::all_finite;
use flock_optim::{GradientTransformation, Layout, MemberState};

use crate::loss::{check_batch, check_weights, member_loss};
use crate::state::Workspace;
use crate::{EnsembleError, EnsembleState};

/// One step on `L_e = −scale·ℓ_e − prior_weight·π_e` for every member: evaluate the loss and
/// its gradient at the current parameters, transform the gradient with `optimizer`, apply it.
///
/// Returns the per-member losses **at the parameters before the update** (pyrox's convention),
/// borrowed from the state's workspace. After the first call a step allocates nothing.
///
/// With a log-joint that evaluates blocks of members on several threads
/// ([`ParallelLogJoint`](crate::ParallelLogJoint)), each block's optimizer update runs on the
/// thread that evaluated it ([`LogJoint::evaluate_then`]); the bits are those of one update of
/// the whole ensemble, whatever the blocks.
///
/// **A diverging member** — one whose loss or gradient is NaN or infinite — is left exactly as it
/// was (parameters and optimizer state); its non-finite loss is returned so the caller sees it,
/// and the other members step normally. [`EnsembleState::diverged`] lists the members the last
/// step skipped.
///
/// ```
/// use flock_autograd::*;
/// use flock_ensemble::{ensemble_init, ensemble_step};
/// use flock_optim::{AdamConfig, adam};
///
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 8, 1, Activation::Tanh))?;
/// let init_mlp = mlp.clone();
/// let (l2, p) = (layout.clone(), layout.member_size());
/// let mut log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
///     let f = mlp.forward(g, x)?;
///     let f = g.squeeze_last(f)?;
///     let ll = g.normal_log_density(y, f, Arg::Const(0.1))?;
///     let theta = g.all_params();
///     Ok((ll, g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.0))?))
/// });
/// let optimizer = adam(1e-2, AdamConfig::default())?;
/// let mut state = ensemble_init(&layout, |rng| {
///     let mut block = vec![0.0; p];
///     init_mlp.init_member(&l2, rng, &mut block).unwrap();
///     block
/// }, &optimizer, 4, 0)?;
/// let x: Vec<f64> = (0..20).map(|i| i as f64 / 10.0 - 1.0).collect();
/// let y: Vec<f64> = x.iter().map(|v| v * v).collect();
/// let batch = Batch::new(&x, &y, 20)?;
/// let first = ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?.to_vec();
/// for _ in 0..200 {
///     ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
/// }
/// let last = ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
/// assert!(last.iter().zip(&first).all(|(l, f)| l < f));
/// assert!(state.diverged().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`EnsembleError::InvalidArgument`] for a bad `scale` or `prior_weight`; batch errors
/// ([`EnsembleError::EmptyBatch`], [`EnsembleError::BatchShape`],
/// [`EnsembleError::NonFiniteData`]); [`EnsembleError::LayoutMismatch`]; the log-joint's errors.
/// On error the state is unchanged.
pub fn ensemble_step<'s, T, O, L>(
    state: &'s mut EnsembleState<T, O::State>,
    batch: Batch<'_, T>,
    log_joint: &mut L,
    optimizer: &O,
    prior_weight: f64,
    scale: f64,
) -> Result<&'s [T], EnsembleError>
where
    T: Element,
    O: GradientTransformation<T>,
    L: LogJoint<T>,
{
    check_weights(prior_weight, scale)?;
    check_batch(&batch)?;
    let expected = log_joint.layout().member_size();
    if expected != state.params.layout().member_size() {
        return Err(EnsembleError::LayoutMismatch {
            state: state.params.layout().member_size(),
            log_joint: expected,
        });
    }
    let members = state.members();
    let p = expected;
    let EnsembleState {
        params, opt, work, ..
    } = state;
    work.grad.resize(members * p, T::ZERO);
    for buf in [&mut work.loglik, &mut work.logprior, &mut work.losses] {
        buf.resize(members, T::ZERO);
    }
    log_joint.member_blocks(members, &batch, &mut work.blocks);
    opt.split_as(&work.blocks);
    let weights = Weights {
        loglik: T::from_f64(-scale),
        logprior: T::from_f64(-prior_weight),
    };
    let opt_blocks = &*opt;
    // Each block's update runs on the thread that evaluated it; a block with a member whose
    // loss or gradient is not finite is left to this thread (below).
    let update_block = |block: EvaluatedBlock<'_, T>| {
        let part = opt_blocks
            .blocks
            .get(block.index)
            .filter(|part| part.range == block.members)
            .expect("LogJoint::evaluate_then's blocks differ from its member_blocks");
        let finite = block
            .loglik
            .iter()
            .zip(block.logprior)
            .all(|(&ll, &lp)| member_loss(weights, prior_weight, ll, lp).is_finite())
            && all_finite(block.grad);
        if !finite {
            part.pending.store(true, Ordering::Release);
            return;
        }
        let mut opt_state = part.state.lock().unwrap_or_else(|p| p.into_inner());
        optimizer.update_and_apply(block.grad, &mut opt_state, block.params, &part.layout);
    };
    log_joint.evaluate_then(
        members,
        params.values_mut(),
        batch,
        weights,
        LogJointOutput {
            loglik: &mut work.loglik,
            logprior: &mut work.logprior,
            grad: &mut work.grad,
        },
        &update_block,
    )?;
    for ((l, &ll), &lp) in work.losses.iter_mut().zip(&work.loglik).zip(&work.logprior) {
        *l = member_loss(weights, prior_weight, ll, lp);
    }
    work.diverged.clear();
    for part in &mut opt.blocks {
        if part.pending.swap(false, Ordering::Acquire) {
            let opt_state = part.state.get_mut().unwrap_or_else(|p| p.into_inner());
            step_with_divergence(
                part.range.clone(),
                &part.layout,
                opt_state,
                params,
                work,
                optimizer,
            );
        }
    }
    Ok(&state.work.losses)
}

/// The rare path of [`ensemble_step`] for one block of members `range`, some of which did not
/// evaluate to finite values: the others step, those are left exactly as they were (parameters
/// and optimizer state) and listed in `work.diverged`.
fn step_with_divergence<T: Element, O: GradientTransformation<T>>(
    range: Range<usize>,
    layout: &Layout,
    opt_state: &mut O::State,
    params: &mut Parameters<T>,
    work: &mut Workspace<T>,
    optimizer: &O,
) {
    let p = layout.member_size();
    let first = range.start;
    let diverged_from = work.diverged.len();
    for e in range.clone() {
        let finite = work.losses[e].is_finite() && all_finite(&work.grad[e * p..(e + 1) * p]);
        if !finite {
            work.diverged.push(e);
        }
    }
    let diverged = &work.diverged[diverged_from..];
    work.backup.clear();
    for &e in diverged {
        work.backup.extend_from_slice(params.member(e));
        work.grad[e * p..(e + 1) * p].fill(T::ZERO);
    }
    let snapshot = opt_state.clone();
    let span = first * p..range.end * p;
    optimizer.update_and_apply(
        &mut work.grad[span.clone()],
        opt_state,
        &mut params.values_mut()[span],
        layout,
    );
    for (i, &e) in diverged.iter().enumerate() {
        params
            .member_mut(e)
            .copy_from_slice(&work.backup[i * p..(i + 1) * p]);
        opt_state.copy_member(&snapshot, e - first, range.len());
    }
}

impl<T: Element, S> EnsembleState<T, S> {
    /// The members the last [`ensemble_step`] left unchanged because their loss or gradient was
    /// not finite.
    pub fn diverged(&self) -> &[usize] {
        &self.work.diverged
    }
}
