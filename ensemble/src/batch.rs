//! Mini-batches: indices drawn with or without replacement, `scale = N/|B|`, and gathering rows.

use core::ops::Range;

use flock_autograd::Batch;
use rand::RngExt;

use crate::{EnsembleError, MemberHeldOut, MemberRng, member_rng};

/// How a [`MiniBatcher`] draws examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Each batch is `|B|` independent uniform draws.
    WithReplacement,
    /// Epochs of a fresh random permutation, cut into consecutive batches (the last batch of an
    /// epoch wraps into the next permutation, so every batch has `|B|` examples).
    WithoutReplacement,
}

/// Draws mini-batches of a data set of `N` examples.
///
/// With `batch_size ≥ N` every batch is the full data set in order and [`MiniBatcher::scale`]
/// is 1 (as pyrox does); otherwise `scale = N/|B|`, which makes the mini-batch log-likelihood an
/// unbiased estimate of the full one.
///
/// ```
/// use flock_ensemble::{MiniBatcher, Sampling};
/// let mut batches = MiniBatcher::new(10, 4, Sampling::WithoutReplacement, 0)?;
/// assert_eq!(batches.scale(), 2.5);
/// let x: Vec<f64> = (0..10).map(f64::from).collect();
/// let (mut xb, mut yb) = (Vec::new(), Vec::new());
/// batches.next_batch(&x, &x, &mut xb, &mut yb);
/// assert_eq!(xb.len(), 4);
/// assert_eq!(xb, yb);
/// assert_eq!((batches.batch_size(), batches.is_full_batch()), (4, false));
/// assert_eq!(batches.next_indices().len(), 4);
/// # Ok::<(), flock_ensemble::EnsembleError>(())
/// ```
#[derive(Clone, Debug)]
pub struct MiniBatcher {
    /// Rows it draws from (`order`'s length).
    n: usize,
    /// Rows of the data set it gathers from (`n`, or more when it draws from a subset).
    data_rows: usize,
    batch: usize,
    sampling: Sampling,
    rng: MemberRng,
    order: Vec<usize>,
    cursor: usize,
    indices: Vec<usize>,
}

impl MiniBatcher {
    /// Batches of `batch_size` from `n` examples, drawn from a stream seeded by `seed`.
    ///
    /// # Errors
    /// [`EnsembleError::EmptyBatch`] when `n` or `batch_size` is 0.
    pub fn new(
        n: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
    ) -> Result<MiniBatcher, EnsembleError> {
        MiniBatcher::with_stream(n, batch_size, sampling, seed, usize::MAX)
    }

    fn with_stream(
        n: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
        stream: usize,
    ) -> Result<MiniBatcher, EnsembleError> {
        MiniBatcher::over_rows((0..n).collect(), n, batch_size, sampling, seed, stream)
    }

    /// Batches of the rows `rows` (indices into a data set of `data_rows` rows) in the stream
    /// `(seed, stream)`; all of `0..n` draws exactly what [`MiniBatcher::with_stream`] does.
    fn over_rows(
        rows: Vec<usize>,
        data_rows: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
        stream: usize,
    ) -> Result<MiniBatcher, EnsembleError> {
        let n = rows.len();
        if n == 0 || batch_size == 0 {
            return Err(EnsembleError::EmptyBatch);
        }
        debug_assert!(rows.iter().all(|&r| r < data_rows));
        Ok(MiniBatcher {
            n,
            data_rows,
            batch: batch_size.min(n),
            sampling,
            rng: member_rng(seed, stream),
            order: rows,
            cursor: n,
            indices: Vec::with_capacity(batch_size.min(n)),
        })
    }

    /// Whether every batch is the whole data set.
    pub fn is_full_batch(&self) -> bool {
        self.batch == self.n
    }

    /// Examples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// `N/|B|` (exactly 1 for full batches).
    pub fn scale(&self) -> f64 {
        if self.is_full_batch() {
            1.0
        } else {
            self.n as f64 / self.batch as f64
        }
    }

