//! The contract: `GradientTransformation`, its per-member state, and `apply_updates`.

use core::fmt::Debug;

use flock_kernels::Element;

use crate::{Layout, OptimError};

/// Parameters handed to `update`: the member-major buffer and its layout.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a, T> {
    /// `E·P` values, member-major.
    pub values: &'a [T],
    /// Members and named leaves.
    pub layout: &'a Layout,
}

impl<'a, T> Params<'a, T> {
    /// Pairs a buffer with its layout, checking the length.
    pub fn new(values: &'a [T], layout: &'a Layout) -> Result<Self, OptimError> {
        if values.len() != layout.len() {
            return Err(OptimError::BufferLength {
                what: "params",
                len: values.len(),
                expected: layout.len(),
            });
        }
        Ok(Params { values, layout })
    }

    /// Member `e`'s parameters.
    pub fn member(&self, e: usize) -> &'a [T] {
        let p = self.layout.member_size();
        &self.values[e * p..(e + 1) * p]
    }
}

/// A value an optimizer state holds; checkpoints store it as f64, exactly (f32, f64, counts
/// below 2⁵³, flags).
pub trait StateValue: Copy + Debug + Send + Sync + 'static {
    /// The value as f64.
    fn to_f64(self) -> f64;
    /// Back from [`StateValue::to_f64`].
    fn from_f64(v: f64) -> Self;
}

macro_rules! state_value {
    ($($t:ty),*) => {$(
        impl StateValue for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    )*};
}
state_value!(u64, u32);

impl StateValue for bool {
    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
}

/// Reads `into.len()` values from the front of `src`.
pub(crate) fn load_values<V: StateValue>(
    into: &mut [V],
    src: &mut &[f64],
) -> Result<(), OptimError> {
    if src.len() < into.len() {
        return Err(OptimError::StateLength {
            needed: into.len(),
            available: src.len(),
        });
    }
    let (head, rest) = src.split_at(into.len());
    for (v, &x) in into.iter_mut().zip(head) {
        *v = V::from_f64(x);
    }
    *src = rest;
    Ok(())
}

/// Optimizer state whose parts are split by member, so one member's state can be copied from
/// another snapshot (used by `apply_if_finite`, and by runners that freeze diverged members),
/// and which can be saved to and restored from a flat list of numbers (checkpoints).
pub trait MemberState: Clone + Debug + Send + Sync + 'static {
    /// Overwrites member `member`'s part of `self` with `from`'s (of `members` members).
    fn copy_member(&mut self, from: &Self, member: usize, members: usize);

    /// Appends every value of the state, in a fixed order, to `out` (exact in f64).
    fn save(&self, out: &mut Vec<f64>);

    /// Reads back, from the front of `src`, what [`MemberState::save`] wrote for a state of the
    /// same optimizer and layout (initialise one with `init`, then `load` into it).
    ///
    /// # Errors
    /// [`OptimError::StateLength`] when `src` runs out.
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError>;

    /// Moves members `at..members` (of the `members` that `self` holds) into a new state,
    /// leaving `self` with members `0..at` — so blocks of members can be updated apart (e.g. each
    /// on the thread that computed its gradients) with the results of one update of the whole.
    /// Per-member state is split; a value all members share is copied into both.
    fn split_off(&mut self, at: usize, members: usize) -> Self;

    /// Puts back the members of `tail` after those of `self` (the inverse of
    /// [`MemberState::split_off`]).
    fn append(&mut self, tail: Self);

    /// A stable name of the state's kind — the transformation that made it, composed like the
    /// transformation (`(scale_by_adam,scale_by_learning_rate)` for `adam`) — which a checkpoint
    /// records so that a saved state is only restored into the same transformation. Unlike
    /// `std::any::type_name`, it does not change with the compiler or a module's path.
    fn tag(&self) -> String;
}

impl MemberState for () {
    fn tag(&self) -> String {
        "empty".into()
    }
    fn copy_member(&mut self, _: &Self, _: usize, _: usize) {}
    fn save(&self, _: &mut Vec<f64>) {}
    fn load(&mut self, _: &mut &[f64]) -> Result<(), OptimError> {
        Ok(())
    }
    fn split_off(&mut self, _: usize, _: usize) {}
    fn append(&mut self, _: ()) {}
}

/// Copies member `member`'s block (of `members` equal blocks) from `from` into `to`.
pub(crate) fn copy_block<V: Clone>(to: &mut [V], from: &[V], member: usize, members: usize) {
    if members == 0 || to.is_empty() {
        return;
    }
    let block = to.len() / members;
    to[member * block..(member + 1) * block]
        .clone_from_slice(&from[member * block..(member + 1) * block]);
}

