//! Pattern C — one model, many inference paths: the seed's NumPyro model written with flock's
//! model language and trained through the same `ensemble_step` (see
//! `flock_runner::app::patterns::pattern_c`), then the seed's table row.
//!
//! `cargo run --release -p flock-runner --example pattern_c [-- --fixture]` (the seed has no
//! Pattern C initial parameters: `--fixture` selects its data, the init is the seed's
//! `init_numpyro` recipe).

use flock_runner::app::patterns::pattern_c;
use flock_runner::app::seed::{ExampleOptions, TableRow};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let fit = pattern_c(&data, options.init_seed)?;
    let row = TableRow::score(fit.label, fit.runtime, &fit.preds, &data)?;
    println!("{}\n{row}", TableRow::header());
    Ok(())
}
