//! GFLOP/s of the member-batched GEMM on the seed's MLP shapes, larger ones and the Fashion-MNIST
//! classifier's, each beside the
//! machine's measured FMA peak, plus tanh throughput.
//!
//! `cargo bench -p flock-kernels --bench gflops` prints one table; `-- 784` (any text) keeps only
//! the shapes whose name contains it. Each figure is the fastest of 15 timed batches of ≈20 ms
//! after a warm-up: on a shared machine other tenants only ever slow a batch down, so the fastest
//! is the steadiest estimate of what the kernel does (the median moved by up to 25 points between
//! runs of one binary). The peak is a pure FMA loop over 12 independent vector accumulators on the
//! same build, timed the same way, so every figure reads as a fraction of the limit: the header's
//! peak is measured once per precision, and each one-thread product's share of it (`% peak¹`,
//! and that peak, `peak¹`) against the peak loop timed in the same seconds — its batches taken
//! in turns with the product's — since the host's speed can move within one run. The
//! divider's rates (`1/x`, `√x`) are the same kind of limit for tanh and Adam. The seed's input
//! layer (one input feature) is timed both as its rank-one product and separate epilogue and
//! as the one-pass kernels that replace them.

use std::hint::black_box;
use std::time::Instant;

use flock_kernels::peak::fma_peak_loop;
use flock_kernels::{
    Element, MatMut, MatRef, Parallelism, SIMD_LEVEL, SimdVector, elementwise, gemm,
};

/// Calls of `f` per batch of ≈20 ms, after ≈50 ms of warm-up calls.
fn calls_per_batch(f: &mut impl FnMut()) -> u64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_secs_f64() < 0.05 {
        f();
        calls += 1;
    }
    ((0.02 / (start.elapsed().as_secs_f64() / calls as f64)) as u64).max(1)
}

