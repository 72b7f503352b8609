//! Pattern B — `chain(clip_by_global_norm(1), adamw(warmup-cosine))` with early stopping on a
//! loss plateau (see `flock_runner::app::patterns::pattern_b`), then the seed's table row.
//!
//! `cargo run --release -p flock-runner --example pattern_b [-- --fixture | --fixture-data]`.

use flock_runner::app::patterns::{Init, pattern_b};
use flock_runner::app::seed::{ExampleOptions, TableRow};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let init = if options.fixture {
        Init::Fixture
    } else {
        Init::Seed(options.init_seed)
    };
    let fit = pattern_b(&data, init)?;
    println!("Pattern B — early stop after {} steps", fit.steps);
    let row = TableRow::score(fit.label, fit.runtime, &fit.preds, &data)?;
    println!("{}\n{row}", TableRow::header());
    Ok(())
}
