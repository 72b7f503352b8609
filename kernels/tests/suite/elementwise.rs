//! Every elementwise kernel against its naive reference over random lengths (around the SIMD
//! widths), members and values, including extreme inputs.

use flock_kernels::Element;
use flock_kernels::elementwise::{
    self, Activation, Store, activation_naive, blas1, math::naive, reduce,
};
use proptest::prelude::*;

const ACTIVATIONS: [Activation; 5] = [
    Activation::Identity,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Softplus,
    Activation::Relu,
];

fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            8 => -6.0f64..6.0,
            1 => -400.0f64..400.0,
            1 => prop::sample::select(vec![0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0, 300.0, -300.0]),
        ],
        len,
    )
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33]),
        0usize..100
    ]
}

/// Relative closeness in ulps of `T`, treating equal infinities and NaNs as equal.
fn close<T: Element>(a: T, b: T, ulps: f64) -> bool {
    let (a, b) = (a.to_f64(), b.to_f64());
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs()
        <= ulps * T::EPSILON.to_f64() * a.abs().max(b.abs()).max(f64::from(f32::MIN_POSITIVE))
}

fn check_unary<T: Element>(xs: &[f64]) {
    let x: Vec<T> = xs.iter().map(|&v| T::from_f64(v)).collect();
    type Case<T> = (&'static str, fn(&[T], &mut [T]), fn(T) -> T);
    let fns: [Case<T>; 7] = [
        ("exp", elementwise::exp, naive::exp),
        ("ln", elementwise::ln, naive::ln),
        ("ln_1p", elementwise::ln_1p, naive::ln_1p),
        ("tanh", elementwise::tanh, naive::tanh),
        ("sigmoid", elementwise::sigmoid, naive::sigmoid),
        ("softplus", elementwise::softplus, naive::softplus),
        ("relu", elementwise::relu, naive::relu),
    ];
    for (name, fast, slow) in fns {
        let mut out = vec![T::NAN; x.len()];
        fast(&x, &mut out);
        for (i, (&o, &xi)) in out.iter().zip(&x).enumerate() {
            let r = slow(xi);
            // exp/ln may flush subnormal results; compare those with an absolute floor.
            let ok = close(o, r, 8.0) || (r.to_f64().abs() < 1e-37 && o.to_f64().abs() < 1e-37);
            assert!(
                ok,
                "{name}<{}>: element {i} x = {xi}: fast {o} vs naive {r}",
                T::NAME
            );
        }
    }
}

/// The fused softplus-and-slope kernel: its softplus is bitwise [`elementwise::softplus`], its
/// slope within 8 ulp of the naive sigmoid and bitwise [`elementwise::sigmoid`] for `x > 0`.
fn check_softplus_sigmoid<T: Element>(xs: &[f64]) {
    let x: Vec<T> = xs.iter().map(|&v| T::from_f64(v)).collect();
    let (mut sp, mut sg) = (vec![T::NAN; x.len()], vec![T::NAN; x.len()]);
    elementwise::softplus_sigmoid(&x, &mut sp, &mut sg);
    let (mut sp_alone, mut sg_alone) = (vec![T::NAN; x.len()], vec![T::NAN; x.len()]);
    elementwise::softplus(&x, &mut sp_alone);
    elementwise::sigmoid(&x, &mut sg_alone);
    for (i, &xi) in x.iter().enumerate() {
        assert_eq!(
            sp[i].to_f64().to_bits(),
            sp_alone[i].to_f64().to_bits(),
            "softplus<{}> at x = {xi}",
            T::NAME
        );
        let r = naive::sigmoid(xi);
        let ok = close(sg[i], r, 8.0) || (r.to_f64().abs() < 1e-37 && sg[i].to_f64().abs() < 1e-37);
        assert!(
            ok,
            "sigmoid<{}> at x = {xi}: {} vs naive {r}",
            T::NAME,
            sg[i]
        );
        if xi > T::ZERO {
            assert_eq!(sg[i].to_f64().to_bits(), sg_alone[i].to_f64().to_bits());
        }
    }
}

fn check_activation<T: Element>(
    members: usize,
    rows: usize,
    cols: usize,
    xs: &[f64],
    seed: &[f64],
) {
    let n = members * rows * cols;
    let z: Vec<T> = xs[..n].iter().map(|&v| T::from_f64(v)).collect();
    let bias: Vec<T> = seed[..members * cols]
        .iter()
        .map(|&v| T::from_f64(v))
        .collect();
    let dy: Vec<T> = seed[..n]
        .iter()
        .rev()
        .map(|&v| T::from_f64(v * 0.5))
        .collect();
    for act in ACTIVATIONS {
        let (mut fast, mut slow) = (z.clone(), z.clone());
        elementwise::bias_activation_forward(act, members, rows, cols, &mut fast, &bias);
        activation_naive::bias_activation_forward(act, members, rows, cols, &mut slow, &bias);
        for (i, (&f, &s)) in fast.iter().zip(&slow).enumerate() {
            assert!(
                close(f, s, 8.0),
                "{act:?} forward <{}>: element {i}: {f} vs {s}",
                T::NAME
            );
        }
        let (mut dz_f, mut dz_s) = (vec![T::NAN; n], vec![T::NAN; n]);
        let (mut db_f, mut db_s) = (vec![T::ONE; members * cols], vec![T::ONE; members * cols]);
        elementwise::bias_activation_backward(
            act, members, rows, cols, &slow, &dy, &mut dz_f, &mut db_f,
        );
        activation_naive::bias_activation_backward(
            act, members, rows, cols, &slow, &dy, &mut dz_s, &mut db_s,
        );
        // f'(y) = 1 − y² (and y(1 − y)) cancels near saturation, so the two formulas' roundings
        // are compared on the scale of their inputs: |Δ| ≤ 4ε·|dy|·max(1, y²).
        for (i, (&f, &s)) in dz_f.iter().zip(&dz_s).enumerate() {
            let scale = dy[i].to_f64().abs() * slow[i].to_f64().powi(2).max(1.0);
            let ok =
                close(f, s, 4.0) || (f - s).to_f64().abs() <= 4.0 * T::EPSILON.to_f64() * scale;
            assert!(
                ok,
                "{act:?} backward dz <{}>: element {i}: {f} vs {s}",
                T::NAME
            );
        }
        // Bias gradients are 1 + Σ_r dz (dz checked above): compare with that sum in f64.
        for c in 0..members * cols {
            let (e, j) = (c / cols, c % cols);
            let col = (0..rows).map(|r| dz_f[(e * rows + r) * cols + j].to_f64());
            let want = 1.0 + col.clone().sum::<f64>();
            let mag: f64 = col.map(f64::abs).sum::<f64>() + 1.0;
            let err = (db_f[c].to_f64() - want).abs();
            assert!(
                err <= 2.0 * T::EPSILON.to_f64() * mag * rows as f64,
                "{act:?} dbias <{}>[{c}]: {} vs {want} (naive {})",
                T::NAME,
                db_f[c],
                db_s[c]
            );
        }
        // Accumulating backward adds to what is there.
        let mut acc = vec![T::ONE; n];
        elementwise::activation_backward(act, &slow, &dy, &mut acc, Store::Accumulate);
        for i in 0..n {
            let want = T::ONE + dz_f[i];
            let scale = 1.0 + dy[i].to_f64().abs() * slow[i].to_f64().powi(2).max(1.0);
            let ok = (acc[i] - want).to_f64().abs() <= 4.0 * T::EPSILON.to_f64() * scale;
            assert!(
                ok,
                "{act:?} accumulate <{}>: element {i}: {} vs {want}",
                T::NAME,
                acc[i]
            );
        }
    }
}

fn check_reductions<T: Element>(members: usize, n: usize, xs: &[f64], ys: &[f64], whole: bool) {
    let conv = |v: &[f64]| -> Vec<T> {
        v[..members * n]
            .iter()
            .map(|&v| T::from_f64(if whole { v.round() } else { v }))
            .collect()
    };
    let (x, y) = (conv(xs), conv(ys));
    let mut fast = vec![T::NAN; members];
    let mut slow = vec![T::NAN; members];
    type R<T> = (fn(usize, &[T], &mut [T]), fn(usize, &[T], &mut [T]));
    let unary: [(&str, R<T>); 2] = [
        (
            "sum",
            (reduce::sum_per_member, reduce::naive::sum_per_member),
        ),
        (
            "sum_squares",
            (
                reduce::sum_squares_per_member,
                reduce::naive::sum_squares_per_member,
            ),
        ),
    ];
    for (name, (f, s)) in unary {
        f(members, &x, &mut fast);
        s(members, &x, &mut slow);
        compare_sums(name, &fast, &slow, &x, n, whole);
    }
    reduce::dot_per_member(members, &x, &y, &mut fast);
    reduce::naive::dot_per_member(members, &x, &y, &mut slow);
    compare_sums("dot", &fast, &slow, &x, n, whole);

    let alpha = T::from_f64(if whole { 3.0 } else { -0.7 });
    let (mut yf, mut ys_) = (y.clone(), y.clone());
    blas1::axpy(alpha, &x, &mut yf);
    blas1::naive::axpy(alpha, &x, &mut ys_);
    // With FMA the fast path rounds once, without (SSE2 build) twice: allow one rounding.
    for i in 0..yf.len() {
        let bound = T::EPSILON.to_f64() * ((alpha * x[i]).to_f64().abs() + y[i].to_f64().abs());
        assert!(
            (yf[i] - ys_[i]).to_f64().abs() <= bound,
            "axpy <{}>[{i}]: {} vs {}",
            T::NAME,
            yf[i],
            ys_[i]
        );
    }
    let (mut xf, mut xs_) = (x.clone(), x.clone());
    blas1::scale(alpha, &mut xf);
    blas1::naive::scale(alpha, &mut xs_);
    assert_eq!(xf, xs_, "scale <{}>", T::NAME);
    // One pass of `y += α·x` gives the bits of the two passes `x *= α`, `y += x`.
    let (mut yf, mut ys_) = (y.clone(), y.clone());
    blas1::add_scaled(alpha, &x, &mut yf);
    blas1::naive::add_scaled(alpha, &x, &mut ys_);
    assert_eq!(yf, ys_, "add_scaled <{}>", T::NAME);
    let mut two_passes = y.clone();
    blas1::add_assign(&mut two_passes, &xf);
    assert_eq!(
        yf,
        two_passes,
        "add_scaled <{}> vs scale + add_assign",
        T::NAME
    );
}

fn compare_sums<T: Element>(name: &str, fast: &[T], slow: &[T], x: &[T], n: usize, whole: bool) {
    for e in 0..fast.len() {
        if whole {
            assert_eq!(
                fast[e],
                slow[e],
                "{name} <{}> member {e}: whole numbers must sum exactly",
                T::NAME
            );
        } else {
            let mag: f64 = x[e * n..(e + 1) * n]
                .iter()
                .map(|v| v.to_f64().abs().max(v.to_f64() * v.to_f64()))
                .sum::<f64>()
                + 1.0;
            let err = (fast[e].to_f64() - slow[e].to_f64()).abs();
            assert!(
                err <= 2.0 * n as f64 * T::EPSILON.to_f64() * mag * 400.0,
                "{name} <{}> member {e}: {} vs {}",
                T::NAME,
                fast[e],
                slow[e]
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `all_finite` agrees with the element-by-element check, whatever sits where.
    #[test]
    fn all_finite_matches_naive(
        xs in len().prop_flat_map(values),
        bad in prop::option::of((0usize..1000, 0usize..3)),
    ) {
        let mut x32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let mut x64 = xs.clone();
        if let Some((at, kind)) = bad.filter(|_| !xs.is_empty()) {
            let v = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][kind];
            x32[at % xs.len()] = v as f32;
            x64[at % xs.len()] = v;
        }
        // Values near f32::MAX become ∞ in f32: also covered by the naive check.
        prop_assert_eq!(reduce::all_finite(&x32), reduce::naive::all_finite(&x32));
        prop_assert_eq!(reduce::all_finite(&x64), reduce::naive::all_finite(&x64));
        prop_assert_eq!(reduce::all_finite(&x64), bad.is_none() || xs.is_empty());
    }

    #[test]
    fn unary_matches_naive(xs in len().prop_flat_map(values)) {
        check_unary::<f32>(&xs);
        check_unary::<f64>(&xs);
        check_softplus_sigmoid::<f32>(&xs);
        check_softplus_sigmoid::<f64>(&xs);
    }

    /// tanh computes two vectors at a time (`tanh_pair`), the last whole vector and the tail
    /// alone: an element gets the same bits wherever it sits, alone or in a slice.
    #[test]
    fn tanh_is_the_same_bits_wherever_the_element_sits(xs in len().prop_flat_map(values)) {
        fn check<T: Element>(xs: &[f64]) {
            let x: Vec<T> = xs.iter().map(|&v| T::from_f64(v)).collect();
            let mut whole = vec![T::NAN; x.len()];
            elementwise::tanh(&x, &mut whole);
            let mut in_place = x.clone();
            elementwise::activate_in_place(Activation::Tanh, &mut in_place);
            for (i, &xi) in x.iter().enumerate() {
                let mut alone = [T::NAN];
                elementwise::tanh(&[xi], &mut alone);
                assert_eq!(whole[i].to_f64().to_bits(), alone[0].to_f64().to_bits(), "{} x = {xi}", T::NAME);
                assert_eq!(in_place[i].to_f64().to_bits(), alone[0].to_f64().to_bits(), "{} x = {xi}", T::NAME);
            }
        }
        check::<f32>(&xs);
        check::<f64>(&xs);
    }

    #[test]
    fn bias_activation_matches_naive(
        (members, rows, cols) in (1usize..4, 1usize..6, len()),
        xs in values(3 * 5 * 100),
        seed in values(3 * 5 * 100),
    ) {
        check_activation::<f32>(members, rows, cols, &xs, &seed);
        check_activation::<f64>(members, rows, cols, &xs, &seed);
    }

    #[test]
    fn reductions_match_naive(
        (members, n) in (1usize..5, len()),
        xs in values(4 * 100),
        ys in values(4 * 100),
        whole in any::<bool>(),
    ) {
        check_reductions::<f32>(members, n, &xs, &ys, whole);
        check_reductions::<f64>(members, n, &xs, &ys, whole);
    }
}

fn check_adam<T: Element>(gs: &[f64], ms: &[f64], vs: &[f64], t: i32) {
    let to = |x: &[f64]| x.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
    let (b1, b2) = (0.9, 0.999);
    let c = elementwise::AdamCoefficients {
        b1: T::from_f64(b1),
        b2: T::from_f64(b2),
        one_minus_b1: T::from_f64(1.0 - b1),
        one_minus_b2: T::from_f64(1.0 - b2),
        bias_correction1: T::from_f64(1.0 - b1.powi(t)),
        bias_correction2: T::from_f64(1.0 - b2.powi(t)),
        eps: T::from_f64(1e-8),
        eps_root: T::from_f64(0.0),
    };
    // Second moments are non-negative.
    let vs: Vec<f64> = vs.iter().map(|v| v.abs()).collect();
    let (mut g1, mut m1, mut v1) = (to(gs), to(ms), to(&vs));
    let (mut g2, mut m2, mut v2) = (g1.clone(), m1.clone(), v1.clone());
    let (mut g3, mut m3, mut v3) = (g1.clone(), m1.clone(), v1.clone());
    elementwise::adam_update(&mut g1, &mut m1, &mut v1, c);
    elementwise::adam::naive::adam_update(&mut g2, &mut m2, &mut v2, c);
    let bits = |x: &[T]| x.iter().map(|v| v.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&g1), bits(&g2), "updates");
    assert_eq!(bits(&m1), bits(&m2), "first moments");
    assert_eq!(bits(&v1), bits(&v2), "second moments");
    // The same pass adding the scaled update to parameters: the bits of the three passes.
    let factor = T::from_f64(-1e-3 * f64::from(t % 7 + 1));
    let start: Vec<T> = to(ms).iter().map(|&m| m + T::ONE).collect();
    let mut params = start.clone();
    elementwise::adam_update_apply(&mut g3, &mut m3, &mut v3, &mut params, c, factor);
    let mut apart = start;
    let mut scaled = g1.clone();
    elementwise::scale(factor, &mut scaled);
    elementwise::add_assign(&mut apart, &scaled);
    assert_eq!(bits(&params), bits(&apart), "parameters");
    assert_eq!(bits(&m3), bits(&m1), "first moments (applied)");
    assert_eq!(bits(&v3), bits(&v1), "second moments (applied)");
}

/// Moments of −0 (a gradient and a first moment of −0, or negative values whose products
/// round to −0) keep the division's signed zero through the bias corrections: bitwise the
/// scalar formula, in the first steps (where `bc₁ ≠ 1`) and later.
#[test]
fn adam_keeps_negative_zero_moments() {
    let gs = [-0.0, -0.0, -1e-320, 0.0, -0.0, -5e-324, 1.0, -0.0, -0.0];
    let ms = [-0.0, 0.0, -1e-320, -0.0, -1e-310, -5e-324, -0.0, -0.0, -0.0];
    let vs = [0.0; 9];
    for t in [1, 2, 3, 10, 400, 2000] {
        check_adam::<f64>(&gs, &ms, &vs, t);
        check_adam::<f32>(&gs, &ms, &vs, t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The SIMD Adam pass is bitwise the scalar formula, tails included, and so is the pass that
    /// applies the update.
    #[test]
    fn adam_update_is_bitwise_naive(
        n in len(),
        gs in values(100),
        ms in values(100),
        vs in values(100),
        t in 1i32..2000,
    ) {
        check_adam::<f32>(&gs[..n], &ms[..n], &vs[..n], t);
        check_adam::<f64>(&gs[..n], &ms[..n], &vs[..n], t);
    }
}

fn check_column_sums<T: Element>(rows: usize, cols: usize, xs: &[f64], start: &[f64]) {
    let x: Vec<T> = xs[..rows * cols].iter().map(|&v| T::from_f64(v)).collect();
    let init: Vec<T> = start[..cols].iter().map(|&v| T::from_f64(v)).collect();
    let (mut fast, mut slow) = (init.clone(), init);
    reduce::add_column_sums(&x, &mut fast);
    reduce::naive::add_column_sums(&x, &mut slow);
    let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&fast),
        bits(&slow),
        "column sums <{}> of {rows}×{cols}",
        T::NAME
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Column sums (a dense layer's bias gradient) add the rows in order into `out`: bitwise
    /// the sequential loop, for widths below, at and between vector multiples (1 to 80 columns
    /// covers 0–5 f32 vectors plus tails).
    #[test]
    fn add_column_sums_is_bitwise_sequential(
        rows in 0usize..40,
        cols in 1usize..80,
        xs in values(40 * 80),
        start in values(80),
    ) {
        check_column_sums::<f32>(rows, cols, &xs, &start);
        check_column_sums::<f64>(rows, cols, &xs, &start);
    }

    /// The per-member sums of a one-column layer (its bias gradients) are bitwise each member's
    /// column sum alone, for member counts below, at and past the groups of eight it
    /// interleaves.
    #[test]
    fn add_sums_per_member_is_each_members_column_sum(
        members in 1usize..20,
        rows in 0usize..40,
        xs in values(20 * 40),
        start in values(20),
    ) {
        check_sums_per_member::<f32>(members, rows, &xs, &start);
        check_sums_per_member::<f64>(members, rows, &xs, &start);
    }
}

fn check_sums_per_member<T: Element>(members: usize, rows: usize, xs: &[f64], start: &[f64]) {
    let x: Vec<T> = xs[..members * rows]
        .iter()
        .map(|&v| T::from_f64(v))
        .collect();
    let init: Vec<T> = start[..members].iter().map(|&v| T::from_f64(v)).collect();
    let (mut together, mut alone) = (init.clone(), init);
    reduce::add_sums_per_member(&x, &mut together);
    for (e, o) in alone.iter_mut().enumerate() {
        reduce::naive::add_column_sums(&x[e * rows..(e + 1) * rows], core::slice::from_mut(o));
    }
    let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&together),
        bits(&alone),
        "sums per member <{}> of {members}×{rows}",
        T::NAME
    );
}

/// A batch of no rows is a no-op for the layer epilogue (it used to ask for chunks of zero
/// elements and panic).
#[test]
fn bias_activation_over_zero_rows_is_a_no_op() {
    for act in ACTIVATIONS {
        for cols in [1, 3] {
            let mut z: Vec<f64> = Vec::new();
            elementwise::bias_activation_forward(act, 2, 0, cols, &mut z, &[0.5; 6][..2 * cols]);
            assert!(z.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Σ ln x per member (a Gaussian's log-determinant term) matches the scalar sum of `std`'s
    /// logarithms to the rounding of an n-term sum, tails and single members included.
    #[test]
    fn sum_ln_matches_naive(members in 1usize..5, n in 0usize..60, xs in values(300)) {
        fn check<T: Element>(members: usize, n: usize, xs: &[f64]) {
            let x: Vec<T> = xs[..members * n]
                .iter()
                .map(|&v| T::from_f64(v.abs() + 1e-3))
                .collect();
            let (mut fast, mut slow) = (vec![T::NAN; members], vec![T::NAN; members]);
            reduce::sum_ln_per_member(members, &x, &mut fast);
            reduce::naive::sum_ln_per_member(members, &x, &mut slow);
            for e in 0..members {
                let scale: f64 = x[e * n..(e + 1) * n]
                    .iter()
                    .map(|v| v.to_f64().ln().abs() + 1.0)
                    .sum();
                let bound = 8.0 * T::EPSILON.to_f64() * scale;
                let (f, s) = (fast[e].to_f64(), slow[e].to_f64());
                assert!((f - s).abs() <= bound, "<{}> member {e}: {f} vs {s}", T::NAME);
            }
        }
        check::<f32>(members, n, &xs);
        check::<f64>(members, n, &xs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fused layer backward (dz and the bias gradient in one pass) is bitwise the two passes
    /// it replaces: `activation_backward` then `add_column_sums`, for every width (the fused
    /// register path for 1–4 whole vectors, the two passes otherwise) and for zero rows.
    #[test]
    fn bias_activation_backward_is_the_two_passes(
        members in 1usize..3,
        rows in 0usize..12,
        cols in 1usize..70,
        xs in values(2 * 12 * 70),
        start in values(2 * 70),
    ) {
        fn check<T: Element>(members: usize, rows: usize, cols: usize, xs: &[f64], start: &[f64]) {
            let n = members * rows * cols;
            let y: Vec<T> = xs[..n].iter().map(|&v| T::from_f64(v.tanh())).collect();
            let dy: Vec<T> = xs[..n].iter().rev().map(|&v| T::from_f64(v)).collect();
            let db0: Vec<T> = start[..members * cols].iter().map(|&v| T::from_f64(v)).collect();
            let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
            for act in ACTIVATIONS {
                let (mut dz, mut db) = (vec![T::NAN; n], db0.clone());
                elementwise::bias_activation_backward(act, members, rows, cols, &y, &dy, &mut dz, &mut db);
                let (mut dz2, mut db2) = (vec![T::NAN; n], db0.clone());
                elementwise::activation_backward(act, &y, &dy, &mut dz2, elementwise::Store::Overwrite);
                for e in 0..members {
                    let r = e * rows * cols..(e + 1) * rows * cols;
                    reduce::add_column_sums(&dz2[r], &mut db2[e * cols..(e + 1) * cols]);
                }
                assert_eq!(bits(&dz), bits(&dz2), "{act:?} <{}> dz", T::NAME);
                assert_eq!(bits(&db), bits(&db2), "{act:?} <{}> dbias", T::NAME);
            }
        }
        check::<f32>(members, rows, cols, &xs, &start);
        check::<f64>(members, rows, cols, &xs, &start);
    }

    /// The fused layer backward from an outer-product output gradient `dy = g·wᵀ` is bitwise
    /// the backward from `dy` written out (each `g[r]·w[c]` rounded once), for every width and
    /// for zero rows.
    #[test]
    fn bias_activation_backward_outer_is_the_product_written_out(
        rows in 0usize..12,
        cols in 1usize..70,
        xs in values(12 * 70),
        factors in values(12 + 70),
        start in values(70),
    ) {
        fn check<T: Element>(rows: usize, cols: usize, xs: &[f64], factors: &[f64], start: &[f64]) {
            let n = rows * cols;
            let y: Vec<T> = xs[..n].iter().map(|&v| T::from_f64(v.tanh())).collect();
            let g: Vec<T> = factors[..rows].iter().map(|&v| T::from_f64(v)).collect();
            let w: Vec<T> = factors[12..12 + cols].iter().map(|&v| T::from_f64(v)).collect();
            let dy: Vec<T> = (0..n).map(|i| g[i / cols] * w[i % cols]).collect();
            let db0: Vec<T> = start[..cols].iter().map(|&v| T::from_f64(v)).collect();
            let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
            for act in ACTIVATIONS {
                let (mut dz, mut db) = (vec![T::NAN; n], db0.clone());
                elementwise::bias_activation_backward_outer(act, &y, &g, &w, &mut dz, &mut db);
                let (mut dz2, mut db2) = (vec![T::NAN; n], db0.clone());
                elementwise::bias_activation_backward(act, 1, rows, cols, &y, &dy, &mut dz2, &mut db2);
                assert_eq!(bits(&dz), bits(&dz2), "{act:?} <{}> dz", T::NAME);
                assert_eq!(bits(&db), bits(&db2), "{act:?} <{}> dbias", T::NAME);
            }
        }
        check::<f32>(rows, cols, &xs, &factors, &start);
        check::<f64>(rows, cols, &xs, &factors, &start);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A one-input-feature layer in one pass gives the bits of its rank-one product (the GEMM,
    /// α = 1, β = 0 over garbage) followed by the bias-and-activation epilogue, for every
    /// activation, widths around the SIMD widths and extreme inputs.
    #[test]
    fn outer_bias_activation_is_the_product_then_the_epilogue(
        (rows, cols) in (0usize..9, len()),
        xs in values(8),
        ws in values(100),
        bs in values(100),
    ) {
        fn check<T: Element>(rows: usize, cols: usize, xs: &[f64], ws: &[f64], bs: &[f64]) {
            let to = |v: &[f64]| v.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
            let (x, w, b) = (to(&xs[..rows]), to(&ws[..cols]), to(&bs[..cols]));
            for act in ACTIVATIONS {
                let mut expected = vec![T::from_f64(f64::NAN); rows * cols];
                flock_kernels::gemm(
                    1,
                    T::ONE,
                    flock_kernels::MatRef::new(&x, rows, 1),
                    flock_kernels::MatRef::new(&w, cols, 1).t(),
                    T::ZERO,
                    flock_kernels::MatMut::new(&mut expected, rows, cols),
                    flock_kernels::Parallelism::Sequential,
                )
                .unwrap();
                elementwise::bias_activation_forward(act, 1, rows, cols, &mut expected, &b);
                let mut fused = vec![T::from_f64(f64::NAN); rows * cols];
                elementwise::outer_bias_activation_forward(act, &x, &w, &b, &mut fused);
                for (i, (f, e)) in fused.iter().zip(&expected).enumerate() {
                    assert!(
                        f.to_f64().to_bits() == e.to_f64().to_bits()
                            || (f.to_f64().is_nan() && e.to_f64().is_nan()),
                        "{} {act:?} rows {rows} cols {cols} at {i}: {f:?} vs {e:?}",
                        T::NAME
                    );
                }
            }
        }
        check::<f32>(rows, cols, &xs, &ws, &bs);
        check::<f64>(rows, cols, &xs, &ws, &bs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Its backward in one pass gives the bits of the epilogue's backward (the bias gradient
    /// accumulated) and then the weight gradient's product `dw (+)= dzᵀ·x` (β = 0 over garbage,
    /// or β = 1), for every activation and widths around the SIMD widths.
    #[test]
    fn outer_backward_is_the_epilogue_backward_then_the_product(
        (rows, cols) in (0usize..12, len()),
        xs in values(12),
        ys in values(12 * 100),
        dys in values(12 * 100),
        old in values(200),
        accumulate in any::<bool>(),
    ) {
        fn check<T: Element>(
            (rows, cols, accumulate): (usize, usize, bool),
            xs: &[f64],
            ys: &[f64],
            dys: &[f64],
            old: &[f64],
        ) {
            let to = |v: &[f64]| v.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
            let x = to(&xs[..rows]);
            let dy = to(&dys[..rows * cols]);
            let db0 = to(&old[..cols]);
            let beta = if accumulate { T::ONE } else { T::ZERO };
            let dw0 = if accumulate {
                to(&old[100..100 + cols])
            } else {
                vec![T::from_f64(f64::NAN); cols]
            };
            for act in ACTIVATIONS {
                // y = f(something): the activation's range.
                let mut y = to(&ys[..rows * cols]);
                elementwise::activate_in_place(act, &mut y);
                let (mut db, mut dw) = (db0.clone(), dw0.clone());
                let mut dz = vec![T::ZERO; rows * cols];
                elementwise::bias_activation_backward(act, 1, rows, cols, &y, &dy, &mut dz, &mut db);
                flock_kernels::gemm(
                    1,
                    T::ONE,
                    flock_kernels::MatRef::new(&dz, rows, cols).t(),
                    flock_kernels::MatRef::new(&x, rows, 1),
                    beta,
                    flock_kernels::MatMut::new(&mut dw, cols, 1),
                    flock_kernels::Parallelism::Sequential,
                )
                .unwrap();
                let (mut fdb, mut fdw) = (db0.clone(), dw0.clone());
                elementwise::outer_bias_activation_backward(act, &x, &y, &dy, &mut fdb, &mut fdw, beta);
                let same = |a: &[T], b: &[T]| {
                    a.iter().zip(b).all(|(a, b)| {
                        a.to_f64().to_bits() == b.to_f64().to_bits()
                            || (a.to_f64().is_nan() && b.to_f64().is_nan())
                    })
                };
                assert!(same(&fdb, &db), "{} {act:?} {rows}×{cols} bias: {fdb:?} vs {db:?}", T::NAME);
                // One column: the GEMM's product is a dot product, in its own order.
                assert!(
                    cols == 1 || same(&fdw, &dw),
                    "{} {act:?} {rows}×{cols} weight: {fdw:?} vs {dw:?}",
                    T::NAME
                );
            }
        }
        check::<f32>((rows, cols, accumulate), &xs, &ys, &dys, &old);
        check::<f64>((rows, cols, accumulate), &xs, &ys, &dys, &old);
    }
}

/// `exp`, `sigmoid` (through `e^{−x}`) and `ln` check a slice once and, where every value is in
/// range, run the function without its check per vector: an element's bits must not depend on
/// which path its slice took, nor on the lanes beside it; nor a member's `sum_ln_per_member` on
/// the other members' values.
fn check_checked_paths<T: Element>(xs: &[f64]) {
    let x: Vec<T> = xs.iter().map(|&v| T::from_f64(v)).collect();
    type SliceFn<T> = fn(&[T], &mut [T]);
    // Beside a value out of every fast range, the slice and its vector take the general path.
    let cases: [(&str, SliceFn<T>, f64); 3] = [
        ("exp", elementwise::exp, 1000.0),
        ("sigmoid", elementwise::sigmoid, -1000.0),
        ("ln", elementwise::ln, 0.0),
    ];
    let bits = |v: T| v.to_f64().to_bits();
    for (name, f, outside) in cases {
        let mut whole = vec![T::NAN; x.len()];
        f(&x, &mut whole);
        for (i, &xi) in x.iter().enumerate() {
            let mut alone = [T::NAN];
            f(&[xi], &mut alone);
            let mut general = [T::NAN; 2];
            f(&[xi, T::from_f64(outside)], &mut general);
            assert_eq!(
                bits(whole[i]),
                bits(alone[0]),
                "{name} {} x = {xi}",
                T::NAME
            );
            assert_eq!(
                bits(general[0]),
                bits(alone[0]),
                "{name} {} x = {xi}",
                T::NAME
            );
        }
    }
    let mut in_place = x.clone();
    elementwise::exp_in_place(&mut in_place);
    let mut whole = vec![T::NAN; x.len()];
    elementwise::exp(&x, &mut whole);
    for (a, b) in in_place.iter().zip(&whole) {
        assert_eq!(bits(*a), bits(*b), "exp_in_place {}", T::NAME);
    }
    // One member of these values, then again beside a member holding a zero.
    let mut one = [T::NAN];
    reduce::sum_ln_per_member(1, &x, &mut one);
    let mut beside = x.clone();
    beside.extend(std::iter::repeat_n(T::ZERO, x.len()));
    let mut two = [T::NAN; 2];
    reduce::sum_ln_per_member(2, &beside, &mut two);
    assert_eq!(
        bits(one[0]),
        bits(two[0]),
        "sum_ln_per_member {} {xs:?}",
        T::NAME
    );
}

#[test]
fn checked_paths_give_the_same_bits_on_either_side_of_their_ranges() {
    // exp's fast range is (−87, 88) in f32, (−708, 709) in f64; ln's the positive normal
    // numbers: values on, inside and beyond each bound, with NaN and the infinities, alone and
    // in slices of every length.
    let edges = [
        -746.0,
        -745.0,
        -708.5,
        -708.0,
        -707.9,
        -100.0,
        -87.5,
        -87.0,
        -86.9,
        -1.0,
        0.0,
        5e-324,
        1e-310,
        f64::MIN_POSITIVE,
        1e-40,
        f64::from(f32::MIN_POSITIVE),
        1e-30,
        1.0,
        87.9,
        88.0,
        88.5,
        100.0,
        708.9,
        709.0,
        709.5,
        710.0,
        3.4e38,
        f64::MAX,
    ];
    let mut xs: Vec<f64> = edges.to_vec();
    xs.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    for len in 0..=xs.len() {
        check_checked_paths::<f32>(&xs[..len]);
        check_checked_paths::<f64>(&xs[..len]);
        for window in edges.windows(len.clamp(1, edges.len())) {
            check_checked_paths::<f32>(window);
            check_checked_paths::<f64>(window);
        }
    }
}

proptest! {
    #[test]
    fn checked_paths_give_the_same_bits_whichever_path_a_slice_takes(
        xs in len().prop_flat_map(values),
    ) {
        check_checked_paths::<f32>(&xs);
        check_checked_paths::<f64>(&xs);
        let positive: Vec<f64> = xs.iter().map(|v| v.abs()).collect();
        check_checked_paths::<f32>(&positive);
        check_checked_paths::<f64>(&positive);
    }
}
