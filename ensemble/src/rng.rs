//! Per-member random streams: member `e`'s stream depends only on `(seed, e)`.

use flock_kernels::Element;
use flock_kernels::elementwise::ln;
use rand::{Rng, RngExt};
use rand_pcg::Pcg64;

/// The random generator each member's initialisation draws from (PCG-XSL-RR 128/64).
pub type MemberRng = Pcg64;

/// SplitMix64: spreads a seed's bits before it becomes a PCG state.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Member `member`'s generator for `seed`: a PCG with a state derived from `seed` and the
/// member index as its stream, so streams are independent and do not depend on how many
/// members there are or on threads.
///
/// ```
/// use flock_ensemble::member_rng;
/// use rand::Rng;
/// let (mut a, mut b) = (member_rng(7, 3), member_rng(7, 3));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert_ne!(member_rng(7, 3).next_u64(), member_rng(7, 4).next_u64());
/// ```
pub fn member_rng(seed: u64, member: usize) -> MemberRng {
    let state = (u128::from(splitmix64(seed)) << 64) | u128::from(splitmix64(!seed));
    Pcg64::new(state, member as u128)
}

/// One standard-normal draw (Marsaglia's polar method).
///
/// ```
/// let mut rng = flock_ensemble::member_rng(0, 0);
/// let draws: Vec<f64> = (0..10_000).map(|_| flock_ensemble::standard_normal(&mut rng)).collect();
/// let mean = draws.iter().sum::<f64>() / 1e4;
/// assert!(mean.abs() < 0.05);
/// ```
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let u: f64 = rng.random_range(-1.0..1.0);
        let v: f64 = rng.random_range(-1.0..1.0);
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * s.ln() / s).sqrt();
        }
    }
}

/// Pairs drawn per vectorised pass of [`fill_standard_normal`].
const PAIRS_PER_PASS: usize = 128;

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A uniform draw in `[−1, 1)` from the top 53 bits of one `u64`.
#[inline(always)]
fn symmetric_uniform(bits: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 52) as f64;
    (bits >> 11) as f64 * SCALE - 1.0
}

/// Fills `out` with standard-normal draws from `rng` — Marsaglia's polar method as in
/// [`standard_normal`], but keeping both values of every accepted pair and taking the
/// logarithms of a pass of pairs with the vectorised `ln` of `flock-kernels`: about 5× faster per
/// draw than calling [`standard_normal`] `out.len()` times (and a different stream of values).
///
/// The values depend only on the generator's state and `out.len()`.
///
/// ```
/// let mut rng = flock_ensemble::member_rng(0, 0);
/// let mut draws = vec![0.0f64; 10_000];
/// flock_ensemble::fill_standard_normal(&mut rng, &mut draws);
/// let mean = draws.iter().sum::<f64>() / 1e4;
/// assert!(mean.abs() < 0.05);
/// ```
pub fn fill_standard_normal<T: Element, R: Rng + ?Sized>(rng: &mut R, out: &mut [T]) {
    // The uniforms are SplitMix64 outputs for the counters 0, 1, 2, … keyed by one draw of `rng`:
    // each is a function of its counter alone, so a pass of candidates is computed as one
    // vectorisable loop, and only the keeping of accepted pairs runs one by one.
    let key = rng.next_u64();
    let mut counter = 0u64;
    let mut candidates = [[0.0f64; 3]; PAIRS_PER_PASS];
    // One spare slot: a rejected candidate is written and then overwritten (no branch).
    let mut u = [0.0f64; PAIRS_PER_PASS + 1];
    let mut v = [0.0f64; PAIRS_PER_PASS + 1];
    let mut s = [0.0f64; PAIRS_PER_PASS + 1];
    let mut log_s = [0.0f64; PAIRS_PER_PASS];
    let mut factor = [0.0f64; PAIRS_PER_PASS];
    for chunk in out.chunks_mut(2 * PAIRS_PER_PASS) {
        let pairs = chunk.len().div_ceil(2);
        let mut accepted = 0;
        while accepted < pairs {
            for (i, c) in candidates.iter_mut().enumerate() {
                let n = counter + 2 * i as u64;
                let a = symmetric_uniform(splitmix64(key.wrapping_add(n.wrapping_mul(GAMMA))));
                let b =
                    symmetric_uniform(splitmix64(key.wrapping_add((n + 1).wrapping_mul(GAMMA))));
                *c = [a, b, a * a + b * b];
            }
            counter += 2 * PAIRS_PER_PASS as u64;
            for &[a, b, r] in &candidates {
                (u[accepted], v[accepted], s[accepted]) = (a, b, r);
                accepted += usize::from(r > 0.0 && r < 1.0);
                if accepted == pairs {
                    break;
                }
            }
        }
        ln(&s[..pairs], &mut log_s[..pairs]);
        // A loop the compiler turns into vector divisions and square roots.
        for ((f, &l), &r) in factor[..pairs].iter_mut().zip(&log_s).zip(&s) {
            *f = (-2.0 * l / r).sqrt();
        }
        let (whole, tail) = chunk.split_at_mut(chunk.len() & !1);
        for (i, out) in whole.chunks_exact_mut(2).enumerate() {
            out[0] = T::from_f64(u[i] * factor[i]);
            out[1] = T::from_f64(v[i] * factor[i]);
        }
        if let Some(last) = tail.first_mut() {
            let i = pairs - 1;
            *last = T::from_f64(u[i] * factor[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_normals_have_the_right_moments_and_tails() {
        let mut rng = member_rng(3, 1);
        let mut xs = vec![0.0f64; 400_001];
        fill_standard_normal(&mut rng, &mut xs);
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let kurtosis = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n / (var * var);
        assert!(mean.abs() < 0.005, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!((kurtosis - 3.0).abs() < 0.05, "kurtosis {kurtosis}");
        // P(|Z| > 1.96) = 0.05, P(|Z| > 3) = 0.0027.
        let beyond = |t: f64| xs.iter().filter(|x| x.abs() > t).count() as f64 / n;
        assert!((beyond(1.959_964) - 0.05).abs() < 0.002);
        assert!((beyond(3.0) - 0.0027).abs() < 0.0005);
        // The same state and length give the same values; f32 is the f64 draw rounded.
        let mut again = vec![0.0f64; 1001];
        let mut single = vec![0.0f32; 1001];
        fill_standard_normal(&mut member_rng(9, 2), &mut again);
        fill_standard_normal(&mut member_rng(9, 2), &mut single);
        for (a, b) in again.iter().zip(&single) {
            assert_eq!(*a as f32, *b);
        }
        assert!(again.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn standard_normal_moments() {
        let mut rng = member_rng(1, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
    }
}
