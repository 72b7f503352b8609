//! The seed workload from a cold start, as `cargo xtask bench` times it against JAX: process
//! start → 1,500 `EnsembleMAP.run` steps (E = 16, N = 80, 1→32→32→1 tanh, Gaussian likelihood
//! σ = 0.1, standard-normal prior, Adam 5e-3, full batch) → the printed result.
//!
//! `cargo run --release -p flock-runner --example seed_cold -- [f32|f64] [--threads N]
//! [--steps T]` (default f64, every core, 1,500 steps). The result does not depend on the
//! thread count.

use flock_autograd::*;
use flock_ensemble::{MemberRng, ParallelLogJoint};
use flock_kernels::Element;
use flock_optim::{AdamConfig, adam};
use flock_runner::app::seed::{ENSEMBLE_SIZE, HIDDEN, NUM_EPOCHS, SeedData, seed_log_joint};
use flock_runner::map::EnsembleMAP;
use flock_runner::train::RunOptions;

fn run<T: Element>(threads: usize, steps: usize) -> Result<(), Box<dyn std::error::Error>> {
    let data = SeedData::generate(666);
    let x: Vec<T> = data.x.iter().map(|&v| T::from_f64(v)).collect();
    let y: Vec<T> = data.y.iter().map(|&v| T::from_f64(v)).collect();
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, HIDDEN, 2, Activation::Tanh),
    )?;
    let init = mlp.member_init::<T, MemberRng>(&layout);
    let parts = (0..threads)
        .map(|_| seed_log_joint::<T>(&layout, mlp.clone()))
        .collect();
    let mut map = EnsembleMAP::new(
        ParallelLogJoint::new(parts),
        init,
        adam(5e-3, AdamConfig::default())?,
        ENSEMBLE_SIZE,
        1.0,
    )?;
    let result = map.run(
        0,
        steps,
        Batch::new(&x, &y, x.len())?,
        RunOptions::default(),
    )?;
    let last: Vec<f64> = (0..ENSEMBLE_SIZE)
        .map(|e| result.member_losses(e)[steps - 1].to_f64())
        .collect();
    println!(
        "{steps} steps, {ENSEMBLE_SIZE} members, {threads} thread(s), {}: mean final loss {:.6}",
        T::NAME,
        last.iter().sum::<f64>() / last.len() as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Result<Option<usize>, Box<dyn std::error::Error>> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(Some(
                args.get(i + 1)
                    .ok_or_else(|| format!("{name} needs a value"))?
                    .parse()?,
            )),
            None => Ok(None),
        }
    };
    let threads = value("--threads")?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let steps = value("--steps")?.unwrap_or(NUM_EPOCHS).max(1);
    if args.iter().any(|a| a == "f32") {
        run::<f32>(threads, steps)
    } else {
        run::<f64>(threads, steps)
    }
}
