//! The register-blocked microkernel: one `ROWS × NR` tile of `C`, `NR` being two, three (AVX2)
//! or four (AVX-512) vectors (one to three for the last, narrower panel of a product whose
//! columns are not a whole number of tiles).
//!
//! The tile keeps `ROWS × vectors` accumulators in registers. Each step of the `k` loop loads one
//! row of the (packed or already contiguous) `B` panel as vectors and broadcasts `ROWS`
//! elements of `op(A)` straight from memory, so `A` is never packed: at the seed's sizes packing
//! `A` would cost as much as the product itself.
//!
//! Every element of `C` is the same sequential chain of FMAs over `k` whatever the tile shape, so
//! the shape choice ([`TileShape::for_columns`]) never changes a bit of the result.

use core::ops::Range;

use crate::frame::align_frame;
use crate::{Element, SimdVector};

/// Rows of `C` per two-vector tile. With AVX-512 there are 32 vector registers: 8 rows × 2
/// vectors = 16 accumulators; with 16 registers (AVX2, SSE) 6 or 4 rows leave room for the loads.
pub(crate) const MR: usize = if cfg!(target_feature = "avx512f") {
    8
} else if cfg!(target_feature = "avx") {
    6
} else {
    4
};

/// Rows of `C` per four-vector tile (AVX-512 only): 6 rows × 4 vectors = 24 accumulators, 4
/// loads and 6 broadcasts per 24 FMAs (the two-vector tile needs 2 and 8 per 16).
const MR_WIDE: usize = 6;

/// Rows of `C` per three-vector tile (16-register AVX2 builds, f64, for crowded operands: see
/// [`TileShape::for_columns`]): 4 rows × 3 vectors = 12 accumulators, 3 loads and 4 broadcasts
/// per 12 FMAs.
const MR_THREE: usize = 4;

/// Whether the build has AVX2's 16 vector registers (AVX without AVX-512).
const SIXTEEN_YMM: bool = cfg!(target_feature = "avx") && !cfg!(target_feature = "avx512f");

/// The shape of the tiles that sweep one product's `C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    /// Vectors per tile row: 2, 3 or 4 (1 to 3 in a narrower last panel).
    pub vectors: usize,
    /// Rows per full tile.
    pub rows: usize,
}

impl TileShape {
    /// Four-vector tiles where the build has AVX-512's 32 registers and `C` has at least four
    /// vectors of columns; in AVX2 builds, f64 tiles of three vectors and [`MR_THREE`] rows for a
    /// `crowded` product (`op(A)` read down its columns, as in the weight gradient `dYᵀ·X`, or a
    /// `B` panel packed because its rows crowd their L1 sets) of at least 32 columns; two-vector
    /// tiles otherwise.
    ///
    /// Measured (one thread, the three products of a layer, alternated builds): four vectors lift
    /// f64 at E=64 B=256 64→64 from 45–75 % of the FMA peak to 53–85 % with the operands streamed
    /// from L3, and from 79–93 % to 91–97 % with them in L2 (E=4); f64 at the seed's 32→32 from
    /// 70–86 % to 84–91 %; f32 at 64→64 (E=4) from 89–98 % to 94–99 %. Below four vectors (the
    /// seed's f32 32 columns) the padding would waste half the tile.
    ///
    /// Three vectors, f64 (x86-64-v3 build on an Intel Xeon, one thread, `gflops`, the median
    /// paired ratio of 6–8 alternated runs, each pair's two binaries back to back; two series):
    /// E=16 B=80 128→128 `dYᵀ·X` +6 / +11 %, `dY·W` (its `B` packed for the set conflicts) +7 /
    /// +12 %; `dYᵀ·X` at E=64 B=256 64→64 +3 / +4 %, E=5 B=100 200→200 +2 / +8 %, 784→200
    /// +1 / +5 %. Left out: `B` panels used in place (784→200 `dY·W` −12 % when every product
    /// had three vectors), the forward `X·Wᵀ` (−2 … +1 %) and f32 (−4 … +8 % for the same
    /// products in two series, no consistent sign). The seed's f64 32→32 `dYᵀ·X` (32 columns:
    /// 12 + 12 + 8), left out there too, takes them since it was measured on a Zen 3 (native
    /// AVX2, five alternated `gflops` runs, % of the peak beside it): 77–79 % against 75–76 %.
    pub fn for_columns<T: Element>(n: usize, crowded: bool) -> Self {
        let lanes = <T::Vector as SimdVector>::LANES;
        if cfg!(target_feature = "avx512f") && n >= 4 * lanes {
            Self {
                vectors: 4,
                rows: MR_WIDE,
            }
        } else if SIXTEEN_YMM && crowded && n >= 32 && core::mem::size_of::<T>() == 8 {
            Self::THREE
        } else {
            Self {
                vectors: 2,
                rows: MR,
            }
        }
    }

