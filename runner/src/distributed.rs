//! The processes of a distributed run and the few collective operations flock needs from them:
//! rank, size, an all-gather of bytes in rank order, a broadcast, and a sum in a fixed order.
//!
//! [`SingleProcess`] is the one-machine run (rank 0 of 1); `Mpi` (the `mpi` cargo feature) runs
//! over MPI, started by `mpirun`/`srun`. Work is split into contiguous blocks by rank
//! ([`block`]), and results travel as bytes gathered in rank order, so a distributed run
//! combines them in the order one process would have produced them: the same bits.
//!
//! ```
//! use flock_runner::distributed::{Communicator, SingleProcess, block};
//! let comm = SingleProcess;
//! assert_eq!((comm.rank(), comm.size()), (0, 1));
//! assert_eq!(block(10, 0, 1), 0..10);
//! assert_eq!(comm.all_gather(b"scores"), vec![b"scores".to_vec()]);
//! assert_eq!(comm.sum_in_rank_order(&[1.5, 2.0]), vec![1.5, 2.0]);
//! ```

use core::ops::Range;

/// The processes of a run. Every method is collective — every rank must call it, in the same
/// order — except [`rank`](Communicator::rank), [`size`](Communicator::size) and
/// [`abort`](Communicator::abort).
pub trait Communicator {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Every rank's `local` bytes (lengths may differ), in rank order, on every rank.
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>>;
    /// `root`'s `bytes` on every rank (the others' `bytes` are replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>, root: usize);
    /// Stops every process of the run with exit code `code` (MPI's abort: no rank waits on a
    /// rank that will never answer).
    fn abort(&self, code: i32) -> !;
    /// `Σ_r local_r` element by element, added in rank order (`((l₀ + l₁) + l₂) + …`) on every
    /// rank — the same bits whatever the interconnect does, unlike an MPI reduction whose order
    /// is the library's.
    ///
    /// # Panics
    /// If the ranks' `local` differ in length.
    fn sum_in_rank_order(&self, local: &[f64]) -> Vec<f64> {
        let parts = self.all_gather(&f64_bytes(local));
        let mut sum = vec![0.0; local.len()];
        for (r, part) in parts.iter().enumerate() {
            let values = bytes_f64(part);
            assert_eq!(values.len(), sum.len(), "rank {r} summed another length");
            if r == 0 {
                sum.copy_from_slice(&values);
            } else {
                sum.iter_mut().zip(&values).for_each(|(s, v)| *s += v);
            }
        }
        sum
    }
    /// Whether this is the rank that prints and writes files (rank 0).
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
    /// The ranks that pass the same `color` as a run of their own, ranked in this run's order
    /// (MPI's `MPI_Comm_split`): groups that go their own ways — other datasets, other numbers
    /// of steps — and talk only among themselves. Collective.
    fn split(&self, color: usize) -> Box<dyn Communicator + '_>;
}

/// One process: rank 0 of 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
        vec![local.to_vec()]
    }
    fn broadcast(&self, _bytes: &mut Vec<u8>, root: usize) {
        assert_eq!(root, 0, "a single process has only rank 0");
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn split(&self, _color: usize) -> Box<dyn Communicator + '_> {
        Box::new(SingleProcess)
    }
}

/// Some of a run's ranks seen as a run of their own (a row or a column of a 2-D layout of
/// ranks): rank `i` of the group is the run's rank `ranks[i]`. Its collectives run over the
/// whole run — every rank of the run calls them together, each on its own group — and keep the
/// group's parts, so groups that make the same sequence of calls need no communicator of their
/// own from MPI.
///
/// ```
/// use flock_runner::distributed::{Communicator, SingleProcess, Subgroup};
/// let world = SingleProcess;
/// let group = Subgroup::new(&world, vec![0]).expect("rank 0 is in the group");
/// assert_eq!((group.rank(), group.size()), (0, 1));
/// assert_eq!(group.all_gather(b"x"), vec![b"x".to_vec()]);
/// ```
pub struct Subgroup<'w> {
    world: &'w dyn Communicator,
    ranks: Vec<usize>,
    index: usize,
}

impl<'w> Subgroup<'w> {
    /// The group of the run's ranks `ranks` (in that order), seen from this process — `None`
    /// if this process's rank is not among them.
    pub fn new(world: &'w dyn Communicator, ranks: Vec<usize>) -> Option<Subgroup<'w>> {
        let index = ranks.iter().position(|&r| r == world.rank())?;
        Some(Subgroup {
            world,
            ranks,
            index,
        })
    }
}

impl core::fmt::Debug for Subgroup<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Subgroup(ranks {:?}, this is {})",
            self.ranks, self.index
        )
    }
}

