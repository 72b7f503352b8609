//! The tape: nodes in creation order, their values in one arena, gradients by a reverse walk.
//!
//! A [`Tape`] owns every buffer a forward and backward pass need; [`Tape::graph`] clears them
//! (keeping their capacity) and hands out a [`Graph`] that records operations. After the first
//! evaluation of a given log-joint, later evaluations allocate nothing.
//!
//! # Storage
//! Every node's value is a stack of per-member blocks of `shape.elems()` values, member `e`'s block
//! at `offset + e·stride` in one of two buffers: the tape's arena (results of operations and
//! copied-in data; `stride = elems`, or 0 for data shared by all members) or the parameter buffer
//! the graph was built over (`stride = P`, read in place, never copied). The arena starts on a
//! 64-byte boundary and every node's storage starts on one too (its first member's block; the
//! others when `elems` is a multiple of the vector width), so vector loads and stores do not
//! straddle cache lines whatever sizes the earlier nodes have. Gradients mirror values:
//! an arena node's gradient sits at the same offset of the tape's gradient arena, a parameter's
//! gradient at the same offset of the caller's gradient buffer — so `backward` writes parameter
//! gradients straight into the buffer an optimizer reads.

use flock_kernels::{ALIGN_BYTES, AlignedBuf, Element, Parallelism};

use crate::ops::{self, Op};
use crate::{AutogradError, ParamId, ParamLayout, Parameters, Shape};

/// A handle to a node of the graph being recorded (its index on the tape).
///
/// A `Var` is only meaningful for the [`Graph`] that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) u32);

impl Var {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// Which buffer a node's value (and gradient) lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    /// The tape's arena (gradients in the tape's gradient arena).
    Arena,
    /// The parameter buffer (gradients in the caller's gradient buffer).
    Params,
}

/// Where member `e`'s block of a node lives: `base[offset + e·stride ..][..elems]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub base: Base,
    pub offset: usize,
    /// Member stride; 0 = one block shared by all members.
    pub stride: usize,
    pub elems: usize,
}

impl Slot {
    pub fn range(&self, e: usize) -> core::ops::Range<usize> {
        let start = self.offset + e * self.stride;
        start..start + self.elems
    }
    pub fn shared(&self) -> bool {
        self.stride == 0
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node<T> {
    pub op: Op<T>,
    pub shape: Shape,
    pub slot: Slot,
    pub requires_grad: bool,
}

/// Reusable storage for recording and differentiating graphs (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct Tape<T> {
    pub(crate) nodes: Vec<Node<T>>,
    /// Values; `arena[..used]` belongs to the graph being recorded. The buffer keeps its
    /// high-water length, so recording reuses it without zeroing: every op writes its whole
    /// output block before anything reads it.
    pub(crate) arena: AlignedBuf<T>,
    pub(crate) used: usize,
    /// Gradients, laid out as `arena`; a node's block is written before it is read (see
    /// [`Graph::backward`]), so the buffer is never cleared.
    pub(crate) grads: AlignedBuf<T>,
    /// During `backward`, by node index: whether the node owns an arena storage whose gradient
    /// is still unwritten.
    pub(crate) unwritten: Vec<bool>,
    /// During `backward`: the written ranges of a member's parameter gradients.
    pub(crate) params_written: Vec<(usize, usize)>,
    pub(crate) scratch: AlignedBuf<T>,
    pub(crate) parallelism: Parallelism,
    /// Members of the graph recorded last, and the rows of the batch it recorded (see
    /// [`Tape::workspace_per_member`]).
    pub(crate) recorded_members: usize,
    pub(crate) recorded_rows: Option<usize>,
}

impl<T: Element> Tape<T> {
    /// An empty tape whose GEMMs run on the calling thread.
    pub fn new() -> Tape<T> {
        Tape {
            nodes: Vec::new(),
            arena: AlignedBuf::new(),
            used: 0,
            grads: AlignedBuf::new(),
            unwritten: Vec::new(),
            params_written: Vec::new(),
            scratch: AlignedBuf::new(),
            parallelism: Parallelism::Sequential,
            recorded_members: 0,
            recorded_rows: None,
        }
    }

