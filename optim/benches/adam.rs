//! One Adam step over the seed's MLP (E=16, P=1,153), E=64 × P=4,353 and a Fashion-MNIST
//! thread's block (E=3 × P=239,410), in ns per parameter per member: `update_and_apply` (what
//! `ensemble_step` runs) beside `update` then `apply_updates` (one pass more), measured in
//! turn. Median of 11 batches of ≈20 ms.

use std::hint::black_box;
use std::time::Instant;

use flock_kernels::Element;
use flock_optim::{AdamConfig, GradientTransformation, Layout, Params, adam, apply_updates};

fn median_secs(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_secs_f64() < 0.05 {
        f();
        calls += 1;
    }
    let per_batch = ((0.02 / (start.elapsed().as_secs_f64() / calls as f64)) as u64).max(1);
    let mut v: Vec<f64> = (0..11)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_secs_f64() / per_batch as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[5]
}

fn bench<T: Element>(members: usize, p: usize) {
    let layout = Layout::flat(members, p);
    let mut params: Vec<T> = (0..layout.len())
        .map(|i| T::from_f64((i % 13) as f64 * 0.1))
        .collect();
    let grads: Vec<T> = (0..layout.len())
        .map(|i| T::from_f64((i % 7) as f64 * 0.01 - 0.03))
        .collect();
    let opt = adam(5e-3, AdamConfig::default()).unwrap();
    let mut state = opt.init(Params::new(&params, &layout).unwrap());
    let mut u = grads.clone();
    let fused = median_secs(|| {
        u.copy_from_slice(&grads);
        opt.update_and_apply(&mut u, &mut state, &mut params, &layout);
        black_box(&params);
    });
    let apart = median_secs(|| {
        u.copy_from_slice(&grads);
        opt.update(&mut u, &mut state, Params::new(&params, &layout).unwrap());
        apply_updates(&mut params, &u);
        black_box(&params);
    });
    for (how, secs) in [("update_and_apply", fused), ("update, apply", apart)] {
        println!(
            "adam step {:<4} E={members:<3} P={p:<6} {how:<16} {:>9.2} µs  {:.3} ns per parameter per member",
            T::NAME,
            secs * 1e6,
            secs * 1e9 / (members * p) as f64
        );
    }
}

fn main() {
    bench::<f32>(16, 1153);
    bench::<f64>(16, 1153);
    bench::<f32>(64, 4353);
    bench::<f64>(64, 4353);
    bench::<f32>(3, 239_410);
}
