//! Type-erased transformations, for optimizers chosen at run time (a CLI flag, a config file).

use core::any::Any;
use core::fmt::Debug;

use flock_kernels::Element;

use crate::base::{GradientTransformation, MemberState, Params};
use crate::{Layout, OptimError};

trait DynState: Debug + Send + Sync + 'static {
    fn clone_box(&self) -> Box<dyn DynState>;
    fn copy_member_dyn(&mut self, from: &dyn DynState, member: usize, members: usize);
    fn save_dyn(&self, out: &mut Vec<f64>);
    fn tag_dyn(&self) -> String;
    fn load_dyn(&mut self, src: &mut &[f64]) -> Result<(), OptimError>;
    fn split_off_dyn(&mut self, at: usize, members: usize) -> Box<dyn DynState>;
    fn append_dyn(&mut self, tail: Box<dyn DynState>);
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<S: MemberState> DynState for S {
    fn clone_box(&self) -> Box<dyn DynState> {
        Box::new(self.clone())
    }
    fn copy_member_dyn(&mut self, from: &dyn DynState, member: usize, members: usize) {
        let from = from
            .as_any()
            .downcast_ref::<S>()
            .expect("BoxedState::copy_member: states of different optimizers");
        self.copy_member(from, member, members);
    }
    fn tag_dyn(&self) -> String {
        self.tag()
    }
    fn save_dyn(&self, out: &mut Vec<f64>) {
        self.save(out);
    }
    fn load_dyn(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        self.load(src)
    }
    fn split_off_dyn(&mut self, at: usize, members: usize) -> Box<dyn DynState> {
        Box::new(self.split_off(at, members))
    }
    fn append_dyn(&mut self, tail: Box<dyn DynState>) {
        let tail = tail
            .into_any()
            .downcast::<S>()
            .expect("BoxedState::append: states of different optimizers");
        self.append(*tail);
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The state of a [`BoxedTransformation`].
#[derive(Debug)]
pub struct BoxedState(Box<dyn DynState>);

impl Clone for BoxedState {
    fn clone(&self) -> Self {
        BoxedState(self.0.clone_box())
    }
}

impl MemberState for BoxedState {
    fn tag(&self) -> String {
        self.0.tag_dyn()
    }
    fn copy_member(&mut self, from: &Self, member: usize, members: usize) {
        self.0.copy_member_dyn(&*from.0, member, members);
    }
    fn save(&self, out: &mut Vec<f64>) {
        self.0.save_dyn(out);
    }
    fn load(&mut self, src: &mut &[f64]) -> Result<(), OptimError> {
        self.0.load_dyn(src)
    }
    fn split_off(&mut self, at: usize, members: usize) -> Self {
        BoxedState(self.0.split_off_dyn(at, members))
    }
    fn append(&mut self, tail: Self) {
        self.0.append_dyn(tail.0);
    }
}

impl BoxedState {
    /// The concrete state, if it is an `S` (e.g. to set an injected learning rate).
    pub fn downcast_mut<S: 'static>(&mut self) -> Option<&mut S> {
        self.0.as_any_mut().downcast_mut::<S>()
    }
    /// The concrete state, if it is an `S`.
    pub fn downcast_ref<S: 'static>(&self) -> Option<&S> {
        self.0.as_any().downcast_ref::<S>()
    }
}

/// The concrete state of `G` inside `state` (a programmer error when it is another's).
fn concrete<T: Element, G: GradientTransformation<T>>(state: &mut BoxedState) -> &mut G::State {
    state
        .downcast_mut::<G::State>()
        .expect("BoxedTransformation: state from another optimizer")
}

trait DynTransformation<T>: Send + Sync {
    fn init_dyn(&self, params: Params<'_, T>) -> BoxedState;
    fn update_dyn(&self, updates: &mut [T], state: &mut BoxedState, params: Params<'_, T>);
    fn update_and_apply_dyn(
        &self,
        updates: &mut [T],
        state: &mut BoxedState,
        params: &mut [T],
        layout: &Layout,
    );
    fn member_scale_dyn(&self, state: &mut BoxedState, layout: &Layout, e: usize) -> Option<f64>;
    fn update_scaled_and_apply_dyn(
        &self,
        updates: &mut [T],
        state: &mut BoxedState,
        params: &mut [T],
        layout: &Layout,
        factor: &mut dyn FnMut(usize) -> f64,
    );
}

impl<T: Element, G: GradientTransformation<T>> DynTransformation<T> for G {
    fn init_dyn(&self, params: Params<'_, T>) -> BoxedState {
        BoxedState(Box::new(self.init(params)))
    }
    fn update_dyn(&self, updates: &mut [T], state: &mut BoxedState, params: Params<'_, T>) {
        let s = concrete::<T, G>(state);
        self.update(updates, s, params);
    }
    fn update_and_apply_dyn(
        &self,
        updates: &mut [T],
        state: &mut BoxedState,
        params: &mut [T],
        layout: &Layout,
    ) {
        let s = concrete::<T, G>(state);
        self.update_and_apply(updates, s, params, layout);
    }
    fn member_scale_dyn(&self, state: &mut BoxedState, layout: &Layout, e: usize) -> Option<f64> {
        let s = concrete::<T, G>(state);
        self.member_scale(s, layout, e)
    }
    fn update_scaled_and_apply_dyn(
        &self,
        updates: &mut [T],
        state: &mut BoxedState,
        params: &mut [T],
        layout: &Layout,
        factor: &mut dyn FnMut(usize) -> f64,
    ) {
        let s = concrete::<T, G>(state);
        self.update_scaled_and_apply(updates, s, params, layout, factor);
    }
}

/// Any transformation behind one type.
pub struct BoxedTransformation<T>(Box<dyn DynTransformation<T>>);

impl<T> Debug for BoxedTransformation<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BoxedTransformation(..)")
    }
}

impl<T: Element> BoxedTransformation<T> {
    /// Erases the type of `g`.
    pub fn new<G: GradientTransformation<T> + 'static>(g: G) -> Self {
        BoxedTransformation(Box::new(g))
    }
}

impl<T: Element> GradientTransformation<T> for BoxedTransformation<T> {
    type State = BoxedState;
    fn init(&self, params: Params<'_, T>) -> BoxedState {
        self.0.init_dyn(params)
    }
    fn update(&self, updates: &mut [T], state: &mut BoxedState, params: Params<'_, T>) {
        self.0.update_dyn(updates, state, params)
    }
    fn update_and_apply(
        &self,
        updates: &mut [T],
        state: &mut BoxedState,
        params: &mut [T],
        layout: &Layout,
    ) {
        self.0.update_and_apply_dyn(updates, state, params, layout)
    }
    fn member_scale(&self, state: &mut BoxedState, layout: &Layout, e: usize) -> Option<f64> {
        self.0.member_scale_dyn(state, layout, e)
    }
    fn update_scaled_and_apply(
        &self,
        updates: &mut [T],
        state: &mut BoxedState,
        params: &mut [T],
        layout: &Layout,
        factor: &mut dyn FnMut(usize) -> f64,
    ) {
        self.0
            .update_scaled_and_apply_dyn(updates, state, params, layout, factor)
    }
}
