//! Per-member random streams: member `e`'s stream depends only on `(seed, e)`.

use rand::{Rng, RngExt};
use rand_pcg::Pcg64;

/// The random generator each member's initialisation draws from (PCG-XSL-RR 128/64).
pub type MemberRng = Pcg64;

/// SplitMix64: spreads a seed's bits before it becomes a PCG state.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
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

#[cfg(test)]
mod tests {
    use super::*;

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
