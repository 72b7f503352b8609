//! The standard normal's density, distribution function and log-density, accurate to an ulp or
//! two (through `libm`'s `erfc`, so the far tails keep their relative accuracy).

use core::f64::consts::{FRAC_1_SQRT_2, PI};

use flock_kernels::{F64Vector, SimdVector, exp_f64};

/// `½·ln(2π)`.
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// `φ(z) = e^{−z²/2}/√(2π)`.
#[inline]
pub fn pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

/// `Φ(z) = ½·erfc(−z/√2)`.
#[inline]
pub fn cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// `log N(y | μ, σ)`.
#[inline]
pub fn log_pdf(y: f64, mu: f64, sigma: f64) -> f64 {
    let z = (y - mu) / sigma;
    -0.5 * z * z - sigma.ln() - HALF_LN_2PI
}

/// The standard normal quantile `Φ⁻¹(p)` (Acklam's approximation refined by two Newton steps on
/// `Φ`; relative error below 1e-14 on `(1e-300, 1 − 1e-16)`).
pub fn quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.024_25;
    let mut x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    for _ in 0..2 {
        let d = pdf(x);
        if d > 0.0 {
            x -= (cdf(x) - p) / d;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_inverts_cdf() {
        for &p in &[1e-12, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999] {
            let x = quantile(p);
            assert!((cdf(x) - p).abs() <= 1e-15 * p.max(1e-3) + 1e-16, "p {p}");
        }
        assert!((quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-14);
    }
}

/// Table spacing of [`cdf_pdf`]: nodes at `k/32` (so `|h| ≤ 1/64`).
const STEPS_PER_UNIT: f64 = 32.0;
/// Nodes cover `[−RANGE, RANGE]`; beyond it [`cdf_pdf`] falls back to `erfc`/`exp`.
const RANGE: f64 = 9.0;
const NODES: usize = (2.0 * RANGE * STEPS_PER_UNIT) as usize + 1;

/// Terms of each Taylor series: the truncation is `(|z|·h)^TERMS/TERMS!` relative, below 1e-18
/// for `|z| ≤ 9`, `h ≤ 1/64`.
const TERMS: usize = 11;

/// Per node `z₀`: `Φ(z₀)`, then the Taylor coefficients in `h` of `Φ(z₀ + h) − Φ(z₀)` (orders
/// 1..=TERMS) and of `φ(z₀ + h)` (orders 0..TERMS), from `dⁿφ/dzⁿ = (−1)ⁿ Heₙ(z)·φ(z)`.
struct Node {
    cdf: f64,
    cdf_poly: [f64; TERMS],
    pdf_poly: [f64; TERMS],
}

fn table() -> &'static [Node] {
    static TABLE: std::sync::OnceLock<Vec<Node>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..NODES)
            .map(|k| {
                let z = k as f64 / STEPS_PER_UNIT - RANGE;
                let phi = pdf(z);
                // Probabilists' Hermite polynomials He₀..He_{TERMS−1} at z.
                let mut he = [0.0; TERMS];
                he[0] = 1.0;
                he[1] = z;
                for n in 2..TERMS {
                    he[n] = z * he[n - 1] - (n - 1) as f64 * he[n - 2];
                }
                let mut factorial = 1.0;
                let mut cdf_poly = [0.0; TERMS];
                let mut pdf_poly = [0.0; TERMS];
                for n in 0..TERMS {
                    // φ⁽ⁿ⁾/n! for φ's series; Φ⁽ⁿ⁺¹⁾/(n+1)! = φ⁽ⁿ⁾/(n+1)! for Φ's.
                    let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
                    let derivative = sign * he[n] * phi;
                    pdf_poly[n] = derivative / factorial;
                    cdf_poly[n] = derivative / (factorial * (n + 1) as f64);
                    factorial *= (n + 1) as f64;
                }
                Node {
                    cdf: cdf(z),
                    cdf_poly,
                    pdf_poly,
                }
            })
            .collect()
    })
}