    /// AVX2's three-vector tile.
    const THREE: Self = Self {
        vectors: 3,
        rows: MR_THREE,
    };

    /// Whether panels of `B` whose rows crowd their L1 sets are packed for this shape (see
    /// `gemm`'s `l1_set_conflict`): the two-vector tiles, for which that was measured, and AVX2's
    /// three-vector ones, chosen for such products. AVX-512's four-vector tiles, and the narrower
    /// last panels beside them, read them in place.
    pub fn packs_crowded_panels(self) -> bool {
        self.vectors == 2 || self == Self::THREE
    }

    /// The tile for a last panel of `cols < NR` columns: as few vectors as cover them, so that
    /// e.g. 200 f32 columns cost 3 × 64 + 16 rather than 4 × 64 lanes of work (measured one
    /// thread, AVX-512, E=5 B=100 200→200 f32: see `gemm`'s module note). `MR` rows: up to three
    /// vectors × 8 rows fit AVX-512's 32 registers with the loads, one vector × 6 AVX2's 16.
    pub fn for_remainder<T: Element>(self, cols: usize) -> Self {
        let lanes = <T::Vector as SimdVector>::LANES;
        let vectors = cols.div_ceil(lanes).min(self.vectors);
        if vectors == self.vectors {
            self
        } else {
            Self { vectors, rows: MR }
        }
    }

    /// Columns of `C` per tile (`NR`) for element type `T`.
    pub fn nr<T: Element>(self) -> usize {
        self.vectors * <T::Vector as SimdVector>::LANES
    }
}

/// Pointers and strides of one tile.
#[derive(Clone, Copy)]
pub(crate) struct Tile<T> {
    /// Length of the shared dimension.
    pub k: usize,
    /// `op(A)[i, p]` is at `a + i·a_rs + p·a_cs`.
    pub a: *const T,
    pub a_rs: usize,
    pub a_cs: usize,
    /// Row `p` of the `B` panel starts at `b + p·b_rs` and holds `NR` contiguous readable values.
    pub b: *const T,
    pub b_rs: usize,
    /// `C[i, j]` is at `c + i·c_rs + j`.
    pub c: *mut T,
    pub c_rs: usize,
    /// Valid columns of this tile (`≤ NR`); the rest of the panel is padding.
    pub cols: usize,
    pub alpha: T,
    pub beta: T,
}

/// Computes `C[..ROWS, ..cols] = α·op(A)·B + β·C` for one tile of `NV` vectors per row; `β = 0`
/// never reads `C`.
///
/// # Safety
/// Every address described by `t` for `ROWS` rows, `k` steps and `NR` panel columns must be
/// valid (reads) and `C`'s `ROWS × cols` tile must be valid for writes and not aliased.
#[inline(always)]
unsafe fn tile_wide<T: Element, const ROWS: usize, const NV: usize>(t: Tile<T>) {
    align_frame_if_spilling::<ROWS, NV>();
    let lanes = <T::Vector as SimdVector>::LANES;
    let row_offsets = a_row_offsets::<ROWS>(t.a_rs);
    let mut tile = TileAcc::<T::Vector, ROWS, NV>::zero();
    // SAFETY: all `ROWS` rows of op(A) and the panel's `k` rows are readable, as the caller
    // promises.
    unsafe { tile.steps(&t, t.a, &row_offsets, 0..ROWS, 0..t.k) };
    let acc = tile.acc;
    let alpha = T::Vector::splat(t.alpha);
    let beta = T::Vector::splat(t.beta);
    let beta_is_zero = t.beta == T::ZERO;
    if t.cols == NV * lanes {
        for i in 0..ROWS {
            // SAFETY: a full tile row of C is writable.
            unsafe {
                let crow = t.c.add(i * t.c_rs);
                for (v, acc_v) in acc.iter().enumerate() {
                    let mut r = acc_v[i] * alpha;
                    if !beta_is_zero {
                        r = beta.mul_add(T::Vector::load(crow.add(v * lanes)), r);
                    }
                    r.store(crow.add(v * lanes));
                }
            }
        }
    } else {
        let mut row = [T::ZERO; 4 * crate::simd::MAX_LANES];
        for i in 0..ROWS {
            // SAFETY: `row` holds NV ≤ 4 vectors; only the first `cols` entries of C's row are
            // touched.
            unsafe {
                for (v, acc_v) in acc.iter().enumerate() {
                    (acc_v[i] * alpha).store(row.as_mut_ptr().add(v * lanes));
                }
                let crow = t.c.add(i * t.c_rs);
                for (j, &r) in row.iter().enumerate().take(t.cols) {
                    let cij = crow.add(j);
                    *cij = if beta_is_zero {
                        r
                    } else {
                        t.beta.mul_add(*cij, r)
                    };
                }
            }
        }
    }
}

