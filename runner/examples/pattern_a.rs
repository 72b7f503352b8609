//! Pattern A — from scratch: a hand-written loop over `ensemble_step` with `adam(5e-3)` and the
//! seed's Gaussian log-joint (see `flock_runner::app::patterns::pattern_a`), then the seed's table row.
//!
//! `cargo run --release -p flock-runner --example pattern_a` uses flock's own data and init (the
//! seed's recipe); `-- --fixture` the seed's exact data and pyrox's initial parameters;
//! `-- --fixture-data` the seed's data with flock's init.

use flock_runner::app::patterns::{Init, pattern_a};
use flock_runner::app::seed::{ExampleOptions, TableRow};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let init = if options.fixture {
        Init::Fixture
    } else {
        Init::Seed(options.init_seed)
    };
    let fit = pattern_a(&data, init)?;
    let row = TableRow::score(fit.label, fit.runtime, &fit.preds, &data)?;
    println!("{}\n{row}", TableRow::header());
    Ok(())
}
