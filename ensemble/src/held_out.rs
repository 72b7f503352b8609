//! Each member's own held-out rows, for a per-member data order with early stopping.

use core::ops::Range;

use crate::{EnsembleError, member_rng, shuffle};

/// The rows each member sets aside for early stopping when members draw their own batches:
/// member `e` holds out `held` of the `rows` rows — the first `held` of a permutation drawn from
/// the stream `(seed, e)` — and trains on the others. A member's rows depend only on `(seed, e)`,
/// like its batches, and the members together train on (almost) every row, as an ensemble of
/// scikit-learn `MLPClassifier(early_stopping=True)`s with one `random_state` per member does.
///
/// [`PerMemberBatcher::holding_out`](crate::PerMemberBatcher::holding_out) draws each member's
/// batches from its kept rows; [`MemberHeldOut::gather`] stacks the held-out rows
/// `[E, held, ·]` for scoring each member on its own
/// ([`Batch::per_member`](flock_autograd::Batch::per_member)).
///
/// ```
/// use flock_ensemble::MemberHeldOut;
/// let split = MemberHeldOut::new(10, 2, 7, 0..3)?;
/// for m in 0..3 {
///     let (held, kept) = (split.held(m), split.kept(m));
///     assert_eq!((held.len(), kept.len()), (2, 8));
///     assert!(held.iter().all(|r| !kept.contains(r)));
/// }
/// // Member 2's rows are the same in a block of the ensemble (one rank's members).
/// assert_eq!(MemberHeldOut::new(10, 2, 7, 2..3)?.held(0), split.held(2));
/// let x: Vec<f64> = (0..10).map(f64::from).collect();
/// let (hx, hy) = split.gather(&x, &x);
/// assert_eq!((hx.len(), &hx[..2]), (6, split.held(0).iter().map(|&r| r as f64).collect::<Vec<_>>().as_slice()));
/// # let _ = hy;
/// # Ok::<(), flock_ensemble::EnsembleError>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemberHeldOut {
    rows: usize,
    members: Range<usize>,
    /// Per member of the block: its held-out rows, ascending.
    held: Vec<Vec<usize>>,
    /// Per member of the block: the rows it trains on, ascending.
    kept: Vec<Vec<usize>>,
}

impl MemberHeldOut {
    /// `held` of `rows` rows held out by each of the ensemble's members `members`, member `e`'s
    /// drawn from the stream `(seed, e)`.
    ///
    /// # Errors
    /// [`EnsembleError::InvalidArgument`] when `held` leaves no row on one side;
    /// [`EnsembleError::ZeroMembers`] when `members` is empty.
    pub fn new(
        rows: usize,
        held: usize,
        seed: u64,
        members: Range<usize>,
    ) -> Result<MemberHeldOut, EnsembleError> {
        if held == 0 || held >= rows {
            return Err(EnsembleError::InvalidArgument {
                name: "held",
                value: held as f64,
                expected: "at least one held-out row and one training row per member",
            });
        }
        if members.is_empty() {
            return Err(EnsembleError::ZeroMembers);
        }
        let (mut all_held, mut all_kept) = (Vec::new(), Vec::new());
        for e in members.clone() {
            let mut order: Vec<usize> = (0..rows).collect();
            shuffle(&mut member_rng(seed, e), &mut order);
            let mut is_held = vec![false; rows];
            for &r in &order[..held] {
                is_held[r] = true;
            }
            let (h, k): (Vec<usize>, Vec<usize>) = (0..rows).partition(|&r| is_held[r]);
            all_held.push(h);
            all_kept.push(k);
        }
        Ok(MemberHeldOut {
            rows,
            members,
            held: all_held,
            kept: all_kept,
        })
    }

    /// Rows of the data set.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The ensemble's members this split is for.
    pub fn members(&self) -> Range<usize> {
        self.members.clone()
    }

    /// Rows each member holds out.
    pub fn held_per_member(&self) -> usize {
        self.held[0].len()
    }

    /// The held-out rows of the block's member `m` (the ensemble's `members().start + m`),
    /// ascending.
    ///
    /// # Panics
    /// If `m` is not a member of the block.
    pub fn held(&self, m: usize) -> &[usize] {
        &self.held[m]
    }

    /// The rows the block's member `m` trains on, ascending.
    ///
    /// # Panics
    /// If `m` is not a member of the block.
    pub fn kept(&self, m: usize) -> &[usize] {
        &self.kept[m]
    }

    /// Every member's held-out rows of `x` and `y` (each `rows()` whole rows), stacked
    /// `[E, held, ·]` in member order.
    pub fn gather<T: Copy>(&self, x: &[T], y: &[T]) -> (Vec<T>, Vec<T>) {
        let (dx, dy) = (x.len() / self.rows, y.len() / self.rows);
        let mut hx = Vec::with_capacity(self.held.len() * self.held_per_member() * dx);
        let mut hy = Vec::with_capacity(self.held.len() * self.held_per_member() * dy);
        for rows in &self.held {
            for &r in rows {
                hx.extend_from_slice(&x[r * dx..(r + 1) * dx]);
                hy.extend_from_slice(&y[r * dy..(r + 1) * dy]);
            }
        }
        (hx, hy)
    }
}