/// Vector registers of this build: 32 with AVX-512, 16 otherwise.
const VECTOR_REGISTERS: usize = if cfg!(target_feature = "avx512f") {
    32
} else {
    16
};

/// [`align_frame`] for a tile whose `ROWS × NV` accumulators, `NV` loaded vectors and one
/// broadcast need more registers than the build has — the tiles whose `k` loop spills (see
/// [`crate::frame`]); the others keep every vector in registers and skip it.
#[inline(always)]
fn align_frame_if_spilling<const ROWS: usize, const NV: usize>() {
    if ROWS * NV + NV + 1 > VECTOR_REGISTERS {
        align_frame();
    }
}

/// `i · a_rs` for each row `i` of a tile, made opaque to the optimiser so that it holds them in
/// registers and addresses row `i`'s broadcast as `[a + offset_i]`: left to itself it walks
/// down the rows by a chain of additions each `k` step (five for six rows), which on Intel cores
/// compete for the ports the FMAs issue on (Zen's integer and vector pipes are apart).
///
/// Measured on an Intel Xeon (AVX-512 machine, the `x86-64-v3` AVX2 build, one thread, three
/// alternated runs of `gflops`): the 128→128 products f32 75–80 → 77–83 % of the FMA peak, f64
/// 69–78 → 70–82 %, the others unchanged or up; the wide step f64 on two threads 1.76–1.92 →
/// 1.71–1.75 ms. The AVX-512 build: unchanged within its (larger) noise.
#[inline(always)]
fn a_row_offsets<const ROWS: usize>(a_rs: usize) -> [usize; ROWS] {
    core::array::from_fn(|i| opaque(i * a_rs))
}

/// `x`, its value hidden from the optimiser without a trip through memory (as
/// `core::hint::black_box` takes).
#[inline(always)]
fn opaque(x: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let mut x = x;
        // SAFETY: the template is a comment: no instruction runs, no memory, stack or flag is
        // touched; the register operand only makes `x` opaque.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        x
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        core::hint::black_box(x)
    }
}

/// `count` tiles of `ROWS` rows and `NV` vectors stacked down from `t`: where they
/// are whole and `C` receives `acc` (`α = 1, β = 0`) or `C + acc` (`α = 1, β = 1`) — every
/// product of the tape — through [`tile_column`], through [`tile_wide`] otherwise.
///
/// # Safety
/// As [`tile_wide`], for each tile.
#[inline(always)]
unsafe fn stacked_tiles<T: Element, const ROWS: usize, const NV: usize>(t: Tile<T>, count: usize) {
    let whole = t.cols == NV * <T::Vector as SimdVector>::LANES;
    let stores_acc = whole && t.alpha == T::ONE;
    // SAFETY: forwarded from the caller.
    unsafe {
        match (
            stores_acc && t.beta == T::ZERO,
            stores_acc && t.beta == T::ONE,
        ) {
            (true, _) => tile_column::<T, ROWS, NV, false>(t, count),
            (_, true) => tile_column::<T, ROWS, NV, true>(t, count),
            _ => repeat(t, ROWS, count, |t| tile_wide::<T, ROWS, NV>(t)),
        }
    }
}

