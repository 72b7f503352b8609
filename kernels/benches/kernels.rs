//! Per-call timings of the kernels on the seed's shapes, and of the transcendentals on a VI guide's
//! size (divan). For GFLOP/s as a fraction of the machine's FMA peak, see the `gflops` bench.

use divan::Bencher;
use divan::counter::ItemsCount;
use flock_kernels::elementwise::{self, Activation};
use flock_kernels::{Element, MatMut, MatRef, Parallelism, gemm};

fn main() {
    divan::main();
}

const E: usize = 16;
const B: usize = 80;
const H: usize = 32;

fn data<T: Element>(len: usize) -> Vec<T> {
    (0..len)
        .map(|i| T::from_f64(((i * 7919) % 97) as f64 / 97.0 - 0.5))
        .collect()
}

/// `Y = X·Wᵀ` for the seed's hidden layer: E=16, B=80, 32→32 (counter: FLOPs).
#[divan::bench(types = [f32, f64])]
fn gemm_seed_hidden_forward<T: Element>(bencher: Bencher<'_, '_>) {
    let (x, w) = (data::<T>(E * B * H), data::<T>(E * H * H));
    let mut y = vec![T::ZERO; E * B * H];
    bencher
        .counter(ItemsCount::new(2 * E * B * H * H))
        .bench_local(|| {
            gemm(
                E,
                T::ONE,
                MatRef::new(&x, B, H),
                MatRef::new(&w, H, H).t(),
                T::ZERO,
                MatMut::new(&mut y, B, H),
                Parallelism::Sequential,
            )
            .unwrap();
        });
}

/// Fused bias + tanh over the seed's hidden activations (counter: elements).
#[divan::bench(types = [f32, f64])]
fn bias_tanh_seed<T: Element>(bencher: Bencher<'_, '_>) {
    let z0 = data::<T>(E * B * H);
    let bias = data::<T>(E * H);
    let mut z = z0.clone();
    bencher.counter(ItemsCount::new(E * B * H)).bench_local(|| {
        z.copy_from_slice(&z0);
        elementwise::bias_activation_forward(Activation::Tanh, E, B, H, &mut z, &bias);
    });
}

/// tanh over the seed's hidden activations (counter: elements).
#[divan::bench(types = [f32, f64])]
fn tanh_seed<T: Element>(bencher: Bencher<'_, '_>) {
    bench_map(bencher, data::<T>(E * B * H), elementwise::tanh);
}

/// The VI guide's transcendentals over one seed ensemble's latents (E=16 × 1,153 values, spread
/// over [−8, 8]; counter: elements).
fn guide_values<T: Element>() -> Vec<T> {
    (0..E * 1153)
        .map(|i| T::from_f64(((i * 7919) % 1601) as f64 / 100.0 - 8.0))
        .collect()
}

/// Times `f(x, y)` over all of `x` (counter: elements).
fn bench_map<T: Element>(bencher: Bencher<'_, '_>, x: Vec<T>, f: fn(&[T], &mut [T])) {
    let mut y = vec![T::ZERO; x.len()];
    bencher
        .counter(ItemsCount::new(x.len()))
        .bench_local(|| f(&x, &mut y));
}

#[divan::bench(types = [f32, f64])]
fn exp_guide<T: Element>(bencher: Bencher<'_, '_>) {
    bench_map(bencher, guide_values::<T>(), elementwise::exp);
}

/// `ln` of positive values (the guide's scales).
#[divan::bench(types = [f32, f64])]
fn ln_guide<T: Element>(bencher: Bencher<'_, '_>) {
    let x = guide_values::<T>()
        .into_iter()
        .map(|v| v.abs() + T::from_f64(1e-3))
        .collect();
    bench_map(bencher, x, elementwise::ln);
}

#[divan::bench(types = [f32, f64])]
fn ln_1p_guide<T: Element>(bencher: Bencher<'_, '_>) {
    let x = guide_values::<T>()
        .iter()
        .map(|v| T::from_f64(v.to_f64().abs()))
        .collect();
    bench_map(bencher, x, elementwise::ln_1p);
}

#[divan::bench(types = [f32, f64])]
fn softplus_guide<T: Element>(bencher: Bencher<'_, '_>) {
    bench_map(bencher, guide_values::<T>(), elementwise::softplus);
}

#[divan::bench(types = [f32, f64])]
fn sigmoid_guide<T: Element>(bencher: Bencher<'_, '_>) {
    bench_map(bencher, guide_values::<T>(), elementwise::sigmoid);
}
