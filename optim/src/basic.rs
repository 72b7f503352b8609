//! Stateless or simply-stateful transformations: identity, scaling, learning rates, weight
//! decay, momentum, clipping and trust ratios.

use core::fmt;
use std::sync::Arc;

use flock_kernels::Element;

use crate::adaptive::check_learning_rate;
use crate::base::vec_member_state;
use crate::base::{
    GradientTransformation, MemberState, Params, PerMember, add_scaled_updates, apply_updates,
    assert_len, members_mut,
};
use crate::error::{OptimError, check, check_nonnegative};
use crate::{Layout, Schedule};

/// Leaves `updates` unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

/// The identity transformation.
pub fn identity() -> Identity {
    Identity
}

impl<T: Element> GradientTransformation<T> for Identity {
    type State = ();
    fn init(&self, _: Params<'_, T>) {}
    fn update(&self, _: &mut [T], _: &mut (), _: Params<'_, T>) {}
}

/// An optional transformation: `None` is the identity (e.g. `sgd` without momentum).
impl<T: Element, G: GradientTransformation<T>> GradientTransformation<T> for Option<G> {
    type State = Option<G::State>;
    fn init(&self, params: Params<'_, T>) -> Self::State {
        self.as_ref().map(|g| g.init(params))
    }
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        if let (Some(g), Some(s)) = (self, state) {
            g.update(updates, s, params);
        }
    }
    fn update_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
    ) {
        match (self, state) {
            (Some(g), Some(s)) => g.update_and_apply(updates, s, params, layout),
            _ => apply_updates(params, updates),
        }
    }
    fn member_scale(&self, state: &mut Self::State, layout: &Layout, e: usize) -> Option<f64> {
        match (self, state) {
            (Some(g), Some(s)) => g.member_scale(s, layout, e),
            _ => None,
        }
    }
    fn update_scaled_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
        factor: &mut dyn FnMut(usize) -> f64,
    ) {
        match (self, state) {
            (Some(g), Some(s)) => g.update_scaled_and_apply(updates, s, params, layout, factor),
            _ => add_scaled_updates(updates, params, layout, factor),
        }
    }
}

impl<S: MemberState> MemberState for Option<S> {
    fn tag(&self) -> String {
        match self {
            Some(s) => format!("some({})", s.tag()),
            None => "none".into(),
        }
    }
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        if let (Some(a), Some(b)) = (self, from) {
            a.copy_member(b, member, members);
        }
    }
    fn save(&self, out: &mut Vec<f64>) {
        if let Some(s) = self {
            s.save(out);
        }
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        match self {
            Some(s) => s.load(src),
            None => Ok(()),
        }
    }
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        self.as_mut().map(|s| s.split_off(at, members))
    }
    fn append(&mut self, tail: Self) {
        if let (Some(s), Some(tail)) = (self, tail) {
            s.append(tail);
        }
    }
}

/// Multiplies updates by a (per-member) constant.
#[derive(Clone, Debug)]
pub struct Scale(PerMember<f64>);

/// `updates·step_size` (optax `scale`).
pub fn scale(step_size: impl Into<PerMember<f64>>) -> Scale {
    Scale(step_size.into())
}

impl<T: Element> GradientTransformation<T> for Scale {
    type State = ();
    fn init(&self, params: Params<'_, T>) {
        if let Err(e) = self.0.check_members("step_size", params.layout.members()) {
            panic!("{e}");
        }
    }
    fn update(&self, updates: &mut [T], _: &mut (), params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let first = params.layout.first_member();
        for (e, u) in members_mut(updates, params.layout) {
            flock_kernels::elementwise::scale(T::from_f64(self.0.get(first + e)), u);
        }
    }
}

/// Where a learning rate comes from.
#[derive(Clone, Debug)]
pub enum LearningRate {
    /// A constant, shared or per member.
    Constant(PerMember<f64>),
    /// A function of the step count (each member counts its own steps).
    Schedule(Schedule),
    /// A value held in the optimizer state, which the training loop may change between steps
    /// (optax's `inject_hyperparams`); starts at the given value.
    Injected(PerMember<f64>),
}

