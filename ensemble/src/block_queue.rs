//! The blocks of one evaluation, shared out among threads: each thread takes its own blocks
//! first, front to back, then the others' from the far end of whichever has the most left.

/// The most blocks one evaluation is split into.
pub(crate) const MAX_BLOCKS: usize = 64;

/// Blocks `0..n` (`n ≤ MAX_BLOCKS`) held for `threads` threads: thread `t`'s own blocks are the
/// contiguous run `t·n/threads..(t+1)·n/threads`, so that with steady threads each block goes to
/// the same thread (and its members' values stay in that core's cache) step after step, while
/// a thread that runs ahead takes blocks off a slower one's end.
///
/// ```text
/// two threads, 8 blocks:  thread 0 → 0 1 2 3      thread 1 → 4 5 6 7
/// thread 0 done first:    it takes 7, then 6, … while thread 1 works on 4, 5, …
/// ```
pub(crate) struct BlockQueue<B> {
    slots: [Option<B>; MAX_BLOCKS],
    /// Thread `t`'s blocks not yet taken: `next[t]..end[t]`.
    next: [usize; MAX_BLOCKS],
    end: [usize; MAX_BLOCKS],
    threads: usize,
}

impl<B> BlockQueue<B> {
    /// The blocks `blocks` yields, in order — at most [`MAX_BLOCKS`], which the caller makes
    /// sure of — for `threads` threads (at least 1; threads past [`MAX_BLOCKS`] have no blocks
    /// of their own and only take others').
    pub(crate) fn new(mut blocks: impl Iterator<Item = B>, threads: usize) -> BlockQueue<B> {
        let mut slots: [Option<B>; MAX_BLOCKS] = core::array::from_fn(|_| None);
        let mut n = 0;
        for (slot, block) in slots.iter_mut().zip(&mut blocks) {
            *slot = Some(block);
            n += 1;
        }
        debug_assert!(blocks.next().is_none(), "more than MAX_BLOCKS blocks");
        let threads = threads.clamp(1, MAX_BLOCKS);
        let start = |t: usize| t * n / threads;
        BlockQueue {
            slots,
            next: core::array::from_fn(start),
            end: core::array::from_fn(|t| if t < threads { start(t + 1) } else { 0 }),
            threads,
        }
    }

    /// The next block for thread `thread` and its index: its own next one, or else the last
    /// one left of the thread with the most left; `None` when every block is taken.
    pub(crate) fn take(&mut self, thread: usize) -> Option<(usize, B)> {
        let own = thread.min(self.threads - 1);
        let index = if thread < self.threads && self.next[own] < self.end[own] {
            self.next[own] += 1;
            self.next[own] - 1
        } else {
            let fullest = (0..self.threads).max_by_key(|&u| self.end[u] - self.next[u])?;
            if self.end[fullest] == self.next[fullest] {
                return None;
            }
            self.end[fullest] -= 1;
            self.end[fullest]
        };
        self.slots[index].take().map(|block| (index, block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut BlockQueue<usize>, order: &[usize]) -> Vec<(usize, usize)> {
        let mut taken = Vec::new();
        for &t in order.iter().cycle() {
            match queue.take(t) {
                Some((i, b)) => {
                    assert_eq!(i, b);
                    taken.push((t, i));
                }
                None => break,
            }
        }
        taken
    }

    #[test]
    fn each_thread_takes_its_own_blocks_then_the_far_end_of_the_fullest() {
        let mut q = BlockQueue::new(0..8, 2);
        // Thread 0 runs three times as fast as thread 1.
        let taken = drain(&mut q, &[0, 0, 0, 1]);
        assert_eq!(
            taken,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 4),
                (0, 3),
                (0, 7),
                (0, 6),
                (1, 5)
            ]
        );
        // Steady threads: each takes exactly its own.
        let mut q = BlockQueue::new(0..8, 2);
        let taken = drain(&mut q, &[0, 1]);
        assert!(taken.iter().all(|&(t, i)| t == i / 4), "{taken:?}");
    }

    #[test]
    fn every_block_is_taken_once_whatever_the_threads() {
        for n in [0, 1, 3, 5, 8, 13, MAX_BLOCKS] {
            for threads in [1, 2, 3, 6, 7, 70] {
                for order in [vec![0], vec![1, 0], vec![2, 2, 0, 5], vec![69, 0]] {
                    let mut q = BlockQueue::new(0..n, threads);
                    let mut taken: Vec<usize> = drain(&mut q, &order).iter().map(|t| t.1).collect();
                    taken.sort_unstable();
                    assert_eq!(taken, (0..n).collect::<Vec<_>>(), "{n} blocks, {threads}");
                }
            }
        }
    }
}
