//! The fast GEMM against the naive reference over random shapes, strides and transpositions.

use flock_kernels::{Element, GemmError, MatMut, MatRef, Operand, Parallelism, gemm, gemm_naive};
use proptest::prelude::*;

/// Sizes that hit every edge: 1, odd sizes, around the SIMD widths (4, 8, 16) and tile sizes
/// (MR = 4/6/8 rows, NR = 8..64 columns: two-vector tiles, four-vector tiles from 32 f64 /
/// 64 f32 columns with AVX-512, whose last panel takes one to three vectors: 65, 105 and 200
/// f32 columns end in one, three and one, and AVX2's three-vector f64 tiles from 64 columns of a
/// transposed `A`: 65, 96 and 200 columns end in one, three and two), plus arbitrary ones.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
            1usize, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 64, 65, 96, 105, 127, 129,
            200
        ]),
        1usize..80,
    ]
}

#[derive(Clone, Debug)]
struct Case {
    members: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    share_a: bool,
    share_b: bool,
    pad: [usize; 3],
    alpha: f64,
    beta: f64,
    parallel: bool,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1usize), 1usize..6],
        (dim(), dim(), dim()),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        [0usize..3, 0usize..3, 0usize..3],
        prop::sample::select(vec![1.0, -1.0, 0.5, 2.0, 0.0]),
        prop::sample::select(vec![0.0, 1.0, -2.0, 0.5]),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                members,
                (m, n, k),
                (trans_a, trans_b, share_a, share_b),
                pad,
                alpha,
                beta,
                parallel,
                seed,
            )| Case {
                members,
                m,
                n,
                k,
                trans_a,
                trans_b,
                share_a,
                share_b,
                pad,
                alpha,
                beta,
                parallel,
                seed,
            },
        )
}

/// Small deterministic generator for test data.
fn fill(seed: u64, len: usize, whole: bool) -> Vec<f64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if whole {
                ((s % 17) as f64) - 8.0
            } else {
                (s % 1_000_000) as f64 / 500_000.0 - 1.0
            }
        })
        .collect()
}

struct Operands<T> {
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
    a_dims: (usize, usize, usize, usize),
    b_dims: (usize, usize, usize, usize),
    c_dims: (usize, usize, usize, usize),
}

fn build<T: Element>(c: &Case, whole: bool) -> Operands<T> {
    let (ar, ac) = if c.trans_a { (c.k, c.m) } else { (c.m, c.k) };
    let (br, bc) = if c.trans_b { (c.n, c.k) } else { (c.k, c.n) };
    let a_rs = ac + c.pad[0];
    let b_rs = bc + c.pad[1];
    let c_rs = c.n + c.pad[2];
    let a_ms = if c.share_a { 0 } else { ar * a_rs + c.pad[0] };
    let b_ms = if c.share_b { 0 } else { br * b_rs };
    let c_ms = c.m * c_rs + c.pad[2];
    let len = |ms: usize, rows: usize, rs: usize| ms * (c.members - 1) + rows * rs;
    let conv = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
    let mut cbuf = conv(fill(c.seed ^ 3, len(c_ms, c.m, c_rs), whole));
    if c.beta == 0.0 {
        cbuf.iter_mut().for_each(|v| *v = T::NAN); // beta = 0 must never read C
    }
    Operands {
        a: conv(fill(c.seed ^ 1, len(a_ms, ar, a_rs), whole)),
        b: conv(fill(c.seed ^ 2, len(b_ms, br, b_rs), whole)),
        c: cbuf,
        a_dims: (ar, ac, a_rs, a_ms),
        b_dims: (br, bc, b_rs, b_ms),
        c_dims: (c.m, c.n, c_rs, c_ms),
    }
}

fn mat<T>(buf: &[T], d: (usize, usize, usize, usize), t: bool) -> MatRef<'_, T> {
    let m = MatRef::new(buf, d.0, d.1)
        .with_row_stride(d.2)
        .with_member_stride(d.3);
    if t { m.t() } else { m }
}

fn run_both<T: Element>(case: &Case, whole: bool) -> (Vec<T>, Vec<T>) {
    let ops = build::<T>(case, whole);
    let mut fast = ops.c.clone();
    let mut slow = ops.c.clone();
    let par = if case.parallel {
        Parallelism::Rayon { min_flops: 0 }
    } else {
        Parallelism::Sequential
    };
    let alpha = T::from_f64(case.alpha);
    let beta = T::from_f64(case.beta);
    let d = ops.c_dims;
    gemm(
        case.members,
        alpha,
        mat(&ops.a, ops.a_dims, case.trans_a),
        mat(&ops.b, ops.b_dims, case.trans_b),
        beta,
        MatMut::new(&mut fast, d.0, d.1)
            .with_row_stride(d.2)
            .with_member_stride(d.3),
        par,
    )
    .unwrap();
    gemm_naive(
        case.members,
        alpha,
        mat(&ops.a, ops.a_dims, case.trans_a),
        mat(&ops.b, ops.b_dims, case.trans_b),
        beta,
        MatMut::new(&mut slow, d.0, d.1)
            .with_row_stride(d.2)
            .with_member_stride(d.3),
    )
    .unwrap();
    (fast, slow)
}

