//! After the first step, `ensemble_step` allocates nothing — for a tape log-joint and for a VI
//! objective drawing its noise — (counted by a global allocator, on the measuring thread — and,
//! while members run on a helper thread too, on every thread: this file holds one test, so the
//! harness's threads are idle meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use flock_autograd::*;
use flock_ensemble::*;
use flock_optim::{AdamConfig, adamw, chain, clip_by_global_norm, warmup_cosine_decay_schedule};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static EVERY_THREAD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if EVERY_THREAD.load(Ordering::Relaxed) || COUNTING.with(|c| c.get()) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// contract; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_steps_do_not_allocate() {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, 32, 2, Activation::Tanh),
    )
    .unwrap();
    let init_mlp = mlp.clone();
    let make = || {
        let mlp = mlp.clone();
        TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
            let f = mlp.forward(g, x)?;
            let f = g.squeeze_last(f)?;
            let r = g.sub(y, f)?;
            let sse = g.sum_squares(r);
            let theta = g.all_params();
            let ss = g.sum_squares(theta);
            Ok((g.scale(sse, -50.0), g.scale(ss, -0.5)))
        })
    };
    let mut lj = make();
    let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 10, 100, 1e-4, 1.0).unwrap();
    let opt = chain(
        clip_by_global_norm(1.0).unwrap(),
        adamw(schedule, AdamConfig::default(), 0.0, None).unwrap(),
    );
    let l2 = layout.clone();
    let mut state = ensemble_init(
        &layout,
        |rng| {
            let mut b = vec![0.0; l2.member_size()];
            init_mlp.init_member(&l2, rng, &mut b).unwrap();
            b
        },
        &opt,
        16,
        0,
    )
    .unwrap();
    let x: Vec<f64> = (0..80).map(|i| i as f64 / 4.0 - 10.0).collect();
    let y: Vec<f64> = x.iter().map(|v| v.sin()).collect();
    let batch = Batch::new(&x, &y, 80).unwrap();
    ensemble_step(&mut state, batch, &mut lj, &opt, 1.0, 1.0).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..50 {
        ensemble_step(&mut state, batch, &mut lj, &opt, 1.0, 1.0).unwrap();
    }
    COUNTING.with(|c| c.set(false));
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(during, 0, "{during} allocations in 50 steady-state steps");

    // Members on two threads, each block updated where it was evaluated: after the first step
    // (which splits the optimizer state), no thread allocates.
    let mut parallel = ParallelLogJoint::new(vec![make(), make()]);
    ensemble_step(&mut state, batch, &mut parallel, &opt, 1.0, 1.0).unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    EVERY_THREAD.store(true, Ordering::Relaxed);
    for _ in 0..50 {
        ensemble_step(&mut state, batch, &mut parallel, &opt, 1.0, 1.0).unwrap();
    }
    EVERY_THREAD.store(false, Ordering::Relaxed);
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        during, 0,
        "{during} allocations in 50 steady-state steps on two threads"
    );

    // A VI objective (its noise drawn every step), with a mean-field and a low-rank guide.
    for guide in [model::Guide::MeanField, model::Guide::LowRank { rank: 3 }] {
        let mut elbo = model::GuideElbo::with_guide(
            network_model,
            batch,
            guide,
            2,
            model::KlEstimator::MonteCarlo,
            0,
        )
        .unwrap();
        let loc: Vec<f64> = (0..elbo.model_size())
            .map(|i| (i as f64 * 0.37).sin())
            .collect();
        let block = elbo.init_member(&loc, 0.1).unwrap();
        let mut vi_state = ensemble_init(elbo.layout(), |_| block.clone(), &opt, 8, 0).unwrap();
        ensemble_step(&mut vi_state, batch, &mut elbo, &opt, 1.0, 1.0).unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        for _ in 0..20 {
            ensemble_step(&mut vi_state, batch, &mut elbo, &opt, 1.0, 1.0).unwrap();
        }
        COUNTING.with(|c| c.set(false));
        let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(
            during, 0,
            "{guide:?}: {during} allocations in 20 steady-state VI steps"
        );
    }
}

/// A 1→8→1 tanh network with standard-normal priors, in the model language.
fn network_model(
    m: &mut model::ModelContext<'_, '_, f64>,
    x: Var,
    y: Var,
) -> Result<(), AutogradError> {
    let w1 = m.sample("w1", model::normal(0.0, 1.0), [1, 8])?;
    let b1 = m.sample("b1", model::normal(0.0, 1.0), [8])?;
    let w2 = m.sample("w2", model::normal(0.0, 1.0), [8, 1])?;
    let g = m.graph();
    let h = g.matmul(x, w1)?;
    let h = g.add(h, b1)?;
    let h = g.tanh(h);
    let f = g.matmul(h, w2)?;
    let f = g.squeeze_last(f)?;
    m.observe("y", model::normal(f, 0.1), y)
}