impl From<f64> for LearningRate {
    fn from(v: f64) -> Self {
        LearningRate::Constant(PerMember::Shared(v))
    }
}

impl From<Schedule> for LearningRate {
    fn from(s: Schedule) -> Self {
        LearningRate::Schedule(s)
    }
}

impl From<Vec<f64>> for LearningRate {
    fn from(v: Vec<f64>) -> Self {
        LearningRate::Constant(PerMember::Each(v))
    }
}

impl LearningRate {
    pub(crate) fn validate(&self) -> Result<(), OptimError> {
        match self {
            LearningRate::Constant(v) | LearningRate::Injected(v) => {
                v.values().into_iter().try_for_each(check_learning_rate)
            }
            LearningRate::Schedule(_) => Ok(()),
        }
    }
}

/// State of [`ScaleByLearningRate`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByLearningRateState {
    /// Steps taken, per member (the schedule's argument).
    pub count: Vec<u64>,
    /// The injected learning rate per member (empty unless [`LearningRate::Injected`]).
    pub injected: Vec<f64>,
}

impl ScaleByLearningRateState {
    /// Sets the injected learning rate of every member (from the training loop).
    pub fn set_learning_rate(&mut self, value: f64) {
        self.injected.iter_mut().for_each(|v| *v = value);
    }
    /// Sets member `e`'s injected learning rate.
    pub fn set_member_learning_rate(&mut self, e: usize, value: f64) {
        self.injected[e] = value;
    }
}

vec_member_state!(ScaleByLearningRateState "scale_by_learning_rate" {
    counts: [count],
    values: [injected]
});

/// Multiplies updates by `−learning_rate` (the only place the sign flips).
#[derive(Clone, Debug)]
pub struct ScaleByLearningRate {
    lr: LearningRate,
    flip_sign: bool,
}

/// `updates·(−lr)` with `lr` constant, scheduled or injected (optax `scale_by_learning_rate`).
pub fn scale_by_learning_rate(
    learning_rate: impl Into<LearningRate>,
) -> Result<ScaleByLearningRate, OptimError> {
    let lr = learning_rate.into();
    lr.validate()?;
    Ok(ScaleByLearningRate {
        lr,
        flip_sign: true,
    })
}

impl ScaleByLearningRate {
    /// Multiplies by `+lr` instead of `−lr` (optax's `flip_sign=False`), for a learning rate
    /// that carries its own sign or an update meant for ascent.
    pub fn without_sign_flip(mut self) -> Self {
        self.flip_sign = false;
        self
    }
}

impl<T: Element> GradientTransformation<T> for ScaleByLearningRate {
    type State = ScaleByLearningRateState;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        let (e, first) = (params.layout.members(), params.layout.first_member());
        let injected = match &self.lr {
            LearningRate::Injected(v) => (0..e).map(|m| v.get(first + m)).collect(),
            _ => Vec::new(),
        };
        ScaleByLearningRateState {
            count: vec![0; e],
            injected,
        }
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        for (e, u) in members_mut(updates, params.layout) {
            let factor = self.next_factor(state, params.layout.first_member(), e);
            flock_kernels::elementwise::scale(T::from_f64(factor), u);
        }
    }
    /// `params += (−lr)·updates` in one pass (the product rounded before the sum, as in
    /// `update` then `apply_updates`).
    fn update_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
    ) {
        let first = layout.first_member();
        add_scaled_updates(updates, params, layout, &mut |e| {
            self.next_factor(state, first, e)
        });
    }
    fn member_scale(&self, state: &mut Self::State, layout: &Layout, e: usize) -> Option<f64> {
        Some(self.next_factor(state, layout.first_member(), e))
    }
}