/// Compares element by element; NaN in padding (never written) must stay where it was.
fn assert_same<T: Element>(fast: &[T], slow: &[T], tol: f64) {
    for (i, (&f, &s)) in fast.iter().zip(slow).enumerate() {
        if s.is_nan() {
            assert!(
                f.is_nan(),
                "element {i}: fast wrote {f} where the reference left NaN padding"
            );
            continue;
        }
        let (f, s) = (f.to_f64(), s.to_f64());
        assert!(
            (f - s).abs() <= tol * (1.0 + s.abs()),
            "element {i}: fast {f} vs naive {s}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn whole_numbers_match_exactly_f32(c in case()) {
        let (fast, slow) = run_both::<f32>(&c, true);
        assert_same(&fast, &slow, 0.0);
    }

    #[test]
    fn whole_numbers_match_exactly_f64(c in case()) {
        let (fast, slow) = run_both::<f64>(&c, true);
        assert_same(&fast, &slow, 0.0);
    }

    #[test]
    fn real_numbers_match_f64(c in case()) {
        let (fast, slow) = run_both::<f64>(&c, false);
        assert_same(&fast, &slow, 1e-12 * (c.k as f64 + 1.0));
    }

    #[test]
    fn real_numbers_match_f32(c in case()) {
        let (fast, slow) = run_both::<f32>(&c, false);
        assert_same(&fast, &slow, 1e-5 * (c.k as f64 + 1.0));
    }

    #[test]
    fn parallel_is_bitwise_sequential(c in case()) {
        let par = Case { parallel: true, ..c.clone() };
        let seq = Case { parallel: false, ..c };
        let (fast_par, _) = run_both::<f64>(&par, false);
        let (fast_seq, _) = run_both::<f64>(&seq, false);
        prop_assert_eq!(
            fast_par.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            fast_seq.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

/// Cases where one of `m`, `n`, `k` is 1 — the thin (BLAS-1) paths — in every orientation.
fn thin_case() -> impl Strategy<Value = Case> {
    (case(), 0usize..3).prop_map(|(mut c, which)| {
        match which {
            0 => c.m = 1,
            1 => c.n = 1,
            _ => c.k = 1,
        }
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn thin_products_match_f64(c in thin_case()) {
        let (fast, slow) = run_both::<f64>(&c, false);
        assert_same(&fast, &slow, 1e-12 * (c.k as f64 + 1.0));
        let (fast, slow) = run_both::<f32>(&c, true);
        assert_same(&fast, &slow, 0.0);
    }

    #[test]
    fn thin_parallel_is_bitwise_sequential(c in thin_case()) {
        let par = Case { parallel: true, ..c.clone() };
        let seq = Case { parallel: false, ..c };
        let (fast_par, _) = run_both::<f64>(&par, false);
        let (fast_seq, _) = run_both::<f64>(&seq, false);
        prop_assert_eq!(
            fast_par.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            fast_seq.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

/// The weight gradient `dYᵀ·X` with both operands 128 elements per row (512 bytes in f32, 1,024
/// in f64: the strides whose rows crowd a few L1 sets, where the `B` panel is packed rather than
/// read in place) and 80 rows — and 83 rows with 37 columns of `dY` and 45 of `X`, none a whole
/// number of vectors —, and the input gradient `dY·W`
/// with such a `W` (in f64 AVX2 builds both 128-column products run on three-vector tiles):
/// bitwise the reference on whole numbers, sequential and parallel.
#[test]
fn aliasing_strides_match_exactly() {
    for parallel in [false, true] {
        let case = Case {
            members: 2,
            m: 32,
            n: 32,
            k: 80,
            trans_a: true,
            trans_b: false,
            share_a: false,
            share_b: false,
            pad: [96, 96, 0],
            alpha: 1.0,
            beta: 0.0,
            parallel,
            seed: 7,
        };
        let wide = Case {
            m: 128,
            n: 128,
            pad: [0, 0, 0],
            ..case
        };
        let ragged = Case {
            m: 37,
            n: 45,
            k: 83,
            pad: [91, 83, 0],
            ..case
        };
        // The input gradient `dY·W` (A along its rows) with W's 128-element rows, k = 128.
        let input_gradient = Case {
            m: 80,
            n: 128,
            k: 128,
            trans_a: false,
            ..wide
        };
        for case in [case, wide, ragged, input_gradient] {
            let (fast, slow) = run_both::<f32>(&case, true);
            assert_same(&fast, &slow, 0.0);
            let (fast, slow) = run_both::<f64>(&case, true);
            assert_same(&fast, &slow, 0.0);
        }
    }
}

#[test]
fn k_zero_scales_c_by_beta() {
    let a: [f64; 0] = [];
    let mut c = vec![3.0, f64::NAN];
    gemm(
        1,
        1.0,
        MatRef::new(&a, 1, 0),
        MatRef::new(&a, 0, 2),
        2.0,
        MatMut::new(&mut c[..1], 1, 1),
        Parallelism::Sequential,
    )
    .unwrap_err();
    let mut c2 = vec![3.0, 4.0];
    gemm(
        1,
        1.0,
        MatRef::new(&a, 1, 0),
        MatRef::new(&a, 0, 2),
        2.0,
        MatMut::new(&mut c2, 1, 2),
        Parallelism::Sequential,
    )
    .unwrap();
    assert_eq!(c2, [6.0, 8.0]);
    c[1] = 5.0;
    c[0] = f64::NAN;
    gemm(
        1,
        1.0,
        MatRef::new(&a, 1, 0),
        MatRef::new(&a, 0, 2),
        0.0,
        MatMut::new(&mut c, 1, 2),
        Parallelism::Sequential,
    )
    .unwrap();
    assert_eq!(c, [0.0, 0.0]);
}

#[test]
fn shape_errors_name_the_problem() {
    let a = vec![0.0f32; 6];
    let b = vec![0.0f32; 6];
    let mut c = vec![0.0f32; 4];
    let err = gemm(
        1,
        1.0,
        MatRef::new(&a, 2, 3),
        MatRef::new(&b, 2, 3),
        0.0,
        MatMut::new(&mut c, 2, 2),
        Parallelism::Sequential,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GemmError::InnerDimensionMismatch {
            op_a: (2, 3),
            op_b: (2, 3)
        }
    );
    assert!(err.to_string().contains("2×3"));
    let err = gemm(
        2,
        1.0,
        MatRef::new(&a, 2, 3),
        MatRef::new(&b, 2, 3).t(),
        0.0,
        MatMut::new(&mut c, 2, 2),
        Parallelism::Sequential,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GemmError::BufferTooSmall {
            operand: Operand::A,
            needed: 12,
            len: 6
        }
    );
    let mut c8 = vec![0.0f32; 8];
    let err = gemm(
        2,
        1.0,
        MatRef::shared(&a, 2, 3),
        MatRef::shared(&b, 2, 3).t(),
        0.0,
        MatMut::new(&mut c8, 2, 2).with_member_stride(3),
        Parallelism::Sequential,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GemmError::OverlappingOutputMembers {
            member_stride: 3,
            footprint: 4
        }
    );
    let err = gemm(
        1,
        1.0,
        MatRef::new(&a, 2, 3),
        MatRef::new(&b, 2, 3).t(),
        0.0,
        MatMut::new(&mut c, 2, 3),
        Parallelism::Sequential,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GemmError::OutputShapeMismatch {
            expected: (2, 2),
            found: (2, 3)
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A one-column product with contiguous rows (a `32→1` output layer) is, row by row, the
    /// vector dot product of `elementwise::dot_per_member`, bit for bit.
    #[test]
    fn row_dots_are_bitwise_dot_products(
        rows in 1usize..40,
        k in 1usize..70,
        seed in any::<u64>(),
    ) {
        for_both_types(rows, k, seed);
    }
}

fn for_both_types(rows: usize, k: usize, seed: u64) {
    fn check<T: Element>(rows: usize, k: usize, seed: u64) {
        let value = |i: u64| {
            let z = (seed ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            T::from_f64(((z >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
        };
        let a: Vec<T> = (0..(rows * k) as u64).map(value).collect();
        let w: Vec<T> = (0..k as u64).map(|i| value(i + 1_000_000)).collect();
        let mut c = vec![T::NAN; rows];
        gemm(
            1,
            T::ONE,
            MatRef::new(&a, rows, k),
            MatRef::new(&w, 1, k).t(),
            T::ZERO,
            MatMut::new(&mut c, rows, 1),
            Parallelism::Sequential,
        )
        .unwrap();
        for (i, &got) in c.iter().enumerate() {
            let mut want = [T::NAN];
            flock_kernels::elementwise::dot_per_member(1, &a[i * k..(i + 1) * k], &w, &mut want);
            assert_eq!(
                got.to_f64().to_bits(),
                want[0].to_f64().to_bits(),
                "<{}> row {i} of {rows}×{k}",
                T::NAME
            );
        }
    }
    check::<f32>(rows, k, seed);
    check::<f64>(rows, k, seed);
}
