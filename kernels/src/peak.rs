//! One core's FMA peak, measured: the limit every product and training step of flock's
//! benchmarks is read against (`kernels/benches/gflops.rs`, `runner/benches/workloads.rs`).

use core::hint::black_box;

use crate::{Element, SimdVector};

/// Independent accumulators: more than the FMA latency (4–5 cycles) times the FMA units (two),
/// so the loop is bound by the units' throughput alone.
const CHAINS: usize = 12;

/// Steps of each accumulator per call (≈ 1 ms of one core).
const STEPS: usize = 100_000;

/// A loop of `CHAINS` = 12 independent chains of vector fused multiply-adds (`acc ← acc·a + b`,
/// 100,000 steps each, on `T`'s widest vectors) and the floating-point operations one call does
/// (two per lane per FMA): its rate is one core's peak, the floor of any product of the same
/// build. Time it beside what it is compared with — a shared host's speed moves within minutes.
///
/// ```
/// use flock_kernels::peak::fma_peak_loop;
/// let (mut peak, flops) = fma_peak_loop::<f32>();
/// let start = std::time::Instant::now();
/// peak();
/// let gflops = flops / start.elapsed().as_secs_f64() / 1e9;
/// assert!(gflops > 0.0);
/// ```
pub fn fma_peak_loop<T: Element>() -> (impl FnMut() + Send, f64) {
    let lanes = T::Vector::LANES;
    let peak_loop = || {
        let mut acc = [T::Vector::splat(T::ZERO); CHAINS];
        let a = black_box(T::Vector::splat(T::from_f64(0.999_999)));
        let b = black_box(T::Vector::splat(T::from_f64(1e-7)));
        for _ in 0..STEPS {
            for v in acc.iter_mut() {
                *v = v.mul_add(a, b);
            }
        }
        black_box(acc);
    };
    (peak_loop, (2 * lanes * CHAINS * STEPS) as f64)
}
