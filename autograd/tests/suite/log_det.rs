//! `Graph::log_det_spd` against determinants by Gaussian elimination with partial pivoting, in
//! f64 and f32, and its NaN for matrices that are not positive definite.

use flock_autograd::*;
use flock_kernels::Element;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// `ln det` of an `n × n` row-major matrix by elimination with partial pivoting (f64), or
/// `None` if the determinant is not positive.
fn log_det_naive(n: usize, m: &[f64]) -> Option<f64> {
    let mut a = m.to_vec();
    let mut log_abs = 0.0;
    let mut sign = 1.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("rows left");
        if a[pivot * n + col] == 0.0 {
            return None;
        }
        if pivot != col {
            for j in 0..n {
                a.swap(col * n + j, pivot * n + j);
            }
            sign = -sign;
        }
        let p = a[col * n + col];
        log_abs += p.abs().ln();
        sign *= p.signum();
        for i in col + 1..n {
            let f = a[i * n + col] / p;
            for j in col..n {
                a[i * n + j] -= f * a[col * n + j];
            }
        }
    }
    (sign > 0.0).then_some(log_abs)
}

/// `E` random symmetric positive-definite `n × n` matrices `I + A·Aᵀ` (`A: n × k`).
fn random_spd(members: usize, n: usize, k: usize, seed: u64) -> Vec<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut out = Vec::with_capacity(members * n * n);
    for _ in 0..members {
        let a: Vec<f64> = (0..n * k).map(|_| rng.random_range(-2.0..2.0)).collect();
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..k).map(|p| a[i * k + p] * a[j * k + p]).sum();
                out.push(dot + if i == j { 1.0 } else { 0.0 });
            }
        }
    }
    out
}

fn log_dets<T: Element>(members: usize, n: usize, values: &[f64]) -> Vec<f64> {
    let mut layout = ParamLayout::new();
    let id = layout.add("c", [n, n]).unwrap();
    let mut params = Parameters::<T>::zeros(layout, members);
    for (p, &v) in params.values_mut().iter_mut().zip(values) {
        *p = T::from_f64(v);
    }
    let mut tape = Tape::new();
    let mut g = tape.graph(&params);
    let c = g.param(id).unwrap();
    let ld = g.log_det_spd(c).unwrap();
    (0..members).map(|e| g.values(ld, e)[0].to_f64()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_elimination(members in 1usize..4, n in 1usize..9, k in 1usize..5,
                           seed in any::<u64>()) {
        let values = random_spd(members, n, k, seed);
        let f64s = log_dets::<f64>(members, n, &values);
        let f32s = log_dets::<f32>(members, n, &values);
        for e in 0..members {
            let expected = log_det_naive(n, &values[e * n * n..(e + 1) * n * n])
                .expect("I + A·Aᵀ has a positive determinant");
            // The condition number of I + A·Aᵀ stays below ≈ 1 + 16k here.
            let tol = 1e-12 * expected.abs().max(1.0);
            prop_assert!((f64s[e] - expected).abs() <= tol, "f64 member {e}: {} vs {expected}", f64s[e]);
            let tol32 = 1e-4 * expected.abs().max(1.0);
            prop_assert!((f32s[e] - expected).abs() <= tol32, "f32 member {e}: {} vs {expected}", f32s[e]);
        }
    }
}

#[test]
fn not_positive_definite_is_nan_for_that_member_only() {
    // Member 0: diag(1, 2) (ln 2); member 1: eigenvalues 3 and −1; member 2: NaN entry.
    let values = [
        1.0,
        0.0,
        0.0,
        2.0,
        1.0,
        2.0,
        2.0,
        1.0,
        1.0,
        f64::NAN,
        0.0,
        1.0,
    ];
    let out = log_dets::<f64>(3, 2, &values);
    assert!((out[0] - 2f64.ln()).abs() < 1e-15, "{}", out[0]);
    assert!(out[1].is_nan() && out[2].is_nan(), "{out:?}");
}

#[test]
fn reads_the_symmetric_part() {
    // [[2, 3], [−1, 2]]: symmetric part [[2, 1], [1, 2]], det 3 (the matrix's own det is 7).
    let out = log_dets::<f64>(1, 2, &[2.0, 3.0, -1.0, 2.0]);
    assert!((out[0] - 3f64.ln()).abs() < 1e-15, "{}", out[0]);
}

#[test]
fn rejects_a_non_square_matrix() {
    let mut layout = ParamLayout::new();
    let id = layout.add("c", [2, 3]).unwrap();
    let params = Parameters::<f64>::zeros(layout, 1);
    let mut tape = Tape::new();
    let mut g = tape.graph(&params);
    let c = g.param(id).unwrap();
    assert!(matches!(
        g.log_det_spd(c),
        Err(AutogradError::InvalidShape {
            op: "log_det_spd",
            ..
        })
    ));
}
