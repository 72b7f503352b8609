//! Wrappers that change when an inner transformation runs: `apply_if_finite` and `MultiSteps`.

use flock_kernels::Element;

use crate::base::{
    GradientTransformation, MemberState, Params, copy_block, load_values, members_mut, save_values,
    split_block,
};
use crate::error::{OptimError, check};

/// State of [`ApplyIfFinite`], per member.
#[derive(Clone, Debug)]
pub struct ApplyIfFiniteState<S> {
    /// The inner state.
    pub inner: S,
    /// Consecutive steps with non-finite gradients.
    pub notfinite_count: Vec<u32>,
    /// Whether the last step's gradients were finite.
    pub last_finite: Vec<bool>,
    /// All steps with non-finite gradients.
    pub total_notfinite: Vec<u64>,
    saved: S,
}

impl<S: MemberState> MemberState for ApplyIfFiniteState<S> {
    fn tag(&self) -> String {
        format!("apply_if_finite({})", self.inner.tag())
    }
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        self.inner.copy_member(&from.inner, member, members);
        copy_block(
            &mut self.notfinite_count,
            &from.notfinite_count,
            member,
            members,
        );
        copy_block(&mut self.last_finite, &from.last_finite, member, members);
        copy_block(
            &mut self.total_notfinite,
            &from.total_notfinite,
            member,
            members,
        );
    }
    fn save(&self, out: &mut Vec<f64>) {
        self.inner.save(out);
        save_values(&self.notfinite_count, out);
        save_values(&self.last_finite, out);
        save_values(&self.total_notfinite, out);
        self.saved.save(out);
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        self.inner.load(src)?;
        load_values(&mut self.notfinite_count, src)?;
        load_values(&mut self.last_finite, src)?;
        load_values(&mut self.total_notfinite, src)?;
        self.saved.load(src)
    }
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        ApplyIfFiniteState {
            inner: self.inner.split_off(at, members),
            notfinite_count: split_block(&mut self.notfinite_count, at, members),
            last_finite: split_block(&mut self.last_finite, at, members),
            total_notfinite: split_block(&mut self.total_notfinite, at, members),
            saved: self.saved.split_off(at, members),
        }
    }
    fn append(&mut self, tail: Self) {
        self.inner.append(tail.inner);
        self.notfinite_count.extend(tail.notfinite_count);
        self.last_finite.extend(tail.last_finite);
        self.total_notfinite.extend(tail.total_notfinite);
        self.saved.append(tail.saved);
    }
}

/// Skips (zero update, state unchanged) a member's step when its gradients are not finite,
/// unless that happened more than `max_consecutive_errors` times in a row.
#[derive(Clone, Debug)]
pub struct ApplyIfFinite<G> {
    inner: G,
    max_consecutive_errors: u32,
}

/// optax `apply_if_finite`, per member.
pub fn apply_if_finite<G>(inner: G, max_consecutive_errors: u32) -> ApplyIfFinite<G> {
    ApplyIfFinite {
        inner,
        max_consecutive_errors,
    }
}

impl<T: Element, G: GradientTransformation<T>> GradientTransformation<T> for ApplyIfFinite<G> {
    type State = ApplyIfFiniteState<G::State>;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        let e = params.layout.members();
        let inner = self.inner.init(params);
        ApplyIfFiniteState {
            saved: inner.clone(),
            inner,
            notfinite_count: vec![0; e],
            last_finite: vec![true; e],
            total_notfinite: vec![0; e],
        }
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        let members = params.layout.members();
        let finite: Vec<bool> = members_mut(updates, params.layout)
            .map(|(_, u)| u.iter().all(|v| v.is_finite()))
            .collect();
        state.saved.clone_from(&state.inner);
        self.inner.update(updates, &mut state.inner, params);
        for (e, u) in members_mut(updates, params.layout) {
            let ok = finite[e];
            state.notfinite_count[e] = if ok {
                0
            } else {
                state.notfinite_count[e].saturating_add(1)
            };
            state.last_finite[e] = ok;
            if !ok {
                state.total_notfinite[e] = state.total_notfinite[e].saturating_add(1);
            }
            if !ok && state.notfinite_count[e] <= self.max_consecutive_errors {
                u.iter_mut().for_each(|v| *v = T::ZERO);
                let saved = &state.saved;
                state.inner.copy_member(saved, e, members);
            }
        }
    }
}

/// State of [`MultiSteps`].
#[derive(Clone, Debug)]
pub struct MultiStepsState<T, S> {
    /// Micro-steps accumulated since the last real step (every member advances together).
    pub mini_step: u64,
    /// Real steps taken, per member.
    pub gradient_step: Vec<u64>,
    /// The inner state.
    pub inner: S,
    /// Running mean of the accumulated gradients, `E·P`.
    pub acc_grads: Vec<T>,
}

