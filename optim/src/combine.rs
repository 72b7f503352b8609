//! Composition: `chain` (and the `chain!` macro) and `masked`.

use flock_kernels::Element;

use crate::base::{GradientTransformation, MemberState, Params};
use crate::{Layout, LeafMask};

/// `B` applied after `A`. Build longer chains with [`chain!`](crate::chain!).
#[derive(Clone, Debug)]
pub struct Chain<A, B> {
    /// Applied first.
    pub first: A,
    /// Applied second.
    pub second: B,
}

/// `second ∘ first` (optax `chain` of two).
pub fn chain<A, B>(first: A, second: B) -> Chain<A, B> {
    Chain { first, second }
}

impl<T: Element, A: GradientTransformation<T>, B: GradientTransformation<T>>
    GradientTransformation<T> for Chain<A, B>
{
    type State = (A::State, B::State);
    fn init(&self, params: Params<'_, T>) -> Self::State {
        (self.first.init(params), self.second.init(params))
    }
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        self.first.update(updates, &mut state.0, params);
        self.second.update(updates, &mut state.1, params);
    }
    /// When `second` is a per-member scale (the learning rate), `first` adds the scaled update
    /// in its own pass ([`GradientTransformation::update_scaled_and_apply`]); otherwise `first`'s
    /// update, then `second`'s merged with the addition where it can be.
    fn update_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
    ) {
        let (first_state, second_state) = (&mut state.0, &mut state.1);
        let first_factor = if layout.members() > 0 {
            self.second.member_scale(second_state, layout, 0)
        } else {
            None
        };
        if let Some(first_factor) = first_factor {
            let second = &self.second;
            let mut factor = |e: usize| {
                if e == 0 {
                    first_factor
                } else {
                    second
                        .member_scale(second_state, layout, e)
                        .expect("a transformation that scales one member scales them all")
                }
            };
            self.first
                .update_scaled_and_apply(updates, first_state, params, layout, &mut factor);
            return;
        }
        let view = Params {
            values: params,
            layout,
        };
        self.first.update(updates, first_state, view);
        self.second
            .update_and_apply(updates, second_state, params, layout);
    }
}

/// Chains any number of transformations, applied left to right (optax `chain`).
///
/// ```
/// use flock_optim::{chain, clip_by_global_norm, scale_by_adam, scale, AdamConfig};
/// let opt = chain!(clip_by_global_norm(1.0)?, scale_by_adam(AdamConfig::default())?, scale(-1e-3));
/// # Ok::<(), flock_optim::OptimError>(())
/// ```
#[macro_export]
macro_rules! chain {
    ($only:expr $(,)?) => { $only };
    ($first:expr, $($rest:expr),+ $(,)?) => { $crate::chain($first, $crate::chain!($($rest),+)) };
}

/// State of [`Masked`]: the inner state over the selected leaves, and gather buffers.
#[derive(Clone, Debug)]
pub struct MaskedState<T, S> {
    /// The inner transformation's state (over the selected leaves only).
    pub inner: S,
    updates: Vec<T>,
    params: Vec<T>,
}

impl<T: Element, S: MemberState> MemberState for MaskedState<T, S> {
    fn tag(&self) -> String {
        format!("masked({})", self.inner.tag())
    }
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        self.inner.copy_member(&from.inner, member, members);
    }
    /// Only the inner state: the gather buffers are scratch.
    fn save(&self, out: &mut Vec<f64>) {
        self.inner.save(out);
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), crate::OptimError> {
        self.inner.load(src)
    }
    /// The gather buffers are scratch: the new block starts with empty ones.
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        MaskedState {
            inner: self.inner.split_off(at, members),
            updates: Vec::new(),
            params: Vec::new(),
        }
    }
    fn append(&mut self, tail: Self) {
        self.inner.append(tail.inner);
    }
}

/// Applies `inner` to the selected leaves only; the others pass through unchanged.
#[derive(Clone, Debug)]
pub struct Masked<G> {
    inner: G,
    mask: LeafMask,
}

/// optax `masked(inner, mask)`: the inner transformation sees only the selected leaves (so its
/// norms and statistics are over them alone).
pub fn masked<G>(inner: G, mask: LeafMask) -> Masked<G> {
    Masked { inner, mask }
}

impl<G> Masked<G> {
    fn sub_layout(&self, layout: &Layout) -> Layout {
        Layout::new(
            layout.members(),
            layout
                .leaves()
                .iter()
                .filter(|l| self.mask.selects(&l.name))
                .map(|l| (l.name.clone(), l.len)),
        )
        .starting_at(layout.first_member())
    }
}

fn gather<T: Element>(full: &[T], layout: &Layout, ranges: &[(usize, usize)], out: &mut Vec<T>) {
    out.clear();
    for member in full
        .chunks_exact(layout.member_size().max(1))
        .take(layout.members())
    {
        for &(off, len) in ranges {
            out.extend_from_slice(&member[off..off + len]);
        }
    }
}

impl<T: Element, G: GradientTransformation<T>> GradientTransformation<T> for Masked<G> {
    type State = MaskedState<T, G::State>;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        let sub = self.sub_layout(params.layout);
        let mut sub_params = Vec::new();
        gather(
            params.values,
            params.layout,
            &self.mask.ranges(params.layout),
            &mut sub_params,
        );
        let inner = self.inner.init(Params {
            values: &sub_params,
            layout: &sub,
        });
        MaskedState {
            inner,
            updates: Vec::new(),
            params: sub_params,
        }
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        let sub = self.sub_layout(params.layout);
        let ranges = self.mask.ranges(params.layout);
        gather(updates, params.layout, &ranges, &mut state.updates);
        gather(params.values, params.layout, &ranges, &mut state.params);
        self.inner.update(
            &mut state.updates,
            &mut state.inner,
            Params {
                values: &state.params,
                layout: &sub,
            },
        );
        let mut src = state.updates.iter();
        for member in updates
            .chunks_exact_mut(params.layout.member_size().max(1))
            .take(params.layout.members())
        {
            for &(off, len) in &ranges {
                for (dst, s) in member[off..off + len].iter_mut().zip(&mut src) {
                    *dst = *s;
                }
            }
        }
    }
}
