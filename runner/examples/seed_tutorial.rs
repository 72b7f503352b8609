//! The seed tutorial end to end: Patterns A, B and C on the sinc problem, the summary table with
//! exact scores, and the figure (predictive bands over calibration curves) as PNG and SVG — the
//! same as `flock demo`.
//!
//! `cargo run --release -p flock-runner --example seed_tutorial [-- --fixture | --fixture-data]`
//! writes `target/flock-figures/seed_tutorial.png` and `.svg`.

use std::path::PathBuf;

use flock_runner::app::patterns::{Init, tutorial};
use flock_runner::app::seed::ExampleOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = ExampleOptions::from_args()?;
    let data = options.data()?;
    let init = if options.fixture {
        Init::Fixture
    } else {
        Init::Seed(options.init_seed)
    };
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/flock-figures");
    tutorial(&data, init, options.init_seed, &out)?;
    Ok(())
}