/// Runs the tile kernel of `shape` for `count` tiles of `rows ≤ shape.rows` rows, one below the
/// other (tile `i` is `t` moved down by `i·rows` rows of `op(A)` and `C`): a panel's run of
/// equal tiles is one call.
///
/// # Safety
/// As [`tile_wide`] with `ROWS = rows` and `NR = shape.nr::<T>()`, for each tile.
#[inline]
pub(crate) unsafe fn tile_rows<T: Element>(
    shape: TileShape,
    rows: usize,
    t: Tile<T>,
    count: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if shape.vectors == 4 {
            match rows {
                1 => stacked_tiles::<T, 1, 4>(t, count),
                2 => stacked_tiles::<T, 2, 4>(t, count),
                3 => stacked_tiles::<T, 3, 4>(t, count),
                4 => stacked_tiles::<T, 4, 4>(t, count),
                5 => stacked_tiles::<T, 5, 4>(t, count),
                6 => stacked_tiles::<T, 6, 4>(t, count),
                _ => unreachable!("tile rows {rows} exceed {MR_WIDE}"),
            }
        } else if shape.vectors == 3 {
            match rows {
                1 => stacked_tiles::<T, 1, 3>(t, count),
                2 => stacked_tiles::<T, 2, 3>(t, count),
                3 => stacked_tiles::<T, 3, 3>(t, count),
                4 => stacked_tiles::<T, 4, 3>(t, count),
                5 => repeat(t, 5, count, |t| tile_wide::<T, 5, 3>(t)),
                6 => repeat(t, 6, count, |t| tile_wide::<T, 6, 3>(t)),
                7 => repeat(t, 7, count, |t| tile_wide::<T, 7, 3>(t)),
                8 => repeat(t, 8, count, |t| tile_wide::<T, 8, 3>(t)),
                _ => unreachable!("tile rows {rows} exceed MR = {MR}"),
            }
        } else if shape.vectors == 1 {
            match rows {
                1 => repeat(t, 1, count, |t| tile_wide::<T, 1, 1>(t)),
                2 => repeat(t, 2, count, |t| tile_wide::<T, 2, 1>(t)),
                3 => repeat(t, 3, count, |t| tile_wide::<T, 3, 1>(t)),
                4 => repeat(t, 4, count, |t| tile_wide::<T, 4, 1>(t)),
                5 => repeat(t, 5, count, |t| tile_wide::<T, 5, 1>(t)),
                6 => repeat(t, 6, count, |t| tile_wide::<T, 6, 1>(t)),
                7 => repeat(t, 7, count, |t| tile_wide::<T, 7, 1>(t)),
                8 => repeat(t, 8, count, |t| tile_wide::<T, 8, 1>(t)),
                _ => unreachable!("tile rows {rows} exceed MR = {MR}"),
            }
        } else {
            match rows {
                1 => stacked_tiles::<T, 1, 2>(t, count),
                2 => stacked_tiles::<T, 2, 2>(t, count),
                3 => stacked_tiles::<T, 3, 2>(t, count),
                4 => stacked_tiles::<T, 4, 2>(t, count),
                5 => stacked_tiles::<T, 5, 2>(t, count),
                6 => stacked_tiles::<T, 6, 2>(t, count),
                7 => stacked_tiles::<T, 7, 2>(t, count),
                8 => stacked_tiles::<T, 8, 2>(t, count),
                _ => unreachable!("tile rows {rows} exceed MR = {MR}"),
            }
        }
    }
}

/// Calls `f` on `count` tiles of `rows` rows stacked down from `t` (pointer arithmetic only: `f`
/// is what reads and writes them).
#[inline(always)]
fn repeat<T: Element>(t: Tile<T>, rows: usize, count: usize, f: impl Fn(Tile<T>)) {
    for i in 0..count {
        let mut tile = t;
        tile.a = t.a.wrapping_add(i * rows * t.a_rs);
        tile.c = t.c.wrapping_add(i * rows * t.c_rs);
        f(tile);
    }
}