    /// The next batch's example indices.
    pub fn next_indices(&mut self) -> &[usize] {
        self.indices.clear();
        // `order` is shuffled only when batches are drawn without replacement, so in the other
        // two cases it is the rows in their given order (`0..n` for a whole data set).
        if self.is_full_batch() {
            self.indices.extend_from_slice(&self.order);
            return &self.indices;
        }
        match self.sampling {
            Sampling::WithReplacement => {
                for _ in 0..self.batch {
                    let i = self.rng.random_range(0..self.n);
                    self.indices.push(self.order[i]);
                }
            }
            Sampling::WithoutReplacement => {
                while self.indices.len() < self.batch {
                    if self.cursor == self.n {
                        crate::rng::shuffle(&mut self.rng, &mut self.order);
                        self.cursor = 0;
                    }
                    self.indices.push(self.order[self.cursor]);
                    self.cursor += 1;
                }
            }
        }
        &self.indices
    }

    /// Gathers the next batch's rows of `x` (`N` rows) and `y` (`N` rows) into `x_batch` and
    /// `y_batch` (cleared first; reuse them to avoid allocating).
    pub fn next_batch<T: Copy>(
        &mut self,
        x: &[T],
        y: &[T],
        x_batch: &mut Vec<T>,
        y_batch: &mut Vec<T>,
    ) {
        let (dx, dy) = (x.len() / self.data_rows, y.len() / self.data_rows);
        self.next_indices();
        x_batch.clear();
        y_batch.clear();
        for &i in &self.indices {
            x_batch.extend_from_slice(&x[i * dx..(i + 1) * dx]);
            y_batch.extend_from_slice(&y[i * dy..(i + 1) * dy]);
        }
    }
}

impl MiniBatcher {
    /// The next batch's rows of `data` gathered into `x_batch` / `y_batch`, as a batch every
    /// member reads.
    fn shared_batch<'a, T: Copy>(
        &mut self,
        data: Batch<'a, T>,
        x_batch: &'a mut Vec<T>,
        y_batch: &'a mut Vec<T>,
    ) -> Result<Batch<'a, T>, EnsembleError> {
        self.next_batch(data.x, data.y, x_batch, y_batch);
        Ok(Batch::new(x_batch, y_batch, self.batch_size())?)
    }
}

/// Mini-batches with a data order of each member's own: member `e` draws from the stream
/// `(seed, e)`, so its batches do not depend on the other members. Batches are stacked
/// `[E, |B|, ·]` for [`Batch::per_member`](flock_autograd::Batch::per_member).
///
/// ```
/// use flock_autograd::Batch;
/// use flock_ensemble::{PerMemberBatcher, Sampling};
/// let x: Vec<f64> = (0..10).map(f64::from).collect();
/// let mut batches = PerMemberBatcher::new(10, 4, Sampling::WithoutReplacement, 0, 3)?;
/// let (mut xb, mut yb) = (Vec::new(), Vec::new());
/// batches.next_batch(&x, &x, &mut xb, &mut yb);
/// let batch = Batch::per_member(&xb, &yb, 4, 3)?;
/// assert_eq!((xb.len(), batches.scale()), (12, 2.5));
/// # let _ = batch;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PerMemberBatcher {
    members: Vec<MiniBatcher>,
}

impl PerMemberBatcher {
    /// Batches of `batch_size` from `n` examples for each of `members` members.
    ///
    /// # Errors
    /// [`EnsembleError::EmptyBatch`] when `n` or `batch_size` is 0;
    /// [`EnsembleError::ZeroMembers`] when `members` is 0.
    pub fn new(
        n: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
        members: usize,
    ) -> Result<PerMemberBatcher, EnsembleError> {
        PerMemberBatcher::for_members(n, batch_size, sampling, seed, 0..members)
    }

    /// The batches of members `members` of a larger ensemble (one process's block of a
    /// member-sharded run): member `e` draws from the stream `(seed, e)`, exactly as in the
    /// whole ensemble's [`PerMemberBatcher::new`].
    ///
    /// ```
    /// use flock_ensemble::{PerMemberBatcher, Sampling};
    /// let mut all = PerMemberBatcher::new(10, 4, Sampling::WithoutReplacement, 7, 5)?;
    /// let mut block = PerMemberBatcher::for_members(10, 4, Sampling::WithoutReplacement, 7, 3..5)?;
    /// let expected = all.member(4).next_indices().to_vec();
    /// assert_eq!(block.member(1).next_indices(), &expected[..]);
    /// # Ok::<(), flock_ensemble::EnsembleError>(())
    /// ```
    ///
    /// # Errors
    /// [`EnsembleError::EmptyBatch`] when `n` or `batch_size` is 0;
    /// [`EnsembleError::ZeroMembers`] when `members` is empty.
    pub fn for_members(
        n: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
        members: Range<usize>,
    ) -> Result<PerMemberBatcher, EnsembleError> {
        if members.is_empty() {
            return Err(EnsembleError::ZeroMembers);
        }
        let members = members
            .map(|e| MiniBatcher::with_stream(n, batch_size, sampling, seed, e))
            .collect::<Result<_, _>>()?;
        Ok(PerMemberBatcher { members })
    }