/// `(Φ(z), φ(z))` together, fast: Taylor series of 11 terms around the nearest node of a table
/// with spacing 1/32, `erfc`/`exp` outside `[−9, 9]`. Agrees with [`cdf`] and [`pdf`] to a few
/// ulps (tested).
#[inline]
pub fn cdf_pdf(z: f64) -> (f64, f64) {
    if z.is_nan() || z.abs() >= RANGE {
        return (cdf(z), pdf(z));
    }
    let position = (z + RANGE) * STEPS_PER_UNIT;
    let k = position.round() as usize;
    let node = &table()[k];
    let h = z - (k as f64 / STEPS_PER_UNIT - RANGE);
    let horner = |coefficients: &[f64; TERMS]| {
        coefficients
            .iter()
            .rev()
            .fold(0.0f64, |acc, &c| acc.mul_add(h, c))
    };
    (
        node.cdf + h * horner(&node.cdf_poly),
        horner(&node.pdf_poly),
    )
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn table_matches_erfc_and_exp() {
        let mut worst_cdf: f64 = 0.0;
        let mut worst_pdf: f64 = 0.0;
        for i in 0..=200_000 {
            let z = -10.0 + 20.0 * i as f64 / 200_000.0;
            let (c, p) = cdf_pdf(z);
            let (c0, p0) = (cdf(z), pdf(z));
            // Relative where the value is not tiny; absolute (scaled by φ) in the far tails.
            worst_cdf = worst_cdf.max((c - c0).abs() / c0.clamp(1e-300, 1.0).max(p0 * 1e-3));
            worst_pdf = worst_pdf.max((p - p0).abs() / p0.max(1e-300));
        }
        assert!(worst_cdf < 5e-14, "Φ off by {worst_cdf:e}");
        assert!(worst_pdf < 1e-14, "φ off by {worst_pdf:e}");
    }
}

/// `c` of the Mills-ratio variable `t = c/(c + a)`.
const MILLS_C: f64 = 5.0;
/// `t` at `a = RANGE`: the fit covers `t ∈ [T_LOW, 1]`, i.e. `a ∈ [0, 9]`.
const T_LOW: f64 = MILLS_C / (MILLS_C + RANGE);
/// `Φ(−a)/(φ(a)·t)` as a degree-17 polynomial in `u = (2t − 1 − T_LOW)/(1 − T_LOW) ∈ [−1, 1]`
/// (the Chebyshev interpolant at 60 nodes, computed in 50-digit arithmetic with mpmath and
/// truncated where its coefficients fall below 2e-17, then expanded in powers of `u`). With
/// `φ(a)` from the vector `exp`, `Φ(−a)` agrees with `libm`'s `erfc` to 2e-14 relative on `[0, 9]`
/// (tested).
const MILLS_POLY: [f64; 18] = [
    0.545_151_815_241_865_4,
    0.378_873_571_667_213_3,
    0.206_018_237_788_386_85,
    0.087_601_537_717_693_04,
    0.028_399_136_988_824_86,
    0.006_523_209_047_572_508,
    0.000_824_433_238_436_522_1,
    -4.069_882_696_105_361e-5,
    -3.547_368_248_390_628e-5,
    -2.938_241_679_951_398e-6,
    1.156_659_272_754_002_2e-6,
    2.014_012_819_010_042e-7,
    -4.402_224_022_191_674e-8,
    -1.015_659_457_051_375_7e-8,
    2.157_874_376_227_508e-9,
    4.547_538_015_378_528e-10,
    -1.025_549_088_360_198_1e-10,
    -1.516_046_928_157_580_4e-11,
];

/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `e^y` for `y ≤ 0`: [`flock_kernels::exp_f64`] (branch-free, about 1 ulp) with `y` clamped to
/// `−700` (`e^{−700} ≈ 1e-304`, where callers' tails are already negligible), so `2ⁿ` stays a
/// normal number.
#[inline(always)]
fn exp_non_positive(y: F64Vector) -> F64Vector {
    exp_f64(y.max(F64Vector::splat(-700.0)))
}

/// `(Φ(z), φ(z))` for a vector of `z`, branch-free: `φ` from the vector `exp`, and
/// `Φ(−|z|) = φ(z)·t·R(t)` with `t = 5/(5 + |z|)` and `R` the polynomial `MILLS_POLY` (Estrin's
/// scheme). For `|z| ≥ 9` the lower tail `Φ(−|z|) < 1.2e-19` is returned as 0 (so `Φ` as 0 or
/// 1, an absolute error below 1.2e-19) while `φ` stays exact; [`cdf_pdf_exact_lanes`] repairs those
/// lanes when relative accuracy in the far tail matters.
#[inline(always)]
pub fn cdf_pdf_lanes(z: F64Vector) -> (F64Vector, F64Vector) {
    let s = F64Vector::splat;
    let a = z.abs();
    let clamped = a.min(s(RANGE));
    let t = s(MILLS_C) / (s(MILLS_C) + clamped);
    let u = t.mul_add(s(2.0 / (1.0 - T_LOW)), s(-(1.0 + T_LOW) / (1.0 - T_LOW)));
    let c = |i: usize| s(MILLS_POLY[i]);
    let u2 = u * u;
    let u4 = u2 * u2;
    let u8 = u4 * u4;
    let q: [F64Vector; 9] = core::array::from_fn(|k| u.mul_add(c(2 * k + 1), c(2 * k)));
    let r0 = u2.mul_add(q[1], q[0]);
    let r1 = u2.mul_add(q[3], q[2]);
    let r2 = u2.mul_add(q[5], q[4]);
    let r3 = u2.mul_add(q[7], q[6]);
    let s0 = u4.mul_add(r1, r0);
    let s1 = u4.mul_add(r3, r2);
    let poly = (u8 * u8).mul_add(q[8], u8.mul_add(s1, s0));
    let pdf = exp_non_positive(s(-0.5) * a * a) * s(INV_SQRT_2PI);
    let lower = a.select_lt(s(RANGE), pdf * t * poly, s(0.0));
    let cdf = z.select_lt(s(0.0), lower, s(1.0) - lower);
    (cdf, pdf)
}

