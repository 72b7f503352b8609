//! The same bits on every FMA machine: every kernel's output on fixed inputs, hashed, against the
//! hashes committed in `tests/same_bits.golden`. An AVX-512 build and an AVX2 + FMA build
//! (`RUSTFLAGS="-C target-cpu=x86-64-v3"`) must both pass; the SSE2 baseline has no FMA, rounds
//! differently, and skips the comparison (it says so).
//!
//! `FLOCK_BLESS=1 cargo test -p flock-kernels --test suite same_bits::` rewrites the file (only
//! do that after a deliberate change of a kernel's arithmetic, in an FMA build, and check the
//! other width's build against it).

use std::fmt::Write as _;

use flock_fixtures::Golden;
use flock_kernels::elementwise::{
    Store, activate_in_place, activation_backward, add_column_sums, bias_activation_backward,
    bias_activation_forward, dot_per_member, exp_in_place, softplus_sigmoid, sum_ln_per_member,
    sum_per_member, sum_squares_per_member,
};
use flock_kernels::{Activation, Element, MatMut, MatRef, Parallelism, gemm};

/// FNV-1a over the values' bits.
fn hash<T: Element>(values: &[T]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ v.to_f64().to_bits()).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `n` values in (−3, 3) from a fixed stream (splitmix64).
fn values<T: Element>(n: usize, seed: u64) -> Vec<T> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            T::from_f64(((z >> 11) as f64 / (1u64 << 53) as f64) * 6.0 - 3.0)
        })
        .collect()
}

/// Lengths that leave every tail a vector of 2, 4, 8 or 16 lanes can leave.
const LENGTHS: [usize; 10] = [1, 3, 7, 8, 15, 16, 17, 33, 50, 67];

/// `name hash` lines for every kernel in element type `T`.
fn kernel_hashes<T: Element>(tag: &str, out: &mut String) {
    let mut line = |name: String, h: u64| {
        writeln!(out, "{tag} {name} {h:016x}").unwrap();
    };
    // GEMM: every transpose, shapes of the seed (32), classification (784 → 200 → 10) in
    // miniature, thin shapes (n = 1, m = 1, k = 1) and odd sizes; 3 members, A shared or not.
    let shapes = [
        (5, 32, 32),
        (7, 13, 17),
        (16, 1, 33),
        (1, 24, 50),
        (9, 10, 1),
        (20, 40, 67),
        (3, 50, 200),
    ];
    for (m, n, k) in shapes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (beta, shared) in [(0.0, false), (0.5, true)] {
                let members = 3;
                let a: Vec<T> = values(if shared { m * k } else { members * m * k }, 1);
                let b: Vec<T> = values(members * k * n, 2);
                let mut c: Vec<T> = values(members * m * n, 3);
                let a_ref = match (ta, shared) {
                    (false, false) => MatRef::new(&a, m, k),
                    (false, true) => MatRef::shared(&a, m, k),
                    (true, false) => MatRef::new(&a, k, m).t(),
                    (true, true) => MatRef::shared(&a, k, m).t(),
                };
                let b_ref = if tb {
                    MatRef::new(&b, n, k).t()
                } else {
                    MatRef::new(&b, k, n)
                };
                gemm(
                    members,
                    T::from_f64(1.25),
                    a_ref,
                    b_ref,
                    T::from_f64(beta),
                    MatMut::new(&mut c, m, n),
                    Parallelism::Sequential,
                )
                .unwrap();
                line(
                    format!("gemm/{m}x{n}x{k}/{}{}/beta{beta}", ta as u8, tb as u8),
                    hash(&c),
                );
            }
        }
    }
    for n in LENGTHS {
        let x: Vec<T> = values(n, 4);
        let y: Vec<T> = values(n, 5);
        for a in Activation::ALL {
            let mut v = x.clone();
            activate_in_place(a, &mut v);
            line(format!("activate/{}/{n}", a.name()), hash(&v));
            let mut dx: Vec<T> = values(n, 6);
            activation_backward(a, &v, &y, &mut dx, Store::Accumulate);
            line(format!("activation_backward/{}/{n}", a.name()), hash(&dx));
        }
        let mut e = x.clone();
        exp_in_place(&mut e);
        line(format!("exp/{n}"), hash(&e));
        let (mut sp, mut sg) = (vec![T::ZERO; n], vec![T::ZERO; n]);
        softplus_sigmoid(&x, &mut sp, &mut sg);
        line(format!("softplus_sigmoid/{n}"), hash(&[sp, sg].concat()));
        // Per-member reductions over 3 members of n values each.
        let xm: Vec<T> = values(3 * n, 7);
        let ym: Vec<T> = values(3 * n, 8);
        let mut out = [T::ZERO; 3];
        sum_per_member(3, &xm, &mut out);
        line(format!("sum_per_member/{n}"), hash(&out));
        sum_squares_per_member(3, &xm, &mut out);
        line(format!("sum_squares_per_member/{n}"), hash(&out));
        dot_per_member(3, &xm, &ym, &mut out);
        line(format!("dot_per_member/{n}"), hash(&out));
        let positive: Vec<T> = xm.iter().map(|v| v.abs() + T::from_f64(0.01)).collect();
        sum_ln_per_member(3, &positive, &mut out);
        line(format!("sum_ln_per_member/{n}"), hash(&out));
        // Bias + activation of a 2-member, 4-row layer of n units, and its backward.
        for a in [Activation::Tanh, Activation::Relu, Activation::Softplus] {
            let mut z: Vec<T> = values(2 * 4 * n, 9);
            let bias: Vec<T> = values(2 * n, 10);
            bias_activation_forward(a, 2, 4, n, &mut z, &bias);
            let dy: Vec<T> = values(2 * 4 * n, 11);
            let mut dz = vec![T::ZERO; 2 * 4 * n];
            let mut db: Vec<T> = values(2 * n, 12);
            bias_activation_backward(a, 2, 4, n, &z, &dy, &mut dz, &mut db);
            line(
                format!("bias_activation/{}/{n}", a.name()),
                hash(&[z, dz, db].concat()),
            );
        }
        let mut sums: Vec<T> = values(n, 13);
        add_column_sums(&values::<T>(5 * n, 14), &mut sums);
        line(format!("add_column_sums/{n}"), hash(&sums));
    }
}

fn all_hashes() -> String {
    let mut out = String::new();
    kernel_hashes::<f32>("f32", &mut out);
    kernel_hashes::<f64>("f64", &mut out);
    out
}

#[test]
fn every_kernel_gives_the_committed_bits() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/same_bits.golden");
    let got = all_hashes();
    if !cfg!(target_feature = "fma") {
        println!(
            "{}: no FMA in this build ({}); its roundings differ from the FMA builds' and are \
             not compared",
            path.display(),
            flock_kernels::SIMD_LEVEL
        );
        return;
    }
    match flock_fixtures::check_golden(&path, &got) {
        Ok(Golden::Matches) => {}
        Ok(Golden::Blessed) => println!("wrote {}", path.display()),
        Err(e) => panic!(
            "kernel outputs in this build ({}): {e}",
            flock_kernels::SIMD_LEVEL
        ),
    }
}