impl<T: Element, S: MemberState> MemberState for MultiStepsState<T, S> {
    fn tag(&self) -> String {
        format!("multi_steps({})", self.inner.tag())
    }
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        copy_block(
            &mut self.gradient_step,
            &from.gradient_step,
            member,
            members,
        );
        self.inner.copy_member(&from.inner, member, members);
        self.acc_grads.copy_member(&from.acc_grads, member, members);
    }
    fn save(&self, out: &mut Vec<f64>) {
        out.push(self.mini_step as f64);
        save_values(&self.gradient_step, out);
        self.inner.save(out);
        self.acc_grads.save(out);
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        let mut mini = [0u64];
        crate::base::load_values(&mut mini, src)?;
        self.mini_step = mini[0];
        load_values(&mut self.gradient_step, src)?;
        self.inner.load(src)?;
        self.acc_grads.load(src)
    }
    /// Every block keeps the shared micro-step count.
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        MultiStepsState {
            mini_step: self.mini_step,
            gradient_step: split_block(&mut self.gradient_step, at, members),
            inner: self.inner.split_off(at, members),
            acc_grads: split_block(&mut self.acc_grads, at, members),
        }
    }
    fn append(&mut self, tail: Self) {
        self.gradient_step.extend(tail.gradient_step);
        self.inner.append(tail.inner);
        self.acc_grads.extend(tail.acc_grads);
    }
}

/// Gradient accumulation: averages (or sums) `every_k` gradients, then runs the inner optimizer
/// once; in between the update is zero.
#[derive(Clone, Debug)]
pub struct MultiSteps<G> {
    inner: G,
    every_k: u64,
    f32_accumulator: bool,
    mean: bool,
}

/// optax `MultiSteps(inner, every_k_schedule=k).gradient_transformation()`.
///
/// As in optax, the running mean of the micro-batch gradients is *stored* in float32 (optax's
/// default `accumulator_dtype`) while each step's arithmetic is in the parameters' precision;
/// [`MultiSteps::with_full_precision_accumulator`] keeps it in `T` instead.
pub fn multi_steps<G>(inner: G, every_k: u64) -> Result<MultiSteps<G>, OptimError> {
    check(
        "every_k_schedule",
        every_k as f64,
        every_k >= 1,
        "at least 1 step",
    )?;
    Ok(MultiSteps {
        inner,
        every_k,
        f32_accumulator: true,
        mean: true,
    })
}

impl<G> MultiSteps<G> {
    /// Stores the accumulated gradients in the parameters' precision (optax's
    /// `accumulator_dtype=None` under x64).
    pub fn with_full_precision_accumulator(mut self) -> Self {
        self.f32_accumulator = false;
        self
    }
    /// Passes the sum of the `every_k` gradients to the inner optimizer instead of their mean
    /// (optax's `use_grad_mean=False`).
    pub fn with_gradient_sum(mut self) -> Self {
        self.mean = false;
        self
    }
}

impl<T: Element, G: GradientTransformation<T>> GradientTransformation<T> for MultiSteps<G> {
    type State = MultiStepsState<T, G::State>;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        MultiStepsState {
            mini_step: 0,
            gradient_step: vec![0; params.layout.members()],
            inner: self.inner.init(params),
            acc_grads: vec![T::ZERO; params.values.len()],
        }
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        if self.mean {
            let n = T::from_f64((state.mini_step + 1) as f64);
            for (g, acc) in updates.iter().zip(state.acc_grads.iter_mut()) {
                *acc += (*g - *acc) / n;
            }
        } else {
            for (g, acc) in updates.iter().zip(state.acc_grads.iter_mut()) {
                *acc = *g + *acc;
            }
        }
        if state.mini_step + 1 < self.every_k {
            updates.iter_mut().for_each(|v| *v = T::ZERO);
            state.mini_step += 1;
            if self.f32_accumulator {
                // optax keeps the unrounded mean for this step and stores it as float32.
                for acc in state.acc_grads.iter_mut() {
                    *acc = T::from_f64(acc.to_f64() as f32 as f64);
                }
            }
        } else {
            updates.copy_from_slice(&state.acc_grads);
            self.inner.update(updates, &mut state.inner, params);
            state.acc_grads.iter_mut().for_each(|v| *v = T::ZERO);
            state.mini_step = 0;
            state.gradient_step.iter_mut().for_each(|s| *s += 1);
        }
    }
}