    /// An empty tape whose GEMMs may use rayon (results are bitwise the same either way).
    pub fn with_parallelism(parallelism: Parallelism) -> Tape<T> {
        Tape {
            parallelism,
            ..Tape::new()
        }
    }

    /// Starts recording a new graph over `params` (clearing the previous one).
    pub fn graph<'a>(&'a mut self, params: &'a Parameters<T>) -> Graph<'a, T> {
        self.clear();
        self.recorded_members = params.members();
        Graph {
            tape: self,
            params: params.values(),
            layout: params.layout(),
            members: params.members(),
        }
    }

    /// Starts recording over a raw member-major buffer of `members` members laid out by `layout`.
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] unless `params.len() == members·P`.
    pub fn graph_over<'a>(
        &'a mut self,
        members: usize,
        params: &'a [T],
        layout: &'a ParamLayout,
    ) -> Result<Graph<'a, T>, AutogradError> {
        let expected = members * layout.member_size();
        if params.len() != expected {
            return Err(AutogradError::BufferLength {
                what: "params",
                len: params.len(),
                expected,
            });
        }
        self.clear();
        self.recorded_members = members;
        Ok(Graph {
            tape: self,
            params,
            layout,
            members,
        })
    }

    fn clear(&mut self) {
        self.nodes.clear();
        self.used = 0;
        self.recorded_rows = None;
    }

    /// An estimate of the tape storage — values and their gradients, in elements of `T` — one
    /// member's evaluation takes on a batch of `rows` examples: the last recorded graph's, per
    /// member, scaled by `rows` over the rows of the batch it recorded with
    /// [`batch_inputs`](crate::batch_inputs). `None` until a graph has recorded a batch.
    ///
    /// A caller that evaluates a large ensemble a few members at a time sizes the groups with it
    /// so that one group's intermediate values stay in cache.
    pub fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        let recorded_rows = self.recorded_rows?.max(1);
        let per_member = 2 * self.used / self.recorded_members.max(1);
        Some((per_member * rows).div_ceil(recorded_rows))
    }

    /// Notes the rows of the batch the graph being recorded reads.
    pub(crate) fn note_batch_rows(&mut self, rows: usize) {
        self.recorded_rows = Some(rows);
    }
}

/// A graph being recorded on a [`Tape`] over one ensemble's parameters.
///
/// Every operation is a method returning a [`Var`]; values are computed eagerly, so
/// [`Graph::values`] can be read at any point. [`Graph::backward`] differentiates a per-member
/// scalar with respect to every parameter.
#[derive(Debug)]
pub struct Graph<'a, T> {
    pub(crate) tape: &'a mut Tape<T>,
    pub(crate) params: &'a [T],
    pub(crate) layout: &'a ParamLayout,
    pub(crate) members: usize,
}