/// `count` whole tiles of `ROWS` rows and `NV` vectors stacked down from `t`, stored as `acc`
/// (`ADD = false`: `α = 1, β = 0`) or `C + acc` (`ADD`: `α = 1, β = 1`, the same bits as `fma(1,
/// C, acc)`): where every product of the tape spends its time. A function of its own, holding
/// only this loop: inlined into [`tile_rows`] with every other tile kernel, each tile paid for
/// that function's frame, dispatch and tests, and its `k` loop ran no faster.
///
/// Measured (x86-64-v3 build on an Intel Xeon, one thread, fastest of 15 batches, two alternated
/// runs of `gflops`): E=16 B=80 32→32 f32 X·Wᵀ / dYᵀ·X / dY·W 78 / 83–85 / 79–81 → 84 / 89–90 /
/// 87 % of the FMA peak, f64 78 / 83 / 81 → 83–84 / 84–85 / 86 %; 128→128 f32 83–85 / 77–79 /
/// 78–80 → 87 / 84–85 / 83–84 %. The same loop written in C (`benches/tile_ceiling.c`, one tile per
/// call, operands in L1) runs at 92–94 % there at `k = 32`.
///
/// In builds with 16 vector registers, two-vector tiles of more than [`STORE_BURST`]
/// accumulators (AVX2's six-row tiles) are *staggered* where `k ≥` [`STAGGER`]: a tile's upper
/// half of rows is stored first, then the next tile's upper rows take their first `STAGGER` steps
/// of `k`, and only then is the lower half stored (the next tile's lower rows catching up on
/// those steps before the steps of all the rows). Every element's sum is still its chain of FMAs
/// over `k` in order, so the bits are those of the plain sweep. See [`STORE_BURST`] for why;
/// AVX2's three-vector f64 tiles (four rows) were measured no faster staggered.
///
/// # Safety
/// As [`tile_wide`], for each tile; `t.cols` is the whole panel.
#[inline(never)]
unsafe fn tile_column<T: Element, const ROWS: usize, const NV: usize, const ADD: bool>(
    t: Tile<T>,
    count: usize,
) {
    align_frame_if_spilling::<ROWS, NV>();
    let staggers = SIXTEEN_YMM && NV == 2 && ROWS * NV > STORE_BURST;
    // SAFETY: forwarded from the caller.
    unsafe {
        if staggers && t.k >= STAGGER {
            sweep::<T, ROWS, NV, ADD, true>(t, count);
        } else {
            sweep::<T, ROWS, NV, ADD, false>(t, count);
        }
    }
}

/// [`tile_column`]'s sweep down the tiles, staggered or not.
///
/// # Safety
/// As [`tile_column`]; staggered, `t.k ≥ STAGGER`.
#[inline(always)]
unsafe fn sweep<
    T: Element,
    const ROWS: usize,
    const NV: usize,
    const ADD: bool,
    const STAGGERED: bool,
>(
    t: Tile<T>,
    count: usize,
) {
    if count == 0 {
        return;
    }
    let row_offsets = a_row_offsets::<ROWS>(t.a_rs);
    // Rows 0..upper are stored first; unstaggered, that is all of them and no step is taken early.
    let upper = if STAGGERED { ROWS / 2 } else { ROWS };
    let early = if STAGGERED { STAGGER } else { 0 };
    let (mut a, mut c) = (t.a, t.c);
    let mut acc = TileAcc::<T::Vector, ROWS, NV>::zero();
    // SAFETY: every call below reads op(A) rows of the current tile (the early steps after a
    // tile's upper stores: of the next one, which exists) and the panel's first `k ≥ early`
    // rows, and stores the current tile's rows of C — within the `count ≥ 1` tiles the caller
    // promises.
    unsafe {
        acc.steps(&t, a, &row_offsets, 0..upper, 0..early);
        for tile in 0..count {
            acc.steps(&t, a, &row_offsets, upper..ROWS, 0..early);
            acc.steps(&t, a, &row_offsets, 0..ROWS, early..t.k);
            acc.store::<ADD>(c, t.c_rs, 0..upper);
            a = a.wrapping_add(ROWS * t.a_rs);
            if tile + 1 < count {
                acc.clear(0..upper);
                acc.steps(&t, a, &row_offsets, 0..upper, 0..early);
            }
            acc.store::<ADD>(c, t.c_rs, upper..ROWS);
            acc.clear(upper..ROWS);
            c = c.wrapping_add(ROWS * t.c_rs);
        }
    }
}