impl ScaleByLearningRate {
    /// Member `e`'s factor `∓lr` for this step (of a block whose first member is `first`), and
    /// its step counted.
    fn next_factor(&self, state: &mut ScaleByLearningRateState, first: usize, e: usize) -> f64 {
        let sign = if self.flip_sign { -1.0 } else { 1.0 };
        let lr = match &self.lr {
            LearningRate::Constant(v) => v.get(first + e),
            LearningRate::Schedule(s) => {
                s.value_in(state.count[e], crate::schedule::Precision::OptaxJit)
            }
            LearningRate::Injected(_) => state.injected[e],
        };
        state.count[e] = state.count[e].saturating_add(1);
        sign * lr
    }
}

/// Which named leaves a transformation applies to (e.g. weights but not biases).
#[derive(Clone)]
pub struct LeafMask(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl fmt::Debug for LeafMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeafMask(..)")
    }
}

impl LeafMask {
    /// Leaves whose name satisfies `select`.
    pub fn from_fn(select: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        LeafMask(Arc::new(select))
    }
    /// Exactly the named leaves.
    pub fn only<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        LeafMask::from_fn(move |n| names.iter().any(|m| m == n))
    }
    /// Whether `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        (self.0)(name)
    }
    /// `(offset, len)` inside one member of each selected leaf.
    pub fn ranges(&self, layout: &Layout) -> Vec<(usize, usize)> {
        layout
            .leaves()
            .iter()
            .filter(|l| self.selects(&l.name))
            .map(|l| (l.offset, l.len))
            .collect()
    }
}

/// `updates + weight_decay·params` (on the masked leaves only, if a mask is given).
#[derive(Clone, Debug)]
pub struct AddDecayedWeights {
    weight_decay: PerMember<f64>,
    mask: Option<LeafMask>,
}

/// Decoupled weight decay (optax `add_decayed_weights`).
pub fn add_decayed_weights(
    weight_decay: impl Into<PerMember<f64>>,
    mask: Option<LeafMask>,
) -> Result<AddDecayedWeights, OptimError> {
    let weight_decay = weight_decay.into();
    weight_decay
        .values()
        .into_iter()
        .try_for_each(|v| check_nonnegative("weight_decay", v))?;
    Ok(AddDecayedWeights { weight_decay, mask })
}

impl<T: Element> GradientTransformation<T> for AddDecayedWeights {
    type State = ();
    fn init(&self, _: Params<'_, T>) {}
    fn update(&self, updates: &mut [T], _: &mut (), params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let first = params.layout.first_member();
        for (e, u) in members_mut(updates, params.layout) {
            let wd = T::from_f64(self.weight_decay.get(first + e));
            if wd == T::ZERO {
                continue;
            }
            let p = params.member(e);
            // Selected leaves (all without a mask), found without allocating.
            let selected = params
                .layout
                .leaves()
                .iter()
                .filter(|l| self.mask.as_ref().is_none_or(|m| m.selects(&l.name)));
            for leaf in selected {
                let r = leaf.offset..leaf.offset + leaf.len;
                for (g, &w) in u[r.clone()].iter_mut().zip(&p[r]) {
                    *g += wd * w;
                }
            }
        }
    }
}

/// Momentum: `t ← g + decay·t`; the update is `t` (or `g + decay·t` with Nesterov).
#[derive(Clone, Debug)]
pub struct Trace {
    decay: f64,
    nesterov: bool,
}

/// Heavy-ball or Nesterov momentum (optax `trace`).
pub fn trace(decay: f64, nesterov: bool) -> Result<Trace, OptimError> {
    check_nonnegative("decay", decay)?;
    Ok(Trace { decay, nesterov })
}

impl<T: Element> GradientTransformation<T> for Trace {
    /// The trace, `E·P`.
    type State = Vec<T>;
    fn init(&self, params: Params<'_, T>) -> Self::State {
        vec![T::ZERO; params.values.len()]
    }
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let d = T::from_f64(self.decay);
        for (g, t) in updates.iter_mut().zip(state.iter_mut()) {
            *t = *g + d * *t;
            *g = if self.nesterov { *g + d * *t } else { *t };
        }
    }
}

/// Clips every update to `[−max_delta, max_delta]`.
#[derive(Clone, Debug)]
pub struct Clip(f64);