/// [`MemberState`] for a state struct whose fields are all per-member `Vec`s of equal blocks:
/// `counts` hold [`StateValue`]s (step counts, injected rates), `values` the element type `T`.
/// Saved in the order the fields are listed.
macro_rules! vec_member_state {
    (@fns $ty:ident, $tag:literal, [$($c:ident),*], [$($v:ident),*]) => {
        fn tag(&self) -> String {
            $tag.into()
        }
        fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
            $($crate::base::copy_block(&mut self.$c, &from.$c, member, members);)*
            $(self.$v.copy_member(&from.$v, member, members);)*
        }
        fn save(&self, out: &mut Vec<f64>) {
            $($crate::base::save_values(&self.$c, out);)*
            $(self.$v.save(out);)*
        }
        fn load(&mut self, src: &mut &[f64]) -> Result<(), $crate::OptimError> {
            $($crate::base::load_values(&mut self.$c, src)?;)*
            $(self.$v.load(src)?;)*
            Ok(())
        }
        fn split_off(&mut self, at: usize, members: usize) -> Self {
            $ty {
                $($c: $crate::base::split_block(&mut self.$c, at, members),)*
                $($v: $crate::base::split_block(&mut self.$v, at, members),)*
            }
        }
        fn append(&mut self, tail: Self) {
            $(self.$c.extend(tail.$c);)*
            $(self.$v.extend(tail.$v);)*
        }
    };
    ($ty:ident<T> $tag:literal { counts: [$($c:ident),*], values: [$($v:ident),*] }) => {
        impl<T: flock_kernels::Element> $crate::MemberState for $ty<T> {
            vec_member_state!(@fns $ty, $tag, [$($c),*], [$($v),*]);
        }
    };
    ($ty:ident $tag:literal { counts: [$($c:ident),*], values: [$($v:ident),*] }) => {
        impl $crate::MemberState for $ty {
            vec_member_state!(@fns $ty, $tag, [$($c),*], [$($v),*]);
        }
    };
}
pub(crate) use vec_member_state;

/// Moves members `at..members` of a buffer of `members` equal blocks into a new buffer.
pub(crate) fn split_block<V>(values: &mut Vec<V>, at: usize, members: usize) -> Vec<V> {
    if members == 0 {
        return Vec::new();
    }
    let block = values.len() / members;
    values.split_off(at * block)
}

/// Appends `values` as f64.
pub(crate) fn save_values<V: StateValue>(values: &[V], out: &mut Vec<f64>) {
    out.extend(values.iter().map(|v| v.to_f64()));
}

impl<T: Element> MemberState for Vec<T> {
    fn tag(&self) -> String {
        "values".into()
    }
    /// A `Vec` holds `members` equal blocks; member `e`'s block is copied.
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        copy_block(self, from, member, members);
    }
    fn save(&self, out: &mut Vec<f64>) {
        out.extend(self.iter().map(|v| v.to_f64()));
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        if src.len() < self.len() {
            return Err(OptimError::StateLength {
                needed: self.len(),
                available: src.len(),
            });
        }
        let (head, rest) = src.split_at(self.len());
        for (v, &x) in self.iter_mut().zip(head) {
            *v = T::from_f64(x);
        }
        *src = rest;
        Ok(())
    }
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        split_block(self, at, members)
    }
    fn append(&mut self, mut tail: Self) {
        Vec::append(self, &mut tail);
    }
}

impl<A: MemberState, B: MemberState> MemberState for (A, B) {
    fn tag(&self) -> String {
        format!("({},{})", self.0.tag(), self.1.tag())
    }
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        self.0.copy_member(&from.0, member, members);
        self.1.copy_member(&from.1, member, members);
    }
    fn save(&self, out: &mut Vec<f64>) {
        self.0.save(out);
        self.1.save(out);
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        self.0.load(src)?;
        self.1.load(src)
    }
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        (self.0.split_off(at, members), self.1.split_off(at, members))
    }
    fn append(&mut self, tail: Self) {
        self.0.append(tail.0);
        self.1.append(tail.1);
    }
}

/// A gradient transformation in optax's sense: `init` builds the state, `update` turns
/// gradients into updates in place. Semantics are per member, exactly as if `jax.vmap`ped over
/// the leading member axis: every member has its own moments, step count, norms.
///
/// `&self` is read-only configuration; `update` reads nothing but its arguments.
pub trait GradientTransformation<T: Element>: Send + Sync {
    /// Everything the next `update` needs.
    type State: MemberState;

    /// The initial state for parameters `params`.
    fn init(&self, params: Params<'_, T>) -> Self::State;

    /// Transforms `updates` (gradients on entry, `E·P` values) in place.
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>);

