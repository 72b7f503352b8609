//! How many members each thread's block holds: an even split at first, then — when one thread
//! runs persistently slower than another (a core shared with another process, a slower kind of
//! core) — shares in proportion to the threads' measured speeds.

/// Weight of the newest evaluation in each block's moving average of nanoseconds per member.
const SMOOTHING: f64 = 0.1;

/// The least gain, as a fraction of the slowest block's predicted time, that moves members from
/// one block to another: differences within the noise leave the split as it is, so that each
/// member stays in one core's cache from step to step.
const MIN_GAIN: f64 = 0.05;

/// Members per block, in block order, and each block's measured speed.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    sizes: Vec<usize>,
    /// Per block: moving average of its evaluations' nanoseconds per member (0 before the first).
    ns_per_member: Vec<f64>,
    /// Scratch for the proposed sizes.
    proposed: Vec<usize>,
}

impl Shares {
    /// Members per block.
    pub(crate) fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Whether the sizes split `members` members into `blocks` blocks.
    pub(crate) fn fit(&self, members: usize, blocks: usize) -> bool {
        self.sizes.len() == blocks && self.sizes.iter().sum::<usize>() == members
    }

    /// Keeps the sizes if they split `members` members into `blocks` blocks; otherwise starts
    /// again from the even split (`per_block` members a block, the last one fewer) and forgets
    /// the speeds measured.
    pub(crate) fn reset_unless_fit(&mut self, members: usize, per_block: usize, blocks: usize) {
        if self.fit(members, blocks) {
            return;
        }
        self.sizes.clear();
        self.sizes.extend(even(members, per_block));
        self.ns_per_member.clear();
        self.ns_per_member.resize(self.sizes.len(), 0.0);
    }

    /// Takes each block's last evaluation time (nanoseconds, in block order) into its average,
    /// and moves members between blocks if the split in proportion to the averages would
    /// finish the slowest block at least [`MIN_GAIN`] sooner. The split proposed gives each
    /// block one member, then each further member to the block that would finish it first.
    pub(crate) fn record(&mut self, nanoseconds: impl Iterator<Item = u64>) {
        let Shares {
            sizes,
            ns_per_member,
            proposed,
        } = self;
        for ((average, &n), ns) in ns_per_member.iter_mut().zip(sizes.iter()).zip(nanoseconds) {
            if n == 0 || ns == 0 {
                continue;
            }
            let per_member = ns as f64 / n as f64;
            *average = if *average == 0.0 {
                per_member
            } else {
                *average + SMOOTHING * (per_member - *average)
            };
        }
        let blocks = sizes.len();
        let members: usize = sizes.iter().sum();
        if blocks < 2 || members < blocks || ns_per_member.iter().any(|&a| a <= 0.0) {
            return;
        }
        proposed.clear();
        proposed.resize(blocks, 1);
        for _ in blocks..members {
            let finish = |b: usize| (proposed[b] + 1) as f64 * ns_per_member[b];
            let next =
                (1..blocks).fold(0, |best, b| if finish(b) < finish(best) { b } else { best });
            proposed[next] += 1;
        }
        let slowest = |s: &[usize]| {
            s.iter()
                .zip(ns_per_member.iter())
                .map(|(&n, &a)| n as f64 * a)
                .fold(0.0, f64::max)
        };
        if slowest(proposed) < (1.0 - MIN_GAIN) * slowest(sizes) {
            sizes.copy_from_slice(proposed);
        }
    }
}

/// `members` in blocks of `per_block` (at least 1), the last one fewer.
pub(crate) fn even(members: usize, per_block: usize) -> impl Iterator<Item = usize> {
    let per_block = per_block.max(1);
    (0..members)
        .step_by(per_block)
        .map(move |start| per_block.min(members - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persistently_slower_block_gives_members_to_the_faster() {
        let mut shares = Shares::default();
        shares.reset_unless_fit(16, 8, 2);
        assert_eq!(shares.sizes(), [8, 8]);
        // Block 1 runs 10 % slower a member: within the noise, nothing moves.
        for _ in 0..50 {
            shares.record([8_000, 8_800].into_iter());
        }
        assert_eq!(shares.sizes(), [8, 8]);
        // Block 1 now runs 1.5× slower a member: the averages follow, and members move to block
        // 0 — to 10 / 6 (finishing in 10 and 9 units, where 8 / 8 took 12) or, where the
        // averages passed through 9 / 7 on the way, there (10.5 units: the last move to 10 / 6
        // would gain under 5 %).
        for _ in 0..50 {
            let [a, b] = [shares.sizes()[0], shares.sizes()[1]];
            shares.record([a as u64 * 1_000, b as u64 * 1_500].into_iter());
        }
        assert!(
            shares.sizes() == [10, 6] || shares.sizes() == [9, 7],
            "{:?}",
            shares.sizes()
        );
        // The same speeds again: back to 8 / 8, which finishes 20 % sooner than 10 / 6.
        for _ in 0..50 {
            let [a, b] = [shares.sizes()[0], shares.sizes()[1]];
            shares.record([a as u64 * 1_000, b as u64 * 1_000].into_iter());
        }
        assert_eq!(shares.sizes(), [8, 8]);
    }

    #[test]
    fn a_new_count_starts_from_the_even_split() {
        let mut shares = Shares::default();
        shares.reset_unless_fit(13, 5, 3);
        assert_eq!(shares.sizes(), [5, 5, 3]);
        shares.reset_unless_fit(13, 5, 3);
        assert!(shares.fit(13, 3));
        shares.reset_unless_fit(12, 4, 3);
        assert_eq!(shares.sizes(), [4, 4, 4]);
        assert_eq!(even(0, 4).count(), 0);
        // Every block keeps at least one member, however slow.
        for _ in 0..20 {
            shares.record([1_000, 1_000, 1_000_000].into_iter());
        }
        assert_eq!(shares.sizes().iter().sum::<usize>(), 12);
        assert!(
            shares.sizes().iter().all(|&n| n >= 1),
            "{:?}",
            shares.sizes()
        );
    }
}
