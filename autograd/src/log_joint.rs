//! The log-joint contract ([`LogJoint`]): per-member values and the gradient of their weighted
//! sum.

use core::ops::Range;
use flock_kernels::Element;

use crate::{AutogradError, Graph, ParamLayout, Shape, Tape, Var};

/// A mini-batch: `x` is `[rows, x_cols]` and `y` is `[rows, y_cols]`, row-major — one batch
/// shared by every member, or (with `per_member = Some(E)`) one batch per member, stacked
/// `[E, rows, ·]`, so each member can see its own data order.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, T> {
    /// Inputs, `rows·x_cols` values (times `E` per member).
    pub x: &'a [T],
    /// Targets, `rows·y_cols` values (times `E` per member).
    pub y: &'a [T],
    /// Number of examples (per member).
    pub rows: usize,
    /// `Some(E)` when every member has its own rows.
    pub per_member: Option<usize>,
}

impl<'a, T> Batch<'a, T> {
    /// A batch of `rows` examples.
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] when `x` or `y` is not a whole number of rows (or is
    /// empty while `rows > 0`).
    pub fn new(x: &'a [T], y: &'a [T], rows: usize) -> Result<Batch<'a, T>, AutogradError> {
        for (what, buf) in [("batch x", x), ("batch y", y)] {
            if rows == 0 || buf.len() % rows != 0 || buf.is_empty() {
                return Err(AutogradError::BufferLength {
                    what,
                    len: buf.len(),
                    expected: rows.max(1) * (buf.len() / rows.max(1)).max(1),
                });
            }
        }
        Ok(Batch {
            x,
            y,
            rows,
            per_member: None,
        })
    }

    /// One batch of `rows` examples per member: `x` is `[members, rows, x_cols]`, `y` is
    /// `[members, rows, y_cols]`.
    ///
    /// ```
    /// use flock_autograd::Batch;
    /// let (x, y) = ([1.0, 2.0, 3.0, 4.0], [0.0; 4]);
    /// let b = Batch::per_member(&x, &y, 2, 2)?; // two members, two rows each
    /// assert_eq!((b.x_cols(), b.y_cols()), (1, 1));
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] when a buffer is not `members·rows` whole rows.
    pub fn per_member(
        x: &'a [T],
        y: &'a [T],
        rows: usize,
        members: usize,
    ) -> Result<Batch<'a, T>, AutogradError> {
        let mut batch = Batch::new(x, y, rows * members)?;
        batch.rows = rows;
        batch.per_member = Some(members);
        Ok(batch)
    }

    /// The part of the batch that members `range` see: the batch itself when it is shared, their
    /// own rows (a per-member batch of `range.len()` members) otherwise. `range` counts members
    /// of this batch.
    ///
    /// ```
    /// use flock_autograd::Batch;
    /// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    /// let b = Batch::per_member(&x, &x, 1, 6)?; // six members, one row each
    /// assert_eq!(b.members(2..4).x, &[3.0, 4.0]);
    /// assert_eq!(Batch::new(&x, &x, 6)?.members(2..4).x.len(), 6); // shared: unchanged
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Panics
    /// If `range` reaches past the batch's members.
    pub fn members(self, range: Range<usize>) -> Batch<'a, T> {
        match self.per_member {
            None => self,
            Some(_) => {
                let (dx, dy) = (self.rows * self.x_cols(), self.rows * self.y_cols());
                Batch {
                    x: &self.x[range.start * dx..range.end * dx],
                    y: &self.y[range.start * dy..range.end * dy],
                    rows: self.rows,
                    per_member: Some(range.len()),
                }
            }
        }
    }

    /// How many copies of `rows` the buffers hold (1, or `E` per member).
    fn copies(&self) -> usize {
        self.per_member.unwrap_or(1).max(1)
    }

    /// Features per example.
    pub fn x_cols(&self) -> usize {
        self.x.len() / (self.rows * self.copies()).max(1)
    }

    /// Targets per example.
    pub fn y_cols(&self) -> usize {
        self.y.len() / (self.rows * self.copies()).max(1)
    }
}