    /// Batches of `batch_size` for the members of `held_out`, each drawn from the rows it keeps
    /// (in the stream `(seed, e)`, as [`PerMemberBatcher::for_members`]) and never from the rows
    /// it holds out. `N/|B|` is then the kept rows over `|B|`.
    ///
    /// ```
    /// use flock_ensemble::{MemberHeldOut, PerMemberBatcher, Sampling};
    /// let split = MemberHeldOut::new(10, 2, 7, 0..3)?;
    /// let mut batches = PerMemberBatcher::holding_out(&split, 4, Sampling::WithoutReplacement, 0)?;
    /// assert_eq!(batches.scale(), 2.0);
    /// for _ in 0..5 {
    ///     assert!(batches.member(1).next_indices().iter().all(|r| !split.held(1).contains(r)));
    /// }
    /// # Ok::<(), flock_ensemble::EnsembleError>(())
    /// ```
    ///
    /// # Errors
    /// [`EnsembleError::EmptyBatch`] when `batch_size` is 0.
    pub fn holding_out(
        held_out: &MemberHeldOut,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
    ) -> Result<PerMemberBatcher, EnsembleError> {
        let members = held_out
            .members()
            .enumerate()
            .map(|(m, e)| {
                let kept = held_out.kept(m).to_vec();
                MiniBatcher::over_rows(kept, held_out.rows(), batch_size, sampling, seed, e)
            })
            .collect::<Result<_, _>>()?;
        Ok(PerMemberBatcher { members })
    }

    /// `N/|B|` (1 for full batches).
    pub fn scale(&self) -> f64 {
        self.members[0].scale()
    }

    /// Examples per member and batch.
    pub fn batch_size(&self) -> usize {
        self.members[0].batch_size()
    }

    /// Member `e`'s batcher (its index stream).
    pub fn member(&mut self, e: usize) -> &mut MiniBatcher {
        &mut self.members[e]
    }

    /// Gathers every member's next batch, stacked `[E, |B|, ·]`, into `x_batch` and `y_batch`.
    pub fn next_batch<T: Copy>(
        &mut self,
        x: &[T],
        y: &[T],
        x_batch: &mut Vec<T>,
        y_batch: &mut Vec<T>,
    ) {
        x_batch.clear();
        y_batch.clear();
        for batcher in &mut self.members {
            let (dx, dy) = (x.len() / batcher.data_rows, y.len() / batcher.data_rows);
            for &i in batcher.next_indices() {
                x_batch.extend_from_slice(&x[i * dx..(i + 1) * dx]);
                y_batch.extend_from_slice(&y[i * dy..(i + 1) * dy]);
            }
        }
    }
}

/// Whether the members of an ensemble see the same data order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataOrder {
    /// One stream of batches, every member stepping on the same rows (pyrox's `EnsembleMAP`,
    /// and the cheapest: the batch is gathered once).
    #[default]
    Shared,
    /// Each member its own stream `(seed, e)` ([`PerMemberBatcher`]): members differ by their
    /// data order as well as their initialisation — the Deep Ensembles paper's recipe.
    PerMember,
}

impl DataOrder {
    /// Every order, in the order of their names' listing.
    pub const ALL: [DataOrder; 2] = [DataOrder::Shared, DataOrder::PerMember];