    /// One optimizer step on `params` (`E·P` values, member-major, laid out by `layout`):
    /// [`update`](Self::update), then `params += updates` ([`apply_updates`]). A transformation
    /// whose last pass can be merged with the addition does so with the same bits — the
    /// learning-rate scale that ends the named optimizers (all but `rmsprop` with momentum) adds
    /// `−lr·u` to the parameters in the pass that scales `u`, and a [`Chain`](crate::Chain) hands
    /// that scale to the transformation before it (Adam: one pass for the whole step). `updates`
    /// is scratch afterwards.
    ///
    /// ```
    /// use flock_optim::{adam, AdamConfig, GradientTransformation, Layout, Params, apply_updates};
    /// let layout = Layout::flat(2, 3);
    /// let opt = adam(1e-3, AdamConfig::default())?;
    /// let (mut fused, mut apart) = (vec![1.0f32; 6], vec![1.0f32; 6]);
    /// let mut state = opt.init(Params::new(&fused, &layout)?);
    /// let mut state_apart = state.clone();
    /// let grad = [0.5, -0.25, 2.0, 1.0, 0.0, -3.0];
    /// let mut u = grad;
    /// opt.update_and_apply(&mut u, &mut state, &mut fused, &layout);
    /// let mut u = grad;
    /// opt.update(&mut u, &mut state_apart, Params::new(&apart, &layout)?);
    /// apply_updates(&mut apart, &u);
    /// assert_eq!(fused, apart);
    /// # Ok::<(), flock_optim::OptimError>(())
    /// ```
    fn update_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
    ) {
        self.update(
            updates,
            state,
            Params {
                values: params,
                layout,
            },
        );
        apply_updates(params, updates);
    }

    /// When `update` only multiplies each member's updates by one number (the learning-rate
    /// scale): counts this step for member `e` of `layout` and returns the number. Otherwise
    /// `None`, with nothing touched (the default). A [`Chain`](crate::Chain) whose second
    /// transformation is such a scale hands the numbers to its first's
    /// [`update_scaled_and_apply`](Self::update_scaled_and_apply).
    fn member_scale(&self, state: &mut Self::State, layout: &Layout, e: usize) -> Option<f64> {
        let _ = (state, layout, e);
        None
    }

    /// [`update`](Self::update), then `params_e += factor(e)·updates_e` for each member `e` (the
    /// product rounded before the sum), `factor` called once per member, in order. A
    /// transformation that can does it in its own pass over the values (`scale_by_adam`: one
    /// pass for the whole Adam step instead of three). `updates` is scratch afterwards.
    fn update_scaled_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
        factor: &mut dyn FnMut(usize) -> f64,
    ) {
        self.update(
            updates,
            state,
            Params {
                values: params,
                layout,
            },
        );
        add_scaled_updates(updates, params, layout, factor);
    }
}

/// `params_e += factor(e)·updates_e` for each member `e` in order (the product rounded first).
pub(crate) fn add_scaled_updates<T: Element>(
    updates: &[T],
    params: &mut [T],
    layout: &Layout,
    factor: &mut dyn FnMut(usize) -> f64,
) {
    assert_len(updates, layout);
    assert_len(params, layout);
    let p = layout.member_size().max(1);
    for (e, (u, member)) in updates
        .chunks_exact(p)
        .zip(params.chunks_exact_mut(p))
        .take(layout.members())
        .enumerate()
    {
        flock_kernels::elementwise::add_scaled(T::from_f64(factor(e)), u, member);
    }
}

/// `params += updates` (optax's `apply_updates`).
///
/// # Panics
/// If the buffers differ in length.
pub fn apply_updates<T: Element>(params: &mut [T], updates: &[T]) {
    flock_kernels::elementwise::add_assign(params, updates);
}

/// A hyperparameter shared by all members or given per member (so a sweep runs as one
/// ensemble).
#[derive(Clone, Debug, PartialEq)]
pub enum PerMember<V> {
    /// The same value for every member.
    Shared(V),
    /// One value per member.
    Each(Vec<V>),
}

impl<V: Copy> PerMember<V> {
    /// Member `e`'s value.
    #[inline]
    pub fn get(&self, e: usize) -> V {
        match self {
            PerMember::Shared(v) => *v,
            PerMember::Each(vs) => vs[e],
        }
    }
    /// Every value.
    pub fn values(&self) -> Vec<V> {
        match self {
            PerMember::Shared(v) => vec![*v],
            PerMember::Each(vs) => vs.clone(),
        }
    }
    /// Checks a per-member list against the member count.
    pub fn check_members(&self, name: &'static str, members: usize) -> Result<(), OptimError> {
        match self {
            PerMember::Each(vs) if vs.len() != members => Err(OptimError::MemberCountMismatch {
                name,
                given: vs.len(),
                members,
            }),
            _ => Ok(()),
        }
    }
}

impl From<f64> for PerMember<f64> {
    fn from(v: f64) -> Self {
        PerMember::Shared(v)
    }
}

impl From<Vec<f64>> for PerMember<f64> {
    fn from(v: Vec<f64>) -> Self {
        PerMember::Each(v)
    }
}

/// Iterates over members: `(e, member's updates)`.
#[inline]
pub(crate) fn members_mut<'a, T>(
    updates: &'a mut [T],
    layout: &Layout,
) -> impl Iterator<Item = (usize, &'a mut [T])> + use<'a, T> {
    updates
        .chunks_exact_mut(layout.member_size().max(1))
        .take(layout.members())
        .enumerate()
}

/// Checks `updates` against the layout (a programmer error inside a training loop).
#[inline]
pub(crate) fn assert_len<T>(updates: &[T], layout: &Layout) {
    assert_eq!(
        updates.len(),
        layout.len(),
        "updates have {} values but the layout holds {} members × {} parameters",
        updates.len(),
        layout.members(),
        layout.member_size()
    );
}