/// Seconds per call of one batch of `calls` calls of `f`.
fn batch(f: &mut impl FnMut(), calls: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

/// Fastest seconds per call of `f` over 15 batches of ≈20 ms.
fn time_per_call(mut f: impl FnMut()) -> f64 {
    let calls = calls_per_batch(&mut f);
    (0..15)
        .map(|_| batch(&mut f, calls))
        .fold(f64::INFINITY, f64::min)
}

/// Fastest seconds per call of `f` and of `g` over 15 batches of each, taken in turns (`f`, `g`,
/// `f`, …): the two figures come from the same seconds of the machine's life, so their ratio
/// does not move when the host does (on a shared machine one core's FMA peak moved by 10–15 %
/// between runs minutes apart, and within one run of this bench).
fn time_per_call_beside(mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    let (calls_f, calls_g) = (calls_per_batch(&mut f), calls_per_batch(&mut g));
    (0..15).fold((f64::INFINITY, f64::INFINITY), |(best_f, best_g), _| {
        let tf = batch(&mut f, calls_f);
        let tg = batch(&mut g, calls_g);
        (best_f.min(tf), best_g.min(tg))
    })
}

/// Peak FMA throughput of one core in GFLOP/s, from a loop of independent vector FMAs.
fn fma_peak<T: Element>() -> f64 {
    let (peak_loop, flops) = fma_peak_loop::<T>();
    flops / time_per_call(peak_loop) / 1e9
}

#[derive(Clone, Copy)]
enum Product {
    /// `Y = X·Wᵀ`: `[B, in] × [out, in]ᵀ`.
    Forward,
    /// `dW = dYᵀ·X`: `[B, out]ᵀ × [B, in]`.
    WeightGrad,
    /// `dX = dY·W`: `[B, out] × [out, in]`.
    InputGrad,
}

/// GFLOP/s of one product, timed by `time` (given the call to time, it returns its seconds per
/// call).
fn bench_product<T: Element>(
    (e, batch, fan_in, fan_out): (usize, usize, usize, usize),
    product: Product,
    par: Parallelism,
    time: impl FnOnce(&mut dyn FnMut()) -> f64,
) -> f64 {
    let fill = |len: usize| {
        (0..len)
            .map(|i| T::from_f64(((i * 7919) % 97) as f64 / 97.0 - 0.5))
            .collect::<Vec<T>>()
    };
    let x = fill(e * batch * fan_in);
    let w = fill(e * fan_out * fan_in);
    let dy = fill(e * batch * fan_out);
    let secs = match product {
        Product::Forward => {
            let mut y = vec![T::ZERO; e * batch * fan_out];
            time(&mut || {
                gemm(
                    e,
                    T::ONE,
                    MatRef::new(&x, batch, fan_in),
                    MatRef::new(&w, fan_out, fan_in).t(),
                    T::ZERO,
                    MatMut::new(&mut y, batch, fan_out),
                    par,
                )
                .unwrap();
                black_box(&y);
            })
        }
        Product::WeightGrad => {
            let mut dw = vec![T::ZERO; e * fan_out * fan_in];
            time(&mut || {
                gemm(
                    e,
                    T::ONE,
                    MatRef::new(&dy, batch, fan_out).t(),
                    MatRef::new(&x, batch, fan_in),
                    T::ZERO,
                    MatMut::new(&mut dw, fan_out, fan_in),
                    par,
                )
                .unwrap();
                black_box(&dw);
            })
        }
        Product::InputGrad => {
            let mut dx = vec![T::ZERO; e * batch * fan_in];
            time(&mut || {
                gemm(
                    e,
                    T::ONE,
                    MatRef::new(&dy, batch, fan_out),
                    MatRef::new(&w, fan_out, fan_in),
                    T::ZERO,
                    MatMut::new(&mut dx, batch, fan_in),
                    par,
                )
                .unwrap();
                black_box(&dx);
            })
        }
    };
    (2 * e * batch * fan_in * fan_out) as f64 / secs / 1e9
}

fn tanh_rate<T: Element>() -> f64 {
    let n = 16 * 80 * 32;
    let x: Vec<T> = (0..n)
        .map(|i| T::from_f64((i % 200) as f64 / 20.0 - 5.0))
        .collect();
    let mut y = vec![T::ZERO; n];
    let secs = time_per_call(|| {
        elementwise::tanh(black_box(&x), &mut y);
        black_box(&y);
    });
    n as f64 / secs / 1e9
}

/// Values per ns of one core's divider over 40,960 values, one vector at a time: `1/x`, then
/// `√x`. The passes that need one of each per value are bound by these, whatever their other
/// operations: tanh (one quotient per value) and Adam (a square root and a quotient per
/// parameter) — on Intel cores the divider, not the FMA units, is their limit.
fn divider_rates<T: Element>() -> (f64, f64) {
    let one = T::Vector::splat(T::ONE);
    (
        per_vector_rate::<T>(|v| one / v),
        per_vector_rate::<T>(|v| v.sqrt()),
    )
}

/// Values per ns of `f` applied vector by vector to 40,960 values in `[1, 11)`.
fn per_vector_rate<T: Element>(f: impl Fn(T::Vector) -> T::Vector) -> f64 {
    let n = 16 * 80 * 32;
    let lanes = T::Vector::LANES;
    let x: Vec<T> = (0..n)
        .map(|i| T::from_f64(1.0 + (i % 200) as f64 / 20.0))
        .collect();
    let mut y = vec![T::ZERO; n];
    let secs = time_per_call(|| {
        for (xs, ys) in black_box(&x)
            .chunks_exact(lanes)
            .zip(y.chunks_exact_mut(lanes))
        {
            f(T::Vector::from_slice(xs)).write_to(ys);
        }
        black_box(&y);
    });
    n as f64 / secs / 1e9
}

/// µs per call of the seed's input layer (E=16, B=80, 1→32, tanh) for the whole ensemble,
/// forward and backward (the latter with the bias and weight gradients, the input needing
/// none): `(forward as product then epilogue, in one pass, backward likewise)`.
fn outer_layer_times<T: Element>() -> [f64; 4] {
    let (e, rows, cols) = (16, 80, 32);
    let fill = |len: usize, scale: f64| {
        (0..len)
            .map(|i| T::from_f64((((i * 7919) % 97) as f64 / 97.0 - 0.5) * scale))
            .collect::<Vec<T>>()
    };
    let (x, w, b) = (fill(rows, 8.0), fill(e * cols, 2.0), fill(e * cols, 1.0));
    let dy = fill(e * rows * cols, 1.0);
    let mut y = vec![T::ZERO; e * rows * cols];
    let mut dz = vec![T::ZERO; e * rows * cols];
    let (mut db, mut dw) = (vec![T::ZERO; e * cols], vec![T::ZERO; e * cols]);
    let tanh = elementwise::Activation::Tanh;
    let us = |secs: f64| secs * 1e6;
    let forward_two = us(time_per_call(|| {
        gemm(
            e,
            T::ONE,
            MatRef::shared(&x, rows, 1),
            MatRef::new(&w, cols, 1).t(),
            T::ZERO,
            MatMut::new(&mut y, rows, cols),
            Parallelism::Sequential,
        )
        .unwrap();
        elementwise::bias_activation_forward(tanh, e, rows, cols, &mut y, &b);
        black_box(&y);
    }));
    let forward_one = us(time_per_call(|| {
        for m in 0..e {
            elementwise::outer_bias_activation_forward(
                tanh,
                &x,
                &w[m * cols..(m + 1) * cols],
                &b[m * cols..(m + 1) * cols],
                &mut y[m * rows * cols..(m + 1) * rows * cols],
            );
        }
        black_box(&y);
    }));
    let backward_two = us(time_per_call(|| {
        elementwise::bias_activation_backward(tanh, e, rows, cols, &y, &dy, &mut dz, &mut db);
        gemm(
            e,
            T::ONE,
            MatRef::new(&dz, rows, cols).t(),
            MatRef::shared(&x, rows, 1),
            T::ZERO,
            MatMut::new(&mut dw, cols, 1),
            Parallelism::Sequential,
        )
        .unwrap();
        black_box((&db, &dw));
    }));
    let backward_one = us(time_per_call(|| {
        for m in 0..e {
            let block = m * rows * cols..(m + 1) * rows * cols;
            elementwise::outer_bias_activation_backward(
                tanh,
                &x,
                &y[block.clone()],
                &dy[block],
                &mut db[m * cols..(m + 1) * cols],
                &mut dw[m * cols..(m + 1) * cols],
                T::ZERO,
            );
        }
        black_box((&db, &dw));
    }));
    [forward_two, forward_one, backward_two, backward_one]
}

fn table<T: Element>(filter: Option<&str>) {
    let peak = fma_peak::<T>();
    let threads = rayon::current_num_threads();
    println!(
        "\n{} — one core's measured FMA peak: {peak:.1} GFLOP/s ({threads} threads available)",
        T::NAME
    );
    println!(
        "{:<34} {:>10} {:>8} {:>13} {:>8} {:>10}",
        "shape (E, B, in→out, product)", "1 thread", "% peak¹", "all threads", "% peak", "peak¹"
    );
    let shapes = [
        (16, 80, 1, 32),
        (16, 80, 32, 32),
        (16, 80, 32, 1),
        (16, 80, 128, 128),
        (64, 256, 64, 64),
        // The Fashion-MNIST classifier's layers (5 members, batches of 100).
        (5, 100, 784, 200),
        (5, 100, 200, 200),
        (5, 100, 200, 10),
    ];
    let products = [
        (Product::Forward, "X·Wᵀ"),
        (Product::WeightGrad, "dYᵀ·X"),
        (Product::InputGrad, "dY·W"),
    ];
    for (e, b, fi, fo) in shapes {
        for (p, name) in products {
            let label = format!("E={e} B={b} {fi}→{fo} {name}");
            if filter.is_some_and(|f| !label.contains(f)) {
                continue;
            }
            // One thread: the product's batches in turns with the peak loop's, and its share
            // of the peak measured beside it.
            let mut peak_beside = 0.0;
            let single = bench_product::<T>((e, b, fi, fo), p, Parallelism::Sequential, |f| {
                let (peak_loop, flops) = fma_peak_loop::<T>();
                let (secs, peak_secs) = time_per_call_beside(f, peak_loop);
                peak_beside = flops / peak_secs / 1e9;
                secs
            });
            let multi = bench_product::<T>(
                (e, b, fi, fo),
                p,
                Parallelism::Rayon { min_flops: 0 },
                |f| time_per_call(f),
            );
            println!(
                "{:<34} {single:>10.1} {:>7.0}% {multi:>13.1} {:>7.0}% {peak_beside:>10.1}",
                label,
                100.0 * single / peak_beside,
                100.0 * multi / (peak * threads as f64),
            );
        }
    }
    println!(
        "¹ one thread's share of the FMA peak measured beside it (their batches in turns), and \
         that peak"
    );
    println!(
        "tanh: {:.2} elements/ns (1 thread, 40,960 elements)",
        tanh_rate::<T>()
    );
    let [forward_two, forward_one, backward_two, backward_one] = outer_layer_times::<T>();
    println!(
        "input layer E=16 B=80 1→32 tanh (µs, 1 thread): forward {forward_two:.2} as product \
         and epilogue, {forward_one:.2} in one pass; backward {backward_two:.2} / {backward_one:.2}"
    );
    let (divide, sqrt) = divider_rates::<T>();
    println!("divide: {divide:.2} values/ns (1 thread, 40,960 values: 1/x)");
    println!("square root: {sqrt:.2} values/ns (1 thread, 40,960 values: √x)");
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters the shapes.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    println!("flock-kernels GEMM throughput, SIMD level {SIMD_LEVEL} (GFLOP/s)");
    table::<f32>(filter.as_deref());
    table::<f64>(filter.as_deref());
}