    /// The order's name in files and on the command line: `shared` or `per-member`.
    pub fn name(self) -> &'static str {
        match self {
            DataOrder::Shared => "shared",
            DataOrder::PerMember => "per-member",
        }
    }

    /// The order named `name` ([`DataOrder::name`]).
    pub fn from_name(name: &str) -> Option<DataOrder> {
        DataOrder::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// The batches of a training run in either [`DataOrder`]: gathers each step's rows and says how
/// to read them ([`Batches::next`]).
///
/// ```
/// use flock_autograd::Batch;
/// use flock_ensemble::{Batches, DataOrder, Sampling};
/// let x: Vec<f64> = (0..10).map(f64::from).collect();
/// let data = Batch::new(&x, &x, 10)?;
/// let mut batches = Batches::new(10, 4, Sampling::WithoutReplacement, 0, 3, DataOrder::PerMember)?;
/// let (mut xb, mut yb) = (Vec::new(), Vec::new());
/// let batch = batches.next(data, &mut xb, &mut yb)?;
/// assert_eq!((batch.rows, batch.per_member, batches.scale()), (4, Some(3), 2.5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub enum Batches {
    /// [`DataOrder::Shared`] (or full batches in either order).
    Shared(MiniBatcher),
    /// [`DataOrder::PerMember`].
    PerMember(PerMemberBatcher),
}

impl Batches {
    /// Batches of `batch_size` from `n` examples for `members` members; the shared stream is
    /// [`MiniBatcher::new`]'s for `seed`, member `e`'s is `(seed, e)`. Full batches
    /// (`batch_size ≥ n`) are the data set itself in either order.
    ///
    /// # Errors
    /// [`EnsembleError::EmptyBatch`] when `n` or `batch_size` is 0;
    /// [`EnsembleError::ZeroMembers`] for a per-member order of no members.
    pub fn new(
        n: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
        members: usize,
        order: DataOrder,
    ) -> Result<Batches, EnsembleError> {
        Batches::for_members(n, batch_size, sampling, seed, 0..members, order)
    }

    /// The batches of members `members` of a larger ensemble (one process's block of a
    /// member-sharded run): the same batches those members get in [`Batches::new`]'s whole
    /// ensemble (the shared stream, or member `e`'s `(seed, e)`).
    ///
    /// # Errors
    /// As [`Batches::new`] (an empty `members` is [`EnsembleError::ZeroMembers`] in a
    /// per-member order).
    pub fn for_members(
        n: usize,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
        members: Range<usize>,
        order: DataOrder,
    ) -> Result<Batches, EnsembleError> {
        let shared = MiniBatcher::new(n, batch_size, sampling, seed)?;
        Ok(match order {
            DataOrder::PerMember if !shared.is_full_batch() => Batches::PerMember(
                PerMemberBatcher::for_members(n, batch_size, sampling, seed, members)?,
            ),
            _ => Batches::Shared(shared),
        })
    }

    /// [`PerMemberBatcher::holding_out`]'s batches: each member's own order over the rows it
    /// keeps, gathered `[E, |B|, ·]` (also when a batch is all of them).
    ///
    /// # Errors
    /// [`EnsembleError::EmptyBatch`] when `batch_size` is 0.
    pub fn holding_out(
        held_out: &MemberHeldOut,
        batch_size: usize,
        sampling: Sampling,
        seed: u64,
    ) -> Result<Batches, EnsembleError> {
        PerMemberBatcher::holding_out(held_out, batch_size, sampling, seed).map(Batches::PerMember)
    }

    /// `N/|B|` (1 for full batches).
    pub fn scale(&self) -> f64 {
        match self {
            Batches::Shared(b) => b.scale(),
            Batches::PerMember(b) => b.scale(),
        }
    }

    /// Rows one [`Batches::next`] gathers (`|B|`, or `E·|B|` per member); 0 for full batches,
    /// which are the data itself.
    pub fn gathered_rows(&self) -> usize {
        match self {
            Batches::Shared(b) if b.is_full_batch() => 0,
            Batches::Shared(b) => b.batch_size(),
            Batches::PerMember(b) => b.batch_size() * b.members.len(),
        }
    }

    /// Moves past `steps` batches without gathering them (to resume a run).
    pub fn skip(&mut self, steps: usize) {
        match self {
            Batches::Shared(b) if !b.is_full_batch() => {
                for _ in 0..steps {
                    b.next_indices();
                }
            }
            Batches::Shared(_) => {}
            Batches::PerMember(b) => {
                for member in &mut b.members {
                    for _ in 0..steps {
                        member.next_indices();
                    }
                }
            }
        }
    }

