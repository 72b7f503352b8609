//! `EnsembleState` and `ensemble_init`.

use core::ops::Range;

use flock_autograd::{ParamLayout, Parameters};
use flock_kernels::Element;
use flock_optim::{GradientTransformation, Layout, MemberState, Params};

use crate::{EnsembleError, MemberRng, OptimizerBlocks, member_rng};

/// Buffers reused by every step, so a step allocates nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Workspace<T> {
    pub grad: Vec<T>,
    pub loglik: Vec<T>,
    pub logprior: Vec<T>,
    pub losses: Vec<T>,
    pub diverged: Vec<usize>,
    pub backup: Vec<T>,
    /// The log-joint's blocks of members for the current step.
    pub blocks: Vec<core::ops::Range<usize>>,
}

/// An ensemble's parameters and optimizer state, each with a leading member axis
/// (pyrox's `EnsembleState(params, opt_state)`).
///
/// The optimizer state is kept in the blocks of members the log-joint evaluates apart (one per
/// thread of a [`ParallelLogJoint`](crate::ParallelLogJoint)), so each block's update runs on
/// the thread that computed its gradients; [`EnsembleState::opt_state`] gives it in one piece.
#[derive(Clone, Debug)]
pub struct EnsembleState<T, S> {
    /// `E` members' parameters, member-major.
    pub params: Parameters<T>,
    pub(crate) opt: OptimizerBlocks<S>,
    pub(crate) optim_layout: Layout,
    pub(crate) work: Workspace<T>,
}

impl<T: Element, S: MemberState> EnsembleState<T, S> {
    /// The optimizer's per-member state in one piece (a copy; e.g. to save it).
    pub fn opt_state(&self) -> S {
        self.opt.joined()
    }

    /// The optimizer's per-member state in one piece, to change in place (e.g. to load a saved
    /// one, or set an injected learning rate); the next step splits it again.
    pub fn opt_state_mut(&mut self) -> &mut S {
        self.opt.whole_mut()
    }

    /// The optimizer state as it is held, in blocks of members: a cheap snapshot to restore
    /// members from later with [`EnsembleState::restore_member_opt_state`].
    pub fn opt_blocks(&self) -> &OptimizerBlocks<S> {
        &self.opt
    }

    /// Puts member `e`'s optimizer state back to what it was in `snapshot` (taken from this
    /// state's [`EnsembleState::opt_blocks`]).
    pub fn restore_member_opt_state(&mut self, snapshot: &OptimizerBlocks<S>, e: usize) {
        self.opt.copy_member(snapshot, e);
    }

    /// Builds a state from existing parameters (e.g. loaded from a checkpoint or a fixture).
    ///
    /// ```
    /// use flock_autograd::{ParamLayout, Parameters};
    /// use flock_ensemble::EnsembleState;
    /// use flock_optim::{AdamConfig, adam};
    /// let mut layout = ParamLayout::new();
    /// layout.add("w", [3])?;
    /// let params = Parameters::from_values(layout, 2, vec![0.5; 6])?;
    /// let state = EnsembleState::from_params(params, &adam(1e-3, AdamConfig::default())?)?;
    /// assert_eq!((state.members(), state.optim_layout().member_size()), (2, 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EnsembleError::ZeroMembers`] for an empty ensemble.
    pub fn from_params<O>(params: Parameters<T>, optimizer: &O) -> Result<Self, EnsembleError>
    where
        O: GradientTransformation<T, State = S>,
    {
        if params.members() == 0 {
            return Err(EnsembleError::ZeroMembers);
        }
        let optim_layout = optim_layout(params.layout(), params.members());
        let opt_state = optimizer.init(Params {
            values: params.values(),
            layout: &optim_layout,
        });
        Ok(EnsembleState {
            params,
            opt: OptimizerBlocks::whole(opt_state, optim_layout.clone()),
            optim_layout,
            work: Workspace::default(),
        })
    }

    /// Number of members `E`.
    pub fn members(&self) -> usize {
        self.params.members()
    }

    /// The optimizer's view of the parameter layout.
    pub fn optim_layout(&self) -> &Layout {
        &self.optim_layout
    }
}

