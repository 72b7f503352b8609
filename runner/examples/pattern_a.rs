//! Pattern A — from scratch: a hand-written loop over `ensemble_step` with `adam(5e-3)` and the
//! seed's Gaussian log-joint (MAP, full batch, f64), then the seed's table row.
//!
//! `cargo run --release -p flock-runner --example pattern_a` uses flock's own data and init (the
//! seed's recipe); `-- --fixture` uses the seed's exact data and pyrox's initial parameters.

use std::error::Error;
use std::time::Instant;

use flock_autograd::Batch;
use flock_ensemble::{EnsembleState, ensemble_init, ensemble_predict, ensemble_step};
use flock_optim::{AdamConfig, adam};
use flock_runner::seed::*;

fn main() -> Result<(), Box<dyn Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let (layout, mlp) = seed_mlp();
    let optimizer = adam(5e-3, AdamConfig::default())?;
    let mut state = if options.fixture {
        EnsembleState::from_params(fixture_init_params("pattern_a", &layout)?, &optimizer)?
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

    let start = Instant::now();
    for _ in 0..NUM_EPOCHS {
        ensemble_step(&mut state, batch, &mut log_joint, &optimizer, 1.0, 1.0)?;
    }
    let runtime = start.elapsed();

    let preds = ensemble_predict(
        &state.params,
        predict_mlp(&mlp),
        &data.x_test,
        data.x_test.len(),
    )?;
    let row = TableRow::score("A — from scratch", runtime, &preds.values, &data)?;
    println!("{}\n{row}", TableRow::header());
    Ok(())
}