    /// Member `e`'s batches on its own, from where this is now (for
    /// [`ensemble_steps_apart`](crate::ensemble_steps_apart)): a copy of the shared stream or
    /// of member `e`'s.
    pub(crate) fn member_batches(&self, e: usize) -> MemberBatches {
        match self {
            Batches::Shared(b) if b.is_full_batch() => MemberBatches::Data,
            Batches::Shared(b) => MemberBatches::Shared(b.clone()),
            Batches::PerMember(b) => MemberBatches::Own(b.members[e].clone()),
        }
    }

    /// Puts back every member's batches after a run apart (`ends[e]` member `e`'s, each having
    /// drawn as many batches): the shared stream is member 0's copy.
    pub(crate) fn set_member_batches(&mut self, ends: Vec<MemberBatches>) {
        match self {
            Batches::Shared(shared) => {
                if let Some(MemberBatches::Shared(b)) = ends.into_iter().next() {
                    *shared = b;
                }
            }
            Batches::PerMember(b) => {
                for (slot, end) in b.members.iter_mut().zip(ends) {
                    if let MemberBatches::Own(end) = end {
                        *slot = end;
                    }
                }
            }
        }
    }

    /// The next batch of `data` (`N` rows): `data` itself for full batches, otherwise rows
    /// gathered into `x_batch` / `y_batch` — shared, or `[E, |B|, ·]` per member.
    ///
    /// # Errors
    /// [`EnsembleError::Autograd`] if `data`'s buffers are not `N` whole rows.
    pub fn next<'a, T: Copy>(
        &mut self,
        data: Batch<'a, T>,
        x_batch: &'a mut Vec<T>,
        y_batch: &'a mut Vec<T>,
    ) -> Result<Batch<'a, T>, EnsembleError> {
        Ok(match self {
            Batches::Shared(b) if b.is_full_batch() => data,
            Batches::Shared(b) => b.shared_batch(data, x_batch, y_batch)?,
            Batches::PerMember(b) => {
                b.next_batch(data.x, data.y, x_batch, y_batch);
                Batch::per_member(x_batch, y_batch, b.batch_size(), b.members.len())?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_replacement_covers_every_example_each_epoch() {
        let mut b = MiniBatcher::new(12, 4, Sampling::WithoutReplacement, 3).unwrap();
        let mut seen: Vec<usize> = (0..3).flat_map(|_| b.next_indices().to_vec()).collect();
        seen.sort();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
    }

    /// Each member's rows in a per-member order are its own stream's, whatever the other
    /// members; skipping `k` batches (a resumed run) lands where `k` batches would; full batches
    /// are the data itself in either order.
    #[test]
    fn batches_in_either_order() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let data = Batch::new(&x, &x, 20).unwrap();
        let (mut xb, mut yb) = (Vec::new(), Vec::new());
        let member_rows = |members: usize, skip: usize, xb: &mut Vec<f64>, yb: &mut Vec<f64>| {
            let mut b = Batches::new(
                20,
                6,
                Sampling::WithoutReplacement,
                7,
                members,
                DataOrder::PerMember,
            )
            .unwrap();
            b.skip(skip);
            let batch = b.next(data, xb, yb).unwrap();
            assert_eq!((batch.rows, batch.per_member), (6, Some(members)));
            batch.x[6..12].to_vec()
        };
        let two = member_rows(2, 0, &mut xb, &mut yb);
        assert_eq!(two, member_rows(5, 0, &mut xb, &mut yb));
        let mut walked = Batches::new(
            20,
            6,
            Sampling::WithoutReplacement,
            7,
            3,
            DataOrder::PerMember,
        )
        .unwrap();
        for _ in 0..4 {
            walked.next(data, &mut xb, &mut yb).unwrap();
        }
        let after_four = walked.next(data, &mut xb, &mut yb).unwrap().x[6..12].to_vec();
        assert_eq!(after_four, member_rows(3, 4, &mut xb, &mut yb));
        let mut shared =
            Batches::new(20, 6, Sampling::WithoutReplacement, 7, 3, DataOrder::Shared).unwrap();
        assert_eq!(
            shared.next(data, &mut xb, &mut yb).unwrap().per_member,
            None
        );
        for order in DataOrder::ALL {
            assert_eq!(DataOrder::from_name(order.name()), Some(order));
            let mut full = Batches::new(20, 20, Sampling::WithoutReplacement, 7, 3, order).unwrap();
            let batch = full.next(data, &mut xb, &mut yb).unwrap();
            assert_eq!((batch.x.as_ptr(), batch.per_member), (x.as_ptr(), None));
        }
    }

    /// A member that holds out its own rows draws only from the rows it keeps — every one of
    /// them once per epoch without replacement, all of them in order as a full batch — and its
    /// draws are the same in a block of the ensemble (one rank's members).
    #[test]
    fn members_never_draw_the_rows_they_hold_out() {
        let split = MemberHeldOut::new(30, 6, 11, 0..4).unwrap();
        for sampling in [Sampling::WithoutReplacement, Sampling::WithReplacement] {
            let mut b = PerMemberBatcher::holding_out(&split, 8, sampling, 3).unwrap();
            assert_eq!(b.scale(), 24.0 / 8.0);
            for m in 0..4 {
                let drawn: Vec<usize> = (0..3)
                    .flat_map(|_| b.member(m).next_indices().to_vec())
                    .collect();
                assert!(drawn.iter().all(|r| split.kept(m).contains(r)), "{drawn:?}");
                if sampling == Sampling::WithoutReplacement {
                    let mut epoch = drawn;
                    epoch.sort();
                    assert_eq!(epoch, split.kept(m));
                }
            }
        }
        let mut full = Batches::holding_out(&split, 100, Sampling::WithoutReplacement, 3).unwrap();
        let x: Vec<f64> = (0..30).map(f64::from).collect();
        let data = Batch::new(&x, &x, 30).unwrap();
        let (mut xb, mut yb) = (Vec::new(), Vec::new());
        let batch = full.next(data, &mut xb, &mut yb).unwrap();
        assert_eq!(
            (batch.rows, batch.per_member, full.scale()),
            (24, Some(4), 1.0)
        );
        let member_1: Vec<f64> = split.kept(1).iter().map(|&r| r as f64).collect();
        assert_eq!(&batch.x[24..48], &member_1[..]);
        let block = MemberHeldOut::new(30, 6, 11, 2..4).unwrap();
        let mut whole =
            PerMemberBatcher::holding_out(&split, 8, Sampling::WithoutReplacement, 3).unwrap();
        let mut part =
            PerMemberBatcher::holding_out(&block, 8, Sampling::WithoutReplacement, 3).unwrap();
        assert_eq!(block.held(1), split.held(3));
        assert_eq!(
            part.member(1).next_indices(),
            whole.member(3).next_indices()
        );
        // Members hold out different rows.
        assert_ne!(split.held(0), split.held(1));
    }

    #[test]
    fn full_batch_has_scale_one_and_natural_order() {
        let mut b = MiniBatcher::new(5, 9, Sampling::WithReplacement, 0).unwrap();
        assert_eq!(b.scale(), 1.0);
        assert_eq!(b.next_indices(), &[0, 1, 2, 3, 4]);
    }
}

/// One member's batches in a run apart ([`Batches::member_batches`]).
#[derive(Clone, Debug)]
pub(crate) enum MemberBatches {
    /// Full batches: the data set itself.
    Data,
    /// A copy of the shared stream: the member's batch is every member's, read as shared rows.
    Shared(MiniBatcher),
    /// The member's own stream: its batch is read as one member's rows of a per-member batch.
    Own(MiniBatcher),
}

impl MemberBatches {
    /// The member's next batch of `data`, as [`Batches::next`] would hand it to the member's
    /// block of one.
    pub(crate) fn next<'a, T: Copy>(
        &mut self,
        data: Batch<'a, T>,
        x_batch: &'a mut Vec<T>,
        y_batch: &'a mut Vec<T>,
    ) -> Result<Batch<'a, T>, EnsembleError> {
        Ok(match self {
            MemberBatches::Data => data,
            MemberBatches::Shared(b) => b.shared_batch(data, x_batch, y_batch)?,
            MemberBatches::Own(b) => {
                b.next_batch(data.x, data.y, x_batch, y_batch);
                Batch::per_member(x_batch, y_batch, b.batch_size(), 1)?
            }
        })
    }
}