/// The optimizer's layout (names and lengths) of an autograd parameter layout.
///
/// ```
/// use flock_autograd::ParamLayout;
/// let mut layout = ParamLayout::new();
/// layout.add("w", [2, 3])?;
/// layout.add("b", [2])?;
/// let optim = flock_ensemble::optim_layout(&layout, 4);
/// assert_eq!((optim.members(), optim.member_size(), optim.leaves()[1].offset), (4, 8, 6));
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
pub fn optim_layout(layout: &ParamLayout, members: usize) -> Layout {
    Layout::new(
        members,
        layout.leaves().iter().map(|l| (l.name.clone(), l.len())),
    )
}

/// `E` independently initialised members and the optimizer's initial state.
///
/// `init_fn(rng)` returns one member's parameter block (`layout.member_size()` values, laid out
/// by `layout`); member `e` is drawn from [`member_rng`]`(seed, e)`, so member `e` is the same
/// whatever `ensemble_size` is and however many threads run.
///
/// ```
/// use flock_autograd::{Activation, Mlp, MlpConfig, ParamLayout};
/// use flock_ensemble::ensemble_init;
/// use flock_optim::{AdamConfig, adam};
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 32, 2, Activation::Tanh))?;
/// let init = |rng: &mut flock_ensemble::MemberRng| {
///     let mut block = vec![0.0f64; layout.member_size()];
///     mlp.init_member(&layout, rng, &mut block).map(|_| block)
/// };
/// let optimizer = adam(5e-3, AdamConfig::default())?;
/// let state16 = ensemble_init(&layout, |rng| init(rng).unwrap(), &optimizer, 16, 0)?;
/// let state8 = ensemble_init(&layout, |rng| init(rng).unwrap(), &optimizer, 8, 0)?;
/// assert_eq!(state16.params.member(7), state8.params.member(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`EnsembleError::ZeroMembers`]; [`EnsembleError::InitShape`] when `init_fn` returns a block
/// of the wrong length; [`EnsembleError::NonFiniteInit`] when it returns NaN or ±∞.
pub fn ensemble_init<T, O, F>(
    layout: &ParamLayout,
    init_fn: F,
    optimizer: &O,
    ensemble_size: usize,
    seed: u64,
) -> Result<EnsembleState<T, O::State>, EnsembleError>
where
    T: Element,
    O: GradientTransformation<T>,
    F: FnMut(&mut MemberRng) -> Vec<T>,
{
    ensemble_init_members(layout, init_fn, optimizer, 0..ensemble_size, seed)
}

/// Members `members` of the ensemble [`ensemble_init`] builds (one process's block of a
/// member-sharded run): member `e` of the block is the whole ensemble's member
/// `members.start + e`, drawn from the same stream `(seed, members.start + e)`.
///
/// ```
/// use flock_autograd::ParamLayout;
/// use flock_ensemble::{ensemble_init, ensemble_init_members};
/// use flock_optim::{AdamConfig, adam};
/// use rand::RngExt;
/// let mut layout = ParamLayout::new();
/// layout.add("w", [3])?;
/// let init = |rng: &mut flock_ensemble::MemberRng| (0..3).map(|_| rng.random::<f64>()).collect();
/// let optimizer = adam(1e-3, AdamConfig::default())?;
/// let all = ensemble_init(&layout, init, &optimizer, 5, 9)?;
/// let block = ensemble_init_members(&layout, init, &optimizer, 2..4, 9)?;
/// assert_eq!(block.params.member(1), all.params.member(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`ensemble_init`] (an empty block is [`EnsembleError::ZeroMembers`]); errors name the
/// member by its index in the whole ensemble.
pub fn ensemble_init_members<T, O, F>(
    layout: &ParamLayout,
    mut init_fn: F,
    optimizer: &O,
    members: Range<usize>,
    seed: u64,
) -> Result<EnsembleState<T, O::State>, EnsembleError>
where
    T: Element,
    O: GradientTransformation<T>,
    F: FnMut(&mut MemberRng) -> Vec<T>,
{
    if members.is_empty() {
        return Err(EnsembleError::ZeroMembers);
    }
    let p = layout.member_size();
    let first = members.start;
    let mut params = Parameters::zeros(layout.clone(), members.len());
    for e in members {
        let mut rng = member_rng(seed, e);
        let block = init_fn(&mut rng);
        if block.len() != p {
            return Err(EnsembleError::InitShape {
                member: e,
                len: block.len(),
                expected: p,
            });
        }
        if let Some(index) = block.iter().position(|v| !v.is_finite()) {
            return Err(EnsembleError::NonFiniteInit { member: e, index });
        }
        params.member_mut(e - first).copy_from_slice(&block);
    }
    EnsembleState::from_params(params, optimizer)
}