/// Stores of vector registers that may come together without slowing the FMAs around them.
///
/// Zen 3, native AVX2 (`benches/store_burst.c`, three runs; each figure the fastest of 2,000
/// alternated runs): beside a loop of 12 independent FMA chains, their 12 accumulators stored
/// together after every 32 steps cost 7–8 % of the FMA rate, 10 of them 3–4 %, 8 of them 2–3 %,
/// while all 12 stored in groups of 6 every 16 steps cost 1–2 % and groups of 4 or 2 spread over
/// the steps below 1 % — it is the burst, not the count of stores. A two-vector tile of six rows
/// stores twelve after its last step; in the same file's sweep of 16 members' 78 × 32 by 32 × 32
/// products (f32, six-row tiles, operands in L2) staggering the stores by 2 / 4 / 8 steps ran
/// 1.04–1.05 / 1.10–1.11 / 1.04–1.06× as fast as storing all twelve together, with the same bits.
const STORE_BURST: usize = 8;

/// Steps of `k` the next tile's upper rows take between a staggered tile's two halves of stores
/// (see [`tile_column`] and [`STORE_BURST`]: of 2, 4 and 8 steps, 4 was the fastest).
const STAGGER: usize = 4;

/// Keeps the `k` loop around it one step per iteration. Left to itself LLVM unrolls that loop by
/// two, and the second step's broadcast addresses (each row's offset plus the column stride) no
/// longer fit the general registers: AVX2's six-row tile reloaded four or five of them from the
/// stack every two steps. One step at a time it holds every address in registers (24
/// instructions a step, as gcc compiles the same loop in C), and only so did the staggered
/// stores pay. Zen 3, native AVX2, E=16 members of 78 or 80 rows, 32→32, one thread (a
/// throwaway build switching the forms at run time, each figure the fastest of 1,500 alternated
/// calls of each, five runs), against the unrolled loop: one step at a time f32 X·Wᵀ / dYᵀ·X /
/// dY·W 0.99–1.03 / 1.04–1.05 / 0.99–1.03× its rate, with the stores staggered too 1.02–1.07 /
/// 1.05–1.07 / 1.03–1.07×; f64 1.01–1.04 / 1.00–1.01 / 1.03–1.04× and, staggered, X·Wᵀ 1.02–1.04×
/// and dY·W 1.02–1.07× (`dYᵀ·X`'s three-vector tiles staggered 0.98–1.00×, so they are not); at
/// 128→128 (two runs) 0.99–1.04× either way. Builds with 32 vector registers are left as they
/// were: their `k` loops compile to the same instructions as before. [`tile_wide`] (partial
/// panels, other `α` or `β`) runs the same loop: `cargo xtask ab`, eight pairs of the `gflops`
/// classification products (784→200, 200→200, 200→10; their last panels partial), every figure
/// within the noise against its own copy of the unrolled loop.
#[inline(always)]
fn one_step_per_iteration() {
    #[cfg(target_arch = "x86_64")]
    if SIXTEEN_YMM {
        // SAFETY: an empty template: no instruction runs, no register, memory, stack or flag is
        // touched; LLVM does not unroll a loop around it.
        unsafe {
            core::arch::asm!("", options(nomem, nostack, preserves_flags));
        }
    }
}

/// The accumulators of one tile: `acc[v][i]` is vector `v` of row `i`.
struct TileAcc<V, const ROWS: usize, const NV: usize> {
    acc: [[V; ROWS]; NV],
}

impl<V: SimdVector, const ROWS: usize, const NV: usize> TileAcc<V, ROWS, NV> {
    #[inline(always)]
    fn zero() -> Self {
        Self {
            acc: [[V::splat(V::Scalar::ZERO); ROWS]; NV],
        }
    }

