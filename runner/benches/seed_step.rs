//! The seed workload (E = 16, N = 80, 1→32→32→1 tanh, Adam 5e-3, full batch): one
//! `EnsembleMAP.update` step — forward, backward, optimizer — in f32 and f64, on one thread and
//! with members split over two threads. Run: `cargo bench -p flock-runner --bench seed_step`.

use flock_autograd::*;
use flock_ensemble::{MemberRng, ParallelLogJoint};
use flock_kernels::Element;
use flock_optim::{AdamConfig, adam};
use flock_runner::app::seed::seed_log_joint;
use flock_runner::map::EnsembleMAP;

fn main() {
    divan::main();
}

fn bench_step<T: Element>(bencher: divan::Bencher<'_, '_>, threads: usize) {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, 32, 2, Activation::Tanh),
    )
    .unwrap();
    let init = mlp.member_init::<T, MemberRng>(&layout);
    let parts = (0..threads)
        .map(|_| seed_log_joint::<T>(&layout, mlp.clone()))
        .collect();
    let mut map = EnsembleMAP::new(
        ParallelLogJoint::new(parts),
        init,
        adam(5e-3, AdamConfig::default()).unwrap(),
        16,
        1.0,
    )
    .unwrap();
    let mut state = map.init(0).unwrap();
    let x: Vec<T> = (0..80)
        .map(|i| T::from_f64(i as f64 / 4.0 - 10.0))
        .collect();
    let y: Vec<T> = x.iter().map(|v| T::from_f64(v.to_f64().sin())).collect();
    let batch = Batch::new(&x, &y, 80).unwrap();
    map.update(&mut state, batch, 1.0).unwrap();
    bencher.bench_local(|| {
        map.update(&mut state, batch, 1.0).unwrap();
    });
}

#[divan::bench(types = [f32, f64], args = [1, 2], sample_count = 60, sample_size = 20)]
fn seed_step<T: Element>(bencher: divan::Bencher<'_, '_>, threads: usize) {
    bench_step::<T>(bencher, threads);
}
