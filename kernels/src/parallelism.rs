//! How a kernel may use threads — always an explicit argument, never a global setting.

/// Whether a kernel may split its work over rayon's thread pool.
///
/// Tiny problems are faster on one thread: with [`Parallelism::Rayon`], a kernel still runs
/// sequentially when its total work is below `min_flops`, so the same call is right for the
/// seed's 80×32×32 products and for large batches. Results are bitwise identical either way:
/// work is split only over members and row blocks, never inside one output element's sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// Run on the calling thread.
    #[default]
    Sequential,
    /// Use the current rayon pool when the call does at least `min_flops` floating-point
    /// operations.
    Rayon {
        /// Work below which the call stays on the calling thread.
        min_flops: usize,
    },
}

impl Parallelism {
    /// The default work threshold for [`Parallelism::Rayon`]: about 50 µs of one core's work,
    /// well above the cost of waking rayon's workers.
    pub const DEFAULT_MIN_FLOPS: usize = 4 << 20;

    /// [`Parallelism::Rayon`] with [`Parallelism::DEFAULT_MIN_FLOPS`].
    pub const fn rayon() -> Self {
        Parallelism::Rayon {
            min_flops: Self::DEFAULT_MIN_FLOPS,
        }
    }

    /// Whether a call doing `flops` operations should go parallel.
    pub fn should_split(self, flops: usize) -> bool {
        match self {
            Parallelism::Sequential => false,
            Parallelism::Rayon { min_flops } => {
                flops >= min_flops && rayon::current_num_threads() > 1
            }
        }
    }
}