/// Elementwise clipping (optax `clip`).
pub fn clip(max_delta: f64) -> Result<Clip, OptimError> {
    check_nonnegative("max_delta", max_delta)?;
    Ok(Clip(max_delta))
}

impl<T: Element> GradientTransformation<T> for Clip {
    type State = ();
    fn init(&self, _: Params<'_, T>) {}
    fn update(&self, updates: &mut [T], _: &mut (), params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let (lo, hi) = (T::from_f64(-self.0), T::from_f64(self.0));
        for g in updates.iter_mut() {
            if *g < lo {
                *g = lo;
            } else if *g > hi {
                *g = hi;
            }
        }
    }
}

/// Per member: rescales all updates so their global norm is at most `max_norm`.
#[derive(Clone, Debug)]
pub struct ClipByGlobalNorm(f64);

/// Global-norm clipping, per member (optax `clip_by_global_norm`).
pub fn clip_by_global_norm(max_norm: f64) -> Result<ClipByGlobalNorm, OptimError> {
    check("max_norm", max_norm, max_norm > 0.0, "a positive norm")?;
    Ok(ClipByGlobalNorm(max_norm))
}

/// `√(Σ_leaves Σ x²)` of one member (optax `global_norm`).
pub fn global_norm<T: Element>(member: &[T], layout: &Layout) -> f64 {
    let mut total = 0.0;
    for leaf in layout.leaves() {
        total += member[leaf.offset..leaf.offset + leaf.len]
            .iter()
            .map(|v| v.to_f64() * v.to_f64())
            .sum::<f64>();
    }
    total.sqrt()
}

impl<T: Element> GradientTransformation<T> for ClipByGlobalNorm {
    type State = ();
    fn init(&self, _: Params<'_, T>) {}
    fn update(&self, updates: &mut [T], _: &mut (), params: Params<'_, T>) {
        assert_len(updates, params.layout);
        for (_, u) in members_mut(updates, params.layout) {
            let norm = global_norm(u, params.layout);
            // optax: keep when norm < max_norm (NaN norms fall through to the rescale).
            if norm.partial_cmp(&self.0) != Some(core::cmp::Ordering::Less) {
                let (n, m) = (T::from_f64(norm), T::from_f64(self.0));
                u.iter_mut().for_each(|g| *g = (*g / n) * m);
            }
        }
    }
}

/// LAMB/LARS trust ratio per leaf and member: `updates·‖param‖/‖update‖`.
#[derive(Clone, Debug)]
pub struct ScaleByTrustRatio {
    min_norm: f64,
    trust_coefficient: f64,
    eps: f64,
}

/// Trust-ratio scaling (optax `scale_by_trust_ratio`; defaults `0, 1, 0`).
pub fn scale_by_trust_ratio(
    min_norm: f64,
    trust_coefficient: f64,
    eps: f64,
) -> Result<ScaleByTrustRatio, OptimError> {
    check_nonnegative("min_norm", min_norm)?;
    check_nonnegative("eps", eps)?;
    Ok(ScaleByTrustRatio {
        min_norm,
        trust_coefficient,
        eps,
    })
}

impl<T: Element> GradientTransformation<T> for ScaleByTrustRatio {
    type State = ();
    fn init(&self, _: Params<'_, T>) {}
    fn update(&self, updates: &mut [T], _: &mut (), params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let safe_norm = |x: &[T]| {
            let n = x
                .iter()
                .map(|v| v.to_f64() * v.to_f64())
                .sum::<f64>()
                .sqrt();
            if n <= self.min_norm { self.min_norm } else { n }
        };
        for (e, u) in members_mut(updates, params.layout) {
            let p = params.member(e);
            for leaf in params.layout.leaves() {
                let r = leaf.offset..leaf.offset + leaf.len;
                let (pn, un) = (safe_norm(&p[r.clone()]), safe_norm(&u[r.clone()]));
                let ratio = if pn == 0.0 || un == 0.0 {
                    1.0
                } else {
                    self.trust_coefficient * pn / (un + self.eps)
                };
                let ratio = T::from_f64(ratio);
                u[r].iter_mut().for_each(|g| *g *= ratio);
            }
        }
    }
}
