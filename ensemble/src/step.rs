//! `ensemble_step`: one optimizer update for every member.

use flock_autograd::{Batch, LogJoint};
use flock_kernels::Element;
use flock_optim::{GradientTransformation, MemberState, Params, apply_updates};

use crate::loss::{LossOutput, check_weights};
use crate::{EnsembleError, EnsembleLoss, EnsembleState};

/// One step on `L_e = −scale·ℓ_e − prior_weight·π_e` for every member: evaluate the loss and
/// its gradient at the current parameters, transform the gradient with `optimizer`, apply it.
///
/// Returns the per-member losses **at the parameters before the update** (pyrox's convention),
/// borrowed from the state's workspace. After the first call a step allocates nothing.
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
    let members = state.members();
    let p = state.params.layout().member_size();
    let work = &mut state.work;
    work.grad.resize(members * p, T::ZERO);
    for buf in [&mut work.loglik, &mut work.logprior, &mut work.losses] {
        buf.resize(members, T::ZERO);
    }
    let mut loss = EnsembleLoss {
        log_joint,
        prior_weight,
        scale,
    };
    loss.value_and_grad(
        &state.params,
        batch,
        LossOutput {
            losses: &mut work.losses,
            loglik: &mut work.loglik,
            logprior: &mut work.logprior,
            grad: &mut work.grad,
        },
    )?;
    work.diverged.clear();
    for e in 0..members {
        let finite = work.losses[e].is_finite()
            && work.grad[e * p..(e + 1) * p].iter().all(|g| g.is_finite());
        if !finite {
            work.diverged.push(e);
        }
    }
    // Rare path: keep copies of the diverged members to put back after the update.
    let snapshot = (!work.diverged.is_empty()).then(|| {
        work.backup.clear();
        for &e in &work.diverged {
            work.backup.extend_from_slice(state.params.member(e));
            work.grad[e * p..(e + 1) * p].fill(T::ZERO);
        }
        state.opt_state.clone()
    });
    optimizer.update(
        &mut work.grad,
        &mut state.opt_state,
        Params {
            values: state.params.values(),
            layout: &state.optim_layout,
        },
    );
    apply_updates(state.params.values_mut(), &work.grad);
    if let Some(snapshot) = snapshot {
        for (i, &e) in work.diverged.iter().enumerate() {
            state
                .params
                .member_mut(e)
                .copy_from_slice(&work.backup[i * p..(i + 1) * p]);
            state.opt_state.copy_member(&snapshot, e, members);
        }
    }
    Ok(&state.work.losses)
}

impl<T: Element, S> EnsembleState<T, S> {
    /// The members the last [`ensemble_step`] left unchanged because their loss or gradient was
    /// not finite.
    pub fn diverged(&self) -> &[usize] {
        &self.work.diverged
    }
}