/// The weights of the differentiated objective `w_ℓ·ℓ + w_π·π`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights<T> {
    /// Weight of the log-likelihood.
    pub loglik: T,
    /// Weight of the log-prior; when it is exactly 0 the prior need not be computed and its
    /// output may be left at 0.
    pub logprior: T,
}

impl<T: Element> Weights<T> {
    /// Both weights 0: the objective is 0, so its gradient is zero without differentiating
    /// anything — a log-joint recorded on a tape ([`finish_evaluation`]) computes `ℓ` (and not
    /// `π`), skips the backward pass and writes a zero gradient. For scoring, where only the
    /// values are wanted (an MLP's backward pass costs more than its forward pass).
    pub fn values_only() -> Weights<T> {
        Weights {
            loglik: T::ZERO,
            logprior: T::ZERO,
        }
    }
}

/// Where a log-joint writes its results.
#[derive(Debug)]
pub struct LogJointOutput<'a, T> {
    /// `ℓ_e`, one per member.
    pub loglik: &'a mut [T],
    /// `π_e`, one per member.
    pub logprior: &'a mut [T],
    /// `∂(w_ℓ·ℓ_e + w_π·π_e)/∂θ_e`, `E·P` values member-major (overwritten).
    pub grad: &'a mut [T],
}

/// A log-joint over an ensemble: it maps the ensemble's parameters and a data batch to two
/// per-member numbers, the log-likelihood `ℓ_e` and the log-prior `π_e`, and writes the
/// gradient of `w_ℓ·ℓ_e + w_π·π_e` with respect to member `e`'s parameters into a buffer of the
/// parameters' layout. Training code picks the weights (`w_ℓ = −scale`, `w_π = −prior_weight`
/// gives the gradient of the loss). A graph recorded on a [`Tape`] meets this contract
/// ([`TapeLogJoint`]), and so can hand-derived code — "bring your own gradient".
///
/// Implementations must keep members independent: member `e`'s outputs depend only on member
/// `e`'s parameters and the batch.
pub trait LogJoint<T: Element> {
    /// The parameter layout the log-joint reads.
    fn layout(&self) -> &ParamLayout;

    /// Evaluates `members` members at `params` (`E·P` values, member-major) on `batch`.
    ///
    /// # Errors
    /// A typed error naming the problem (e.g. a batch with the wrong number of features).
    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError>;

    /// Tells the log-joint that the members of the next [`LogJoint::evaluate`] are the ensemble's
    /// members `first..first + members` (a wrapper that splits an ensemble into blocks calls it;
    /// the default is `0`). Log-joints that draw per-member randomness use it so that member
    /// `e`'s stream is the same whichever block evaluates it; the others ignore it.
    fn set_first_member(&mut self, first: usize) {
        let _ = first;
    }

    /// For a log-joint that draws per-member noise at every evaluation (a VI objective): writes
    /// how many draws each of the ensemble's members has taken from its random stream so far
    /// (by member index) to `positions` and returns `true`. A deterministic log-joint returns
    /// `false` (the default). A training checkpoint records the positions and
    /// [`LogJoint::seek_streams`] puts them back, so a resumed run draws what an uninterrupted
    /// one would have.
    fn stream_positions(&self, positions: &mut Vec<u64>) -> bool {
        let _ = positions;
        false
    }

    /// Moves member `e`'s random stream to `positions[e]` draws past its start (as
    /// [`LogJoint::stream_positions`] reported them); members past the end of `positions` start
    /// at the beginning. Nothing for a deterministic log-joint (the default).
    fn seek_streams(&mut self, positions: &[u64]) {
        let _ = positions;
    }