impl<'a, T: Element> Graph<'a, T> {
    /// Number of members `E`.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The parameter layout the graph was built over.
    pub fn layout(&self) -> &'a ParamLayout {
        self.layout
    }

    /// The shape of `v` (without the member axis).
    pub fn shape(&self, v: Var) -> Shape {
        self.node(v).shape
    }

    /// Whether `v` is one block shared by all members (data), rather than one block per member.
    pub fn is_shared(&self, v: Var) -> bool {
        self.node(v).slot.shared()
    }

    /// Member `e`'s values of `v`, row-major in `v`'s shape (a shared value is the same for all).
    ///
    /// # Panics
    /// If `e ≥ E` or `v` is not from this graph.
    pub fn values(&self, v: Var, e: usize) -> &[T] {
        assert!(e < self.members, "member {e} of {}", self.members);
        let slot = self.node(v).slot;
        &self.buffer(slot.base)[slot.range(e)]
    }

    /// Copies `v` for every member into `out` (`E·elems` values, member-major).
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] if `out` has the wrong length.
    pub fn copy_values(&self, v: Var, out: &mut [T]) -> Result<(), AutogradError> {
        let elems = self.shape(v).elems();
        if out.len() != self.members * elems {
            return Err(AutogradError::BufferLength {
                what: "copy_values output",
                len: out.len(),
                expected: self.members * elems,
            });
        }
        for e in 0..self.members {
            out[e * elems..(e + 1) * elems].copy_from_slice(self.values(v, e));
        }
        Ok(())
    }

    /// Data shared by every member (stride 0, copied onto the tape): e.g. a batch `x` of shape
    /// `[B, D]`. Shared values never receive gradients.
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] unless `data.len() == shape.elems()`.
    pub fn input(&mut self, data: &[T], shape: impl Into<Shape>) -> Result<Var, AutogradError> {
        let shape = shape.into();
        if data.len() != shape.elems() {
            return Err(AutogradError::BufferLength {
                what: "input",
                len: data.len(),
                expected: shape.elems(),
            });
        }
        let (v, offset) = self.push(Op::Leaf, shape, true, false);
        self.tape.arena[offset..offset + data.len()].copy_from_slice(data);
        Ok(v)
    }

    /// Per-member constant data (`E·shape.elems()` values, member-major). It receives no gradient.
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] unless `data.len() == E·shape.elems()`.
    pub fn input_per_member(
        &mut self,
        data: &[T],
        shape: impl Into<Shape>,
    ) -> Result<Var, AutogradError> {
        let shape = shape.into();
        let expected = self.members * shape.elems();
        if data.len() != expected {
            return Err(AutogradError::BufferLength {
                what: "per-member input",
                len: data.len(),
                expected,
            });
        }
        let (v, offset) = self.push(Op::Leaf, shape, false, false);
        self.tape.arena[offset..offset + data.len()].copy_from_slice(data);
        Ok(v)
    }

    /// The parameter leaf `id` of every member, read in place from the parameter buffer.
    ///
    /// # Errors
    /// [`AutogradError::UnknownParameter`] for an id from another layout.
    pub fn param(&mut self, id: ParamId) -> Result<Var, AutogradError> {
        let leaf = self.layout.leaf(id)?;
        let slot = Slot {
            base: Base::Params,
            offset: leaf.offset,
            stride: self.layout.member_size(),
            elems: leaf.len(),
        };
        Ok(self.push_slot(Op::Leaf, leaf.shape, slot, true))
    }

    /// Every parameter of a member as one vector of shape `[P]` (e.g. for a prior over all
    /// weights), read in place.
    pub fn all_params(&mut self) -> Var {
        let p = self.layout.member_size();
        let slot = Slot {
            base: Base::Params,
            offset: 0,
            stride: p,
            elems: p,
        };
        self.push_slot(Op::Leaf, Shape::new(&[p]), slot, true)
    }

    /// Differentiates the per-member scalar `loss` (shape `[]`): writes `∂loss_e/∂θ_e` for every
    /// member into `param_grads` (`E·P` values, member-major, overwritten).
    ///
    /// Gradients of a value used more than once accumulate. Member `e`'s gradient depends only
    /// on member `e`'s parameters.
    ///
    /// # Errors
    /// [`AutogradError::NotAScalar`] if `loss` is not a per-member scalar;
    /// [`AutogradError::BufferLength`] if `param_grads` has the wrong length.
    pub fn backward(&mut self, loss: Var, param_grads: &mut [T]) -> Result<(), AutogradError> {
        let node = self.node(loss).clone();
        if node.shape.rank() != 0 {
            return Err(AutogradError::NotAScalar { shape: node.shape });
        }
        if param_grads.len() != self.params.len() {
            return Err(AutogradError::BufferLength {
                what: "param_grads",
                len: param_grads.len(),
                expected: self.params.len(),
            });
        }
        if !node.requires_grad {
            param_grads.fill(T::ZERO);
            return Ok(());
        }
        let tape = &mut *self.tape;
        if tape.grads.len() < tape.used {
            tape.grads.resize(tape.used, T::ZERO);
        }
        // No gradient block is cleared up front: the first op to write one claims it (zeroing
        // it, or overwriting it whole), and a node whose block nobody wrote is skipped (no path
        // from it reaches the loss).
        tape.unwritten.clear();
        tape.unwritten
            .extend(tape.nodes[..=loss.index()].iter().map(|n| {
                // Aliases share their source's storage and are tracked through it.
                n.slot.base == Base::Arena
                    && n.slot.elems > 0
                    && !matches!(n.op, ops::Op::Alias { .. })
            }));
        let seed = node.slot;
        let mut ctx = ops::Backward {
            nodes: &tape.nodes,
            arena: &tape.arena[..tape.used],
            params: self.params,
            grads: &mut tape.grads,
            unwritten: &mut tape.unwritten,
            param_grads,
            params_written: &mut tape.params_written,
            param_stride: self.layout.member_size(),
            scratch: &mut tape.scratch,
            members: self.members,
            parallelism: tape.parallelism,
            pending: None,
        };
        // No parameter gradient is cleared up front either: the first op to write a parameter's
        // range claims it like an arena block, and what no op wrote is zeroed at the end.
        ctx.params_written.clear();
        ctx.claim_whole(loss);
        for e in 0..self.members {
            let r = seed.range(e);
            if seed.base == Base::Arena {
                ctx.grads[r].fill(T::ONE);
            } else {
                ctx.param_grads[r].fill(T::ONE);
            }
        }
        for index in (0..=loss.index()).rev() {
            let node = &ctx.nodes[index];
            if !node.requires_grad || ctx.is_unwritten(Var(index as u32)) {
                continue;
            }
            ops::backward(&mut ctx, index);
        }
        // The layer a pending gradient was for reads it; were it skipped, the gradient is written.
        ctx.write_pending();
        ctx.zero_unwritten_params();
        Ok(())
    }

    pub(crate) fn node(&self, v: Var) -> &Node<T> {
        &self.tape.nodes[v.index()]
    }

    pub(crate) fn buffer(&self, base: Base) -> &[T] {
        match base {
            Base::Arena => &self.tape.arena[..self.tape.used],
            Base::Params => self.params,
        }
    }

    /// Records a node with a fresh arena block (holding stale values: the op must write all of
    /// it); returns it and the block's offset.
    pub(crate) fn push(
        &mut self,
        op: Op<T>,
        shape: Shape,
        shared: bool,
        requires_grad: bool,
    ) -> (Var, usize) {
        let elems = shape.elems();
        // Every block starts on a 64-byte boundary of the (aligned) arena, so vector loads and
        // stores of a block never straddle cache lines however the blocks before it are sized.
        let offset = self
            .tape
            .used
            .next_multiple_of(ALIGN_BYTES / core::mem::size_of::<T>());
        let (stride, len) = if shared {
            (0, elems)
        } else {
            (elems, self.members * elems)
        };
        self.tape.used = offset + len;
        if self.tape.arena.len() < self.tape.used {
            self.tape.arena.resize(self.tape.used, T::ZERO);
        }
        let slot = Slot {
            base: Base::Arena,
            offset,
            stride,
            elems,
        };
        (self.push_slot(op, shape, slot, requires_grad), offset)
    }

    pub(crate) fn push_slot(
        &mut self,
        op: Op<T>,
        shape: Shape,
        slot: Slot,
        requires_grad: bool,
    ) -> Var {
        let v = Var(self.tape.nodes.len() as u32);
        self.tape.nodes.push(Node {
            op,
            shape,
            slot,
            requires_grad,
        });
        v
    }

    /// The arena before `offset` (inputs) and the output block at `offset`, plus the params.
    pub(crate) fn split_output(&mut self, offset: usize) -> (Inputs<'_, T>, &mut [T]) {
        let used = self.tape.used;
        let (before, out) = self.tape.arena[..used].split_at_mut(offset);
        (
            Inputs {
                arena: before,
                params: self.params,
            },
            out,
        )
    }
}

/// Read access to operands while an output block is being written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inputs<'b, T> {
    pub arena: &'b [T],
    pub params: &'b [T],
}

impl<'b, T> Inputs<'b, T> {
    pub fn buffer(&self, base: Base) -> &'b [T] {
        match base {
            Base::Arena => self.arena,
            Base::Params => self.params,
        }
    }
    /// Member `e`'s block of `slot`.
    pub fn member(&self, slot: Slot, e: usize) -> &'b [T] {
        &self.buffer(slot.base)[slot.range(e)]
    }
}