impl Communicator for Subgroup<'_> {
    fn rank(&self) -> usize {
        self.index
    }
    fn size(&self) -> usize {
        self.ranks.len()
    }
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
        let mut all = self.world.all_gather(local);
        self.ranks
            .iter()
            .map(|&r| std::mem::take(&mut all[r]))
            .collect()
    }
    fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) {
        let mut all = self.world.all_gather(bytes);
        *bytes = std::mem::take(&mut all[self.ranks[root]]);
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
    /// The group's ranks of the same color, as another [`Subgroup`] of the same run (so, like
    /// this one, for groups that make the same sequence of calls).
    fn split(&self, color: usize) -> Box<dyn Communicator + '_> {
        let colors = self.all_gather(&(color as u64).to_le_bytes());
        let ranks = colors
            .iter()
            .zip(&self.ranks)
            .filter(|(c, _)| c[..] == (color as u64).to_le_bytes())
            .map(|(_, &r)| r)
            .collect();
        Box::new(Subgroup::new(self.world, ranks).expect("this rank has its own color"))
    }
}

/// Rank `rank`'s contiguous share of `n` items split over `size` ranks: the first `n mod size`
/// ranks take one more.
///
/// ```
/// use flock_runner::distributed::block;
/// // 20 splits over 3 ranks: 7, 7, 6.
/// assert_eq!([block(20, 0, 3), block(20, 1, 3), block(20, 2, 3)], [0..7, 7..14, 14..20]);
/// ```
pub fn block(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Little-endian bytes of `values`.
pub(crate) fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The values of [`f64_bytes`].
///
/// # Panics
/// If the length is not a multiple of 8.
pub(crate) fn bytes_f64(bytes: &[u8]) -> Vec<f64> {
    assert!(bytes.len().is_multiple_of(8), "not a list of f64");
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[cfg(feature = "mpi")]
pub use self::mpi_world::Mpi;

#[cfg(feature = "mpi")]
mod mpi_world {
    use mpi::Count;
    use mpi::datatype::PartitionMut;
    use mpi::environment::Universe;
    use mpi::topology::Color;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

    use super::Communicator;

    /// The processes `mpirun`/`srun` started (MPI's world), initialised once per process; MPI
    /// is finalised when this is dropped.
    pub struct Mpi {
        world: MpiGroup,
        // Dropped last: finalises MPI.
        _universe: Universe,
    }

    /// An MPI communicator: the world, or a split of it.
    struct MpiGroup(SimpleCommunicator);

    impl core::fmt::Debug for Mpi {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "Mpi(rank {} of {})", self.rank(), self.size())
        }
    }

    impl Mpi {
        /// Initialises MPI (`None` if it was initialised already in this process).
        pub fn initialize() -> Option<Mpi> {
            let universe = mpi::initialize()?;
            Some(Mpi {
                world: MpiGroup(universe.world()),
                _universe: universe,
            })
        }
    }

    /// A length as MPI's count type.
    fn count(n: usize) -> Count {
        Count::try_from(n).expect("a message of fewer than 2³¹ bytes")
    }

    impl Communicator for Mpi {
        fn rank(&self) -> usize {
            self.world.rank()
        }
        fn size(&self) -> usize {
            self.world.size()
        }
        fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
            self.world.all_gather(local)
        }
        fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) {
            self.world.broadcast(bytes, root);
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
        fn split(&self, color: usize) -> Box<dyn Communicator + '_> {
            self.world.split(color)
        }
    }

    impl Communicator for MpiGroup {
        fn rank(&self) -> usize {
            usize::try_from(self.0.rank()).expect("a rank ≥ 0")
        }
        fn size(&self) -> usize {
            usize::try_from(self.0.size()).expect("a size ≥ 1")
        }
        fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
            let mut counts = vec![0 as Count; self.size()];
            self.0.all_gather_into(&count(local.len()), &mut counts[..]);
            let displacements: Vec<Count> = counts
                .iter()
                .scan(0, |at, &c| {
                    let here = *at;
                    *at += c;
                    Some(here)
                })
                .collect();
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let mut all = vec![0u8; total];
            {
                let mut parts = PartitionMut::new(&mut all[..], &counts[..], &displacements[..]);
                self.0.all_gather_varcount_into(local, &mut parts);
            }
            counts
                .iter()
                .zip(&displacements)
                .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
                .collect()
        }
        fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) {
            let root = self.0.process_at_rank(count(root));
            let mut len = count(bytes.len());
            root.broadcast_into(&mut len);
            bytes.resize(len as usize, 0);
            root.broadcast_into(&mut bytes[..]);
        }
        fn abort(&self, code: i32) -> ! {
            self.0.abort(code)
        }
        fn split(&self, color: usize) -> Box<dyn Communicator + '_> {
            let color = Color::with_value(i32::try_from(color).expect("a color below 2³¹"));
            Box::new(MpiGroup(
                self.0
                    .split_by_color(color)
                    .expect("a defined color gives a communicator"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_item_once_in_order() {
        for n in 0..30 {
            for size in 1..7 {
                let blocks: Vec<Range<usize>> = (0..size).map(|r| block(n, r, size)).collect();
                assert_eq!(blocks[0].start, 0);
                assert_eq!(blocks[size - 1].end, n);
                for w in blocks.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
                }
            }
        }
    }

    #[test]
    fn bytes_round_trip() {
        let v = [1.5, -0.0, f64::MAX, 1e-310];
        let back = bytes_f64(&f64_bytes(&v));
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