    /// Steps `ks` of `k` for the tile rows `rows`, whose `op(A)` starts at `a`.
    ///
    /// # Safety
    /// `op(A)`'s rows `rows` from `a` and the panel's rows `ks` are readable (see [`Tile`]).
    #[inline(always)]
    unsafe fn steps(
        &mut self,
        t: &Tile<V::Scalar>,
        a: *const V::Scalar,
        row_offsets: &[usize; ROWS],
        rows: Range<usize>,
        ks: Range<usize>,
    ) {
        for p in ks {
            one_step_per_iteration();
            // SAFETY: forwarded from the caller.
            unsafe {
                let brow = t.b.add(p * t.b_rs);
                let b: [V; NV] = core::array::from_fn(|v| V::load(brow.add(v * V::LANES)));
                let ap = a.add(p * t.a_cs);
                for i in rows.clone() {
                    let ai = V::splat(*ap.add(row_offsets[i]));
                    for (acc_v, &b_v) in self.acc.iter_mut().zip(&b) {
                        acc_v[i] = ai.mul_add(b_v, acc_v[i]);
                    }
                }
            }
        }
    }

    /// Stores rows `rows` at `c` (rows `c_rs` apart): `acc`, or `C + acc` with `ADD`.
    ///
    /// # Safety
    /// Those rows of `C`, `NV` vectors each, are writable (and readable with `ADD`).
    #[inline(always)]
    unsafe fn store<const ADD: bool>(&self, c: *mut V::Scalar, c_rs: usize, rows: Range<usize>) {
        for i in rows {
            // SAFETY: forwarded from the caller.
            unsafe {
                let crow = c.add(i * c_rs);
                for (v, acc_v) in self.acc.iter().enumerate() {
                    let mut r = acc_v[i];
                    if ADD {
                        r = V::load(crow.add(v * V::LANES)) + r;
                    }
                    r.store(crow.add(v * V::LANES));
                }
            }
        }
    }

    /// Sets rows `rows` to zero.
    #[inline(always)]
    fn clear(&mut self, rows: Range<usize>) {
        for acc_v in self.acc.iter_mut() {
            for i in rows.clone() {
                acc_v[i] = V::splat(V::Scalar::ZERO);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values whose products and sums round (not small integers), from `seed`.
    fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                T::from_f64((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            })
            .collect()
    }

    /// The staggered sweep stores the plain sweep's bits, whatever `k`, the number of tiles,
    /// `β` (0 or 1) and the strides.
    fn check<T: Element, const ADD: bool>() {
        const ROWS: usize = 6;
        let nr = 2 * <T::Vector as SimdVector>::LANES;
        for k in [STAGGER, STAGGER + 1, 32, 37] {
            for count in 1..4 {
                let rows = ROWS * count;
                let (a_rs, c_rs) = (k + 3, nr + 5);
                let a = values::<T>(rows * a_rs, k as u64);
                let b = values::<T>(k * nr, 7 + count as u64);
                let c0 = values::<T>(rows * c_rs, 99);
                let sweep_with = |staggered: bool| {
                    let mut c = c0.clone();
                    let t = Tile {
                        k,
                        a: a.as_ptr(),
                        a_rs,
                        a_cs: 1,
                        b: b.as_ptr(),
                        b_rs: nr,
                        c: c.as_mut_ptr(),
                        c_rs,
                        cols: nr,
                        alpha: T::ONE,
                        beta: if ADD { T::ONE } else { T::ZERO },
                    };
                    // SAFETY: `a` holds `rows` rows of `a_rs ≥ k` values, `b` `k` rows of `nr`,
                    // `c` `rows` rows of `c_rs ≥ nr`; `k ≥ STAGGER`.
                    unsafe {
                        if staggered {
                            sweep::<T, ROWS, 2, ADD, true>(t, count);
                        } else {
                            sweep::<T, ROWS, 2, ADD, false>(t, count);
                        }
                    }
                    c
                };
                let (plain, staggered) = (sweep_with(false), sweep_with(true));
                assert!(
                    plain
                        .iter()
                        .zip(&staggered)
                        .all(|(p, s)| p.to_f64().to_bits() == s.to_f64().to_bits()),
                    "k {k}, {count} tiles, ADD {ADD}"
                );
                assert!(plain != c0, "k {k}, {count} tiles: nothing stored");
            }
        }
    }

    #[test]
    fn staggered_stores_give_the_plain_sweeps_bits() {
        check::<f32, false>();
        check::<f32, true>();
        check::<f64, false>();
        check::<f64, true>();
    }
}
