//! The optimizer state of an ensemble, split into the blocks of members its log-joint evaluates
//! apart ([`LogJoint::member_blocks`](flock_autograd::LogJoint::member_blocks)), so each block is
//! stepped on the thread that computed its gradients.

use core::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use flock_optim::{Layout, MemberState};

/// One block's part of the optimizer state.
#[derive(Debug)]
pub(crate) struct OptBlock<S> {
    /// Its members.
    pub range: Range<usize>,
    /// The optimizer's layout of those members.
    pub layout: Layout,
    /// Its state; locked once per step by the thread that updates the block.
    pub state: Mutex<S>,
    /// Set by a step that left the block for the calling thread (a member did not evaluate to
    /// finite values).
    pub pending: AtomicBool,
}

impl<S: Clone> Clone for OptBlock<S> {
    fn clone(&self) -> Self {
        OptBlock {
            range: self.range.clone(),
            layout: self.layout.clone(),
            state: Mutex::new(lock(&self.state).clone()),
            pending: AtomicBool::new(false),
        }
    }
}

fn lock<S>(m: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An ensemble's optimizer state held in contiguous blocks of members. Splitting and joining are
/// exact ([`MemberState::split_off`] / [`MemberState::append`]): the blocks hold what one state of
/// the whole ensemble would, however they are cut.
#[derive(Clone, Debug)]
pub struct OptimizerBlocks<S> {
    pub(crate) blocks: Vec<OptBlock<S>>,
    layout: Layout,
}

impl<S: MemberState> OptimizerBlocks<S> {
    /// The state of every member in one block.
    pub(crate) fn whole(state: S, layout: Layout) -> Self {
        OptimizerBlocks {
            blocks: vec![OptBlock {
                range: 0..layout.members(),
                layout: layout.clone(),
                state: Mutex::new(state),
                pending: AtomicBool::new(false),
            }],
            layout,
        }
    }

    fn members(&self) -> usize {
        self.layout.members()
    }

    /// The blocks' member ranges, in order.
    fn cut(&self) -> impl Iterator<Item = &Range<usize>> {
        self.blocks.iter().map(|b| &b.range)
    }

    /// Whether the blocks are `ranges`.
    fn is_split_as(&self, ranges: &[Range<usize>]) -> bool {
        self.cut().eq(ranges)
    }

    /// Re-cuts the blocks as `ranges` (contiguous, in order, covering every member); nothing
    /// moves when they already are.
    ///
    /// # Panics
    /// If `ranges` do not cover the members in order.
    pub(crate) fn split_as(&mut self, ranges: &[Range<usize>]) {
        if self.is_split_as(ranges) {
            return;
        }
        let members = self.members();
        let covers = ranges.first().is_some_and(|r| r.start == 0)
            && ranges.last().is_some_and(|r| r.end == members)
            && ranges
                .windows(2)
                .all(|w| w[0].end == w[1].start && w[0].start <= w[0].end);
        assert!(
            covers,
            "member blocks {ranges:?} do not cover the ensemble's {members} members in order"
        );
        let mut whole = self.joined_in_place();
        let mut parts = Vec::with_capacity(ranges.len());
        for r in ranges.iter().rev() {
            let tail = whole.split_off(r.start, r.end);
            parts.push(OptBlock {
                range: r.clone(),
                layout: self.layout.block(r.clone()),
                state: Mutex::new(tail),
                pending: AtomicBool::new(false),
            });
        }
        parts.reverse();
        self.blocks = parts;
    }

    /// Joins every block into one state, leaving no blocks behind.
    fn joined_in_place(&mut self) -> S {
        let mut blocks = core::mem::take(&mut self.blocks).into_iter();
        let first = blocks
            .next()
            .expect("an optimizer state has at least one block");
        let mut whole = first.state.into_inner().unwrap_or_else(|p| p.into_inner());
        for b in blocks {
            whole.append(b.state.into_inner().unwrap_or_else(|p| p.into_inner()));
        }
        whole
    }

    /// The state of every member in one piece (a copy).
    pub fn joined(&self) -> S {
        self.clone().joined_in_place()
    }

    /// The state of every member in one piece, in place (the next step splits it again).
    pub fn whole_mut(&mut self) -> &mut S {
        let members = self.members();
        self.split_as(core::slice::from_ref(&(0..members)));
        self.blocks[0]
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Overwrites member `e`'s state with its state in `from` (a snapshot of the same
    /// ensemble's state taken earlier).
    pub fn copy_member(&mut self, from: &OptimizerBlocks<S>, e: usize) {
        if !self.cut().eq(from.cut()) {
            self.split_as(&from.cut().cloned().collect::<Vec<_>>());
        }
        if let Some((to, from)) = self
            .blocks
            .iter_mut()
            .zip(&from.blocks)
            .find(|(b, _)| b.range.contains(&e))
        {
            let members = to.range.len();
            let local = e - to.range.start;
            to.state
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .copy_member(&lock(&from.state), local, members);
        }
    }
}
