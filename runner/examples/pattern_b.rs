//! Pattern B — with optax-style composition: `chain(clip_by_global_norm(1), adamw(warmup-cosine))`
//! and early stopping when the mean loss has not improved by more than 0.5 for 50 steps —
//! control flow a scanned loop cannot express. Prints the seed's table row.
//!
//! `cargo run --release -p flock-runner --example pattern_b [-- --fixture]`.

use std::error::Error;
use std::time::Instant;

use flock_autograd::Batch;
use flock_ensemble::{EnsembleState, ensemble_init, ensemble_predict, ensemble_step};
use flock_optim::{AdamConfig, adamw, chain, clip_by_global_norm, warmup_cosine_decay_schedule};
use flock_runner::seed::*;

fn main() -> Result<(), Box<dyn Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let (layout, mlp) = seed_mlp();
    let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 100, NUM_EPOCHS as u64, 1e-4, 1.0)?;
    let optimizer = chain(
        clip_by_global_norm(1.0)?,
        adamw(schedule, AdamConfig::default(), 0.0, None)?,
    );
    let mut state = if options.fixture {
        EnsembleState::from_params(fixture_init_params("pattern_b", &layout)?, &optimizer)?
    } else {
        ensemble_init(
            &layout,
            mlp_init_fn(&layout, &mlp),
            &optimizer,
            ENSEMBLE_SIZE,
            options.init_seed,
        )?
    };
    let mut log_joint = seed_log_joint(&layout, mlp.clone());
    let batch = Batch::new(&data.x, &data.y, data.x.len())?;

    let (patience, mut best, mut plateau, mut epochs) = (50, f64::INFINITY, 0, 0);
    let start = Instant::now();
    for epoch in 0..NUM_EPOCHS {
        let losses = ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
        epochs = epoch + 1;
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        if mean < best - 0.5 {
            best = mean;
            plateau = 0;
        } else {
            plateau += 1;
        }
        if plateau >= patience {
            println!("Pattern B — early-stop at epoch {epoch} (loss plateau)");
            break;
        }
    }
    let runtime = start.elapsed();
    println!("Pattern B — epochs: {epochs}");

    let preds = ensemble_predict(
        &state.params,
        predict_mlp(&mlp),
        &data.x_test,
        data.x_test.len(),
    )?;
    let row = TableRow::score("B — optax + early stop", runtime, &preds.values, &data)?;
    println!("{}\n{row}", TableRow::header());
    Ok(())
}