    /// An estimate of the working storage (in elements of `T`: intermediate values and their
    /// gradients) one member's evaluation takes on a batch of `rows` examples, from the last
    /// evaluation — `None` when unknown (the default, and before the first evaluation). A wrapper
    /// that evaluates a large ensemble a few members per call sizes the calls with it so that
    /// one call's values stay in cache ([`Tape::workspace_per_member`] is the tape's figure).
    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        let _ = rows;
        None
    }

    /// The contiguous blocks of members (in order, covering `0..members`) that
    /// [`LogJoint::evaluate_then`] hands to its `then` when it evaluates `members` members on
    /// `batch`, written into `blocks`. One block by default; a log-joint that evaluates blocks on
    /// several threads returns its own.
    fn member_blocks(&self, members: usize, batch: &Batch<'_, T>, blocks: &mut Vec<Range<usize>>) {
        let _ = batch;
        blocks.clear();
        blocks.push(0..members);
    }

    /// [`LogJoint::evaluate`], then — only if every member was evaluated without error —
    /// `then` once per block of [`LogJoint::member_blocks`], with that block's parameters
    /// (mutable: e.g. for an optimizer step), gradients, `ℓ` and `π`. A log-joint that evaluates
    /// blocks on several threads calls `then` on the thread that evaluated the block, while its
    /// values are still in that core's cache.
    ///
    /// # Errors
    /// As [`LogJoint::evaluate`]; `then` is not called on error.
    fn evaluate_then(
        &mut self,
        members: usize,
        params: &mut [T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
        then: &(dyn Fn(EvaluatedBlock<'_, T>) + Sync),
    ) -> Result<(), AutogradError> {
        evaluate_then_one_block(self, members, params, batch, weights, out, then)
    }

    /// The threads this log-joint evaluates on (1 by default; a wrapper that evaluates blocks
    /// of members on several threads says how many).
    fn threads(&self) -> usize {
        1
    }

    /// For a log-joint of several [`threads`](LogJoint::threads): runs `work` once on each of
    /// them at the same time, each with a log-joint of its own (the one that thread evaluates
    /// its members with), and returns `true` when every call has returned. A log-joint of one
    /// thread runs nothing and returns `false` (the default): the caller then runs `work` on
    /// this log-joint itself. Training that steps each member on its own for a while (member
    /// after member, on whichever thread is free) uses it.
    fn on_each_thread(&mut self, work: &(dyn Fn(&mut dyn LogJoint<T>) + Sync)) -> bool {
        let _ = work;
        false
    }
}

/// [`LogJoint::evaluate_then`] for a log-joint that evaluates all its members as one block
/// (the trait's default, and what a wrapper uses when it evaluates the whole ensemble itself):
/// [`LogJoint::evaluate`], then `then` once with block 0 holding every member.
///
/// # Errors
/// As [`LogJoint::evaluate`]; `then` is not called on error.
pub fn evaluate_then_one_block<T: Element, L: LogJoint<T> + ?Sized>(
    log_joint: &mut L,
    members: usize,
    params: &mut [T],
    batch: Batch<'_, T>,
    weights: Weights<T>,
    out: LogJointOutput<'_, T>,
    then: &(dyn Fn(EvaluatedBlock<'_, T>) + Sync),
) -> Result<(), AutogradError> {
    let LogJointOutput {
        loglik,
        logprior,
        grad,
    } = out;
    log_joint.evaluate(
        members,
        params,
        batch,
        weights,
        LogJointOutput {
            loglik: &mut *loglik,
            logprior: &mut *logprior,
            grad: &mut *grad,
        },
    )?;
    then(EvaluatedBlock {
        index: 0,
        members: 0..members,
        params,
        grad,
        loglik,
        logprior,
    });
    Ok(())
}

/// One block of members evaluated by [`LogJoint::evaluate_then`].
#[derive(Debug)]
pub struct EvaluatedBlock<'a, T> {
    /// The block's position in [`LogJoint::member_blocks`].
    pub index: usize,
    /// Its members, as indices into the evaluated members.
    pub members: Range<usize>,
    /// Their parameters, `members.len()·P` values.
    pub params: &'a mut [T],
    /// Their weighted gradient, `members.len()·P` values.
    pub grad: &'a mut [T],
    /// Their `ℓ_e`.
    pub loglik: &'a [T],
    /// Their `π_e`.
    pub logprior: &'a [T],
}

impl<T: Element, L: LogJoint<T> + ?Sized> LogJoint<T> for &mut L {
    fn layout(&self) -> &ParamLayout {
        (**self).layout()
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError> {
        (**self).evaluate(members, params, batch, weights, out)
    }

    fn set_first_member(&mut self, first: usize) {
        (**self).set_first_member(first);
    }

    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        (**self).workspace_per_member(rows)
    }

    fn stream_positions(&self, positions: &mut Vec<u64>) -> bool {
        (**self).stream_positions(positions)
    }

    fn seek_streams(&mut self, positions: &[u64]) {
        (**self).seek_streams(positions);
    }

    fn member_blocks(&self, members: usize, batch: &Batch<'_, T>, blocks: &mut Vec<Range<usize>>) {
        (**self).member_blocks(members, batch, blocks);
    }

    fn evaluate_then(
        &mut self,
        members: usize,
        params: &mut [T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
        then: &(dyn Fn(EvaluatedBlock<'_, T>) + Sync),
    ) -> Result<(), AutogradError> {
        (**self).evaluate_then(members, params, batch, weights, out, then)
    }

    fn threads(&self) -> usize {
        (**self).threads()
    }

    fn on_each_thread(&mut self, work: &(dyn Fn(&mut dyn LogJoint<T>) + Sync)) -> bool {
        (**self).on_each_thread(work)
    }
}

/// The signature of a log-joint recorded on a graph: `(graph, x, y) → (ℓ, π)`, both per-member
/// scalars. `x` is the shared `[B, D]` batch; `y` is `[B]` for one target per example and
/// `[B, K]` for `K`.
pub trait GraphFn<T: Element>:
    for<'g> FnMut(&mut Graph<'g, T>, Var, Var) -> Result<(Var, Var), AutogradError>
{
}

impl<T: Element, F> GraphFn<T> for F where
    F: for<'g> FnMut(&mut Graph<'g, T>, Var, Var) -> Result<(Var, Var), AutogradError>
{
}

/// A [`LogJoint`] written as ordinary Rust over the tape, differentiated automatically.
///
/// The seed's `log_joint_native` — a Gaussian likelihood (σ = 0.1, no constant) of an MLP and a
/// standard-normal prior on every weight:
///
/// ```
/// use flock_autograd::*;
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 32, 2, Activation::Tanh))?;
/// let mut log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
///     let f = mlp.forward(g, x)?;
///     let f = g.squeeze_last(f)?;
///     let r = g.sub(y, f)?;
///     let sse = g.sum_squares(r);
///     let theta = g.all_params();
///     let ss = g.sum_squares(theta);
///     Ok((g.scale(sse, -0.5 / (0.1 * 0.1)), g.scale(ss, -0.5)))
/// });
///
/// // Evaluate 3 members (all parameters 0.01) on a batch of 2 points.
/// let params = vec![0.01; 3 * layout.member_size()];
/// let (mut ll, mut lp, mut grad) = ([0.0; 3], [0.0; 3], vec![0.0; params.len()]);
/// let batch = Batch::new(&[0.5, -0.5], &[0.1, 0.2], 2)?;
/// let weights = Weights { loglik: -1.0, logprior: -1.0 };
/// log_joint.evaluate(3, &params, batch, weights,
///     LogJointOutput { loglik: &mut ll, logprior: &mut lp, grad: &mut grad })?;
/// assert!((lp[0] + 0.5 * 1153.0 * 1e-4).abs() < 1e-12);
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
#[derive(Debug)]
pub struct TapeLogJoint<T, F> {
    layout: ParamLayout,
    build: F,
    tape: Tape<T>,
}

impl<T: Element, F: GraphFn<T>> TapeLogJoint<T, F> {
    /// Wraps `build`, which records `(ℓ, π)` on a graph over parameters laid out by `layout`.
    pub fn new(layout: ParamLayout, build: F) -> TapeLogJoint<T, F> {
        TapeLogJoint {
            layout,
            build,
            tape: Tape::new(),
        }
    }

    /// The same, with a tape whose GEMMs may use rayon.
    pub fn with_tape(layout: ParamLayout, build: F, tape: Tape<T>) -> TapeLogJoint<T, F> {
        TapeLogJoint {
            layout,
            build,
            tape,
        }
    }
}

fn check_scalar<T: Element>(g: &Graph<'_, T>, v: Var) -> Result<(), AutogradError> {
    let shape = g.shape(v);
    if shape.rank() != 0 {
        return Err(AutogradError::NotAScalar { shape });
    }
    Ok(())
}

impl<T: Element, F: GraphFn<T>> LogJoint<T> for TapeLogJoint<T, F> {
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError> {
        let mut g = self.tape.graph_over(members, params, &self.layout)?;
        let (x, y) = batch_inputs(&mut g, &batch)?;
        let (ll, lp) = (self.build)(&mut g, x, y)?;
        finish_evaluation(&mut g, ll, lp, weights, out)
    }

    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        self.tape.workspace_per_member(rows)
    }
}

/// Records the batch on `g`: `x` as a `[B, D]` input, `y` as `[B]` (one target per example) or
/// `[B, K]` — shared by all members, or per member for a per-member batch.
///
/// # Errors
/// [`AutogradError::BufferLength`] if the batch's buffers are not whole rows, or a per-member
/// batch was made for another number of members than the graph's.
pub fn batch_inputs<T: Element>(
    g: &mut Graph<'_, T>,
    batch: &Batch<'_, T>,
) -> Result<(Var, Var), AutogradError> {
    let x_shape = Shape::new(&[batch.rows, batch.x_cols()]);
    let y_shape = match batch.y_cols() {
        1 => Shape::new(&[batch.rows]),
        k => Shape::new(&[batch.rows, k]),
    };
    g.tape.note_batch_rows(batch.rows);
    match batch.per_member {
        None => Ok((g.input(batch.x, x_shape)?, g.input(batch.y, y_shape)?)),
        Some(members) if members == g.members() => Ok((
            g.input_per_member(batch.x, x_shape)?,
            g.input_per_member(batch.y, y_shape)?,
        )),
        Some(members) => Err(AutogradError::BufferLength {
            what: "per-member batch (members)",
            len: members,
            expected: g.members(),
        }),
    }
}

/// Completes a [`LogJoint::evaluate`] whose `(ℓ, π)` were recorded on `g`: differentiates
/// `w_ℓ·ℓ + w_π·π` (without the prior when `w_π = 0`) into `out.grad` and copies the values out.
/// With [`Weights::values_only`] nothing is differentiated: `out.grad` is zeroed (the gradient
/// of 0, even where the values are not finite).
///
/// # Errors
/// [`AutogradError::NotAScalar`] unless `ℓ` (and `π` when used) are per-member scalars;
/// [`AutogradError::BufferLength`] for output buffers of the wrong length.
pub fn finish_evaluation<T: Element>(
    g: &mut Graph<'_, T>,
    ll: Var,
    lp: Var,
    weights: Weights<T>,
    out: LogJointOutput<'_, T>,
) -> Result<(), AutogradError> {
    let members = g.members();
    for (what, buf) in [
        ("loglik output", &*out.loglik),
        ("logprior output", &*out.logprior),
    ] {
        if buf.len() != members {
            return Err(AutogradError::BufferLength {
                what,
                len: buf.len(),
                expected: members,
            });
        }
    }
    check_scalar(g, ll)?;
    let with_prior = weights.logprior != T::ZERO;
    if with_prior {
        check_scalar(g, lp)?;
    }
    if weights.loglik == T::ZERO && !with_prior {
        if out.grad.len() != g.params.len() {
            return Err(AutogradError::BufferLength {
                what: "param_grads",
                len: out.grad.len(),
                expected: g.params.len(),
            });
        }
        out.grad.fill(T::ZERO);
        g.copy_values(ll, out.loglik)?;
        out.logprior.fill(T::ZERO);
        return Ok(());
    }
    let weighted_ll = g.scale(ll, weights.loglik.to_f64());
    let objective = if with_prior {
        let weighted_lp = g.scale(lp, weights.logprior.to_f64());
        g.add(weighted_ll, weighted_lp)?
    } else {
        weighted_ll
    };
    g.backward(objective, out.grad)?;
    g.copy_values(ll, out.loglik)?;
    if with_prior {
        g.copy_values(lp, out.logprior)?;
    } else {
        out.logprior.fill(T::ZERO);
    }
    Ok(())
}