/// [`cdf_pdf_lanes`] with lanes `|z| ≥ 9` (and NaN) recomputed by the scalar [`cdf_pdf`], so `Φ`
/// keeps its relative accuracy in the far tails.
#[inline(always)]
pub fn cdf_pdf_exact_lanes(z: F64Vector) -> (F64Vector, F64Vector) {
    let s = F64Vector::splat;
    let (cdf, pdf) = cdf_pdf_lanes(z);
    let outside = z.abs().select_lt(s(RANGE), s(0.0), s(1.0)).reduce_add();
    if outside == 0.0 {
        return (cdf, pdf);
    }
    let lanes = <F64Vector as SimdVector>::LANES;
    let mut zs = [0.0; 16];
    let (mut cs, mut ps) = ([0.0; 16], [0.0; 16]);
    z.write_to(&mut zs);
    cdf.write_to(&mut cs);
    pdf.write_to(&mut ps);
    for k in 0..lanes {
        if zs[k].abs() >= RANGE || zs[k].is_nan() {
            (cs[k], ps[k]) = cdf_pdf(zs[k]);
        }
    }
    (F64Vector::from_slice(&cs), F64Vector::from_slice(&ps))
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    fn lanes_of(z: &[f64], exact: bool) -> Vec<(f64, f64)> {
        let lanes = <F64Vector as SimdVector>::LANES;
        let mut out = Vec::new();
        for chunk in z.chunks(lanes) {
            let mut buf = [0.0; 16];
            buf[..chunk.len()].copy_from_slice(chunk);
            let v = F64Vector::from_slice(&buf);
            let (c, p) = if exact {
                cdf_pdf_exact_lanes(v)
            } else {
                cdf_pdf_lanes(v)
            };
            let (mut cs, mut ps) = ([0.0; 16], [0.0; 16]);
            c.write_to(&mut cs);
            p.write_to(&mut ps);
            out.extend((0..chunk.len()).map(|k| (cs[k], ps[k])));
        }
        out
    }

    #[test]
    fn vector_cdf_and_pdf_match_erfc_and_exp() {
        let z: Vec<f64> = (0..=400_000)
            .map(|i| -12.0 + 24.0 * i as f64 / 400_000.0)
            .chain([0.0, -0.0, 9.0, -9.0, 8.999_999_999, -40.0, 40.0, -1e300])
            .collect();
        let (mut worst_tail, mut worst_pdf, mut worst_abs): (f64, f64, f64) = (0.0, 0.0, 0.0);
        for (&z, &(c, p)) in z.iter().zip(&lanes_of(&z, false)) {
            let (c0, p0) = (cdf(z), pdf(z));
            worst_abs = worst_abs.max((c - c0).abs());
            if p0 > 0.0 {
                worst_pdf = worst_pdf.max((p - p0).abs() / p0);
            }
            if z <= 0.0 && z > -RANGE {
                // The lower tail Φ(z), z ≤ 0, to a relative accuracy (above 0 it is 1 − Φ(−z)).
                worst_tail = worst_tail.max((c - c0).abs() / c0);
            }
        }
        assert!(worst_tail < 3e-14, "Φ(−|z|) off by {worst_tail:e} relative");
        assert!(worst_pdf < 1e-14, "φ off by {worst_pdf:e}");
        assert!(worst_abs < 4e-16, "Φ off by {worst_abs:e} absolute");
        eprintln!("worst: tail {worst_tail:e}, pdf {worst_pdf:e}, abs {worst_abs:e}");
        // The exact variant repairs the far tails.
        let far = [-9.5, -20.0, 9.5, -37.0, 12.0, -8.0];
        for (&z, &(c, p)) in far.iter().zip(&lanes_of(&far, true)) {
            let (c0, p0) = cdf_pdf(z);
            assert!((c - c0).abs() <= 1e-14 * c0.abs(), "z {z}: {c} vs {c0}");
            assert!((p - p0).abs() <= 1e-14 * p0, "z {z}");
        }
    }
}
