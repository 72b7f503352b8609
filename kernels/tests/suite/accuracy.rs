//! Accuracy of the vectorised transcendental functions against `std` over a dense grid that
//! includes ±300, ±0, ±∞, NaN, the type's extremes, the edges of exp's range and subnormals. The asserted bounds are the ones stated
//! in `flock_kernels::elementwise`'s documentation; the measured maxima are printed.

use flock_kernels::Element;
use flock_kernels::elementwise::{self, math::naive};

/// 200,001 points evenly over [−300, 300], a fine grid near 0, tiny magnitudes down to f32's
/// subnormals, and the special values.
fn grid<T: Element>() -> Vec<T> {
    let mut xs: Vec<f64> = (0..=200_000)
        .map(|i| -300.0 + 600.0 * i as f64 / 200_000.0)
        .collect();
    xs.extend((-2000..=2000).map(|i| i as f64 * 1e-3));
    xs.extend((-300..=300).map(|i| 10f64.powi(i / 10) * if i % 2 == 0 { 1.0 } else { -1.0 }));
    // Tiny magnitudes, f32's subnormals included: 10^(−46 … −2) in steps of 10^0.01.
    xs.extend(
        (-4600..=-200).map(|i| 10f64.powf(i as f64 / 100.0) * if i % 2 == 0 { 1.0 } else { -1.0 }),
    );
    xs.extend([
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-30,
        -1e-30,
        88.0,
        709.0,
        710.0,
        -745.0,
        -1.0,
        // The edges of f64's exp range and subnormal inputs (for ln and ln_1p).
        709.78,
        -708.5,
        -730.0,
        -744.9,
        f64::MIN_POSITIVE,
        1e-310,
        5e-324,
        -1e-310,
        1.0 - 1e-16,
        1.0 + 2.3e-16,
        -1.0 + 1e-16,
        -0.999_999,
        1e300,
    ]);
    let mut out: Vec<T> = xs.into_iter().map(T::from_f64).collect();
    out.push(T::from_f64(f64::MAX));
    out.push(T::from_f64(-f64::MAX));
    out
}

struct Report {
    max_rel: f64,
    max_abs: f64,
    worst_x: f64,
}

/// Measures fast vs reference over the grid (restricted to `domain`); special values must match
/// exactly in kind (NaN ↔ NaN, ±∞ ↔ ±∞).
fn measure<T: Element>(
    name: &str,
    fast: fn(&[T], &mut [T]),
    reference: fn(f64) -> f64,
    domain: fn(f64) -> bool,
) -> Report {
    let xs: Vec<T> = grid::<T>()
        .into_iter()
        .filter(|x| x.is_nan() || domain(x.to_f64()))
        .collect();
    let mut ys = vec![T::ZERO; xs.len()];
    fast(&xs, &mut ys);
    let mut rep = Report {
        max_rel: 0.0,
        max_abs: 0.0,
        worst_x: 0.0,
    };
    for (&x, &y) in xs.iter().zip(&ys) {
        // The reference is evaluated in f64, i.e. (for f32) against the true value.
        let r = T::from_f64(reference(x.to_f64())).to_f64();
        let r_exact = reference(x.to_f64());
        let y = y.to_f64();
        if r.is_nan() || !r.is_finite() {
            assert!(
                (r.is_nan() && y.is_nan()) || r == y,
                "{name}<{}>({}) = {y}, std gives {r}",
                T::NAME,
                x.to_f64()
            );
            continue;
        }
        assert!(
            y.is_finite(),
            "{name}<{}>({}) = {y}, std gives {r}",
            T::NAME,
            x.to_f64()
        );
        let abs = (y - r_exact).abs();
        // Subnormal results may be flushed to zero: there the absolute error is what counts.
        let min_normal = if T::NAME == "f32" {
            f32::MIN_POSITIVE as f64
        } else {
            f64::MIN_POSITIVE
        };
        if r_exact.abs() < min_normal {
            assert!(
                abs <= min_normal,
                "{name}<{}>({}) = {y}, true value {r_exact}",
                T::NAME,
                x.to_f64()
            );
            continue;
        }
        let rel = abs / r_exact.abs();
        if rel > rep.max_rel {
            rep.max_rel = rel;
            rep.worst_x = x.to_f64();
        }
        rep.max_abs = rep.max_abs.max(abs);
    }
    println!(
        "{name:<9} {:<4} max rel {:.3e} ({:.1} ulp) max abs {:.3e} worst at x = {}",
        T::NAME,
        rep.max_rel,
        rep.max_rel / T::EPSILON.to_f64(),
        rep.max_abs,
        rep.worst_x
    );
    rep
}

/// The sigmoid half of [`elementwise::softplus_sigmoid`].
fn fused_sigmoid<T: Element>(x: &[T], out: &mut [T]) {
    let mut softplus = vec![T::ZERO; x.len()];
    elementwise::softplus_sigmoid(x, &mut softplus, out);
}

fn check_all<T: Element>() {
    let eps = T::EPSILON.to_f64();
    let any = |_x: f64| true;
    type Case<T> = (
        &'static str,
        fn(&[T], &mut [T]),
        fn(f64) -> f64,
        fn(f64) -> bool,
        f64,
    );
    let cases: [Case<T>; 7] = [
        ("exp", elementwise::exp::<T>, naive::exp::<f64>, any, 4.0),
        ("ln", elementwise::ln::<T>, naive::ln::<f64>, any, 4.0),
        (
            "ln_1p",
            elementwise::ln_1p::<T>,
            naive::ln_1p::<f64>,
            any,
            4.0,
        ),
        ("tanh", elementwise::tanh::<T>, naive::tanh::<f64>, any, 4.0),
        (
            "sigmoid",
            elementwise::sigmoid::<T>,
            naive::sigmoid::<f64>,
            any,
            8.0,
        ),
        (
            "softplus",
            elementwise::softplus::<T>,
            naive::softplus::<f64>,
            any,
            8.0,
        ),
        (
            "sigmoid beside softplus",
            fused_sigmoid::<T>,
            naive::sigmoid::<f64>,
            any,
            8.0,
        ),
    ];
    for (name, fast, reference, domain, ulps) in cases {
        let rep = measure::<T>(name, fast, reference, domain);
        assert!(
            rep.max_rel <= ulps * eps,
            "{name}<{}>: {:.3e} relative error exceeds {ulps} ulp at x = {}",
            T::NAME,
            rep.max_rel,
            rep.worst_x
        );
    }
    let rep = measure::<T>("relu", elementwise::relu::<T>, naive::relu::<f64>, any);
    assert_eq!(rep.max_abs, 0.0, "relu must be exact");
}

#[test]
fn transcendental_accuracy_f32() {
    check_all::<f32>();
}

#[test]
fn transcendental_accuracy_f64() {
    check_all::<f64>();
}
