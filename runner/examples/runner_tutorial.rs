//! The seed's runner tutorial: its problem fitted four ways, with runtimes and exact mixture
//! scores — Layer 2's `init` + `update` in a hand-written loop, `EnsembleMAP.run` (one fused
//! loop), the `ensemble_map` one-liner, and `EnsembleVI.run` (a mean-field Gaussian guide per
//! member over the seed's model, tempered ELBO) — and the MAP-vs-VI figure. VI's predictive uses
//! the noise-free network outputs of 20 draws per member (the seed's VI counted the observation
//! noise twice).
//!
//! `cargo run --release -p flock-runner --example runner_tutorial [-- --fixture-data]
//! [--kl-weight B] [--vi-lr LR] [--vi-steps N] [--init-scale S] [--rank R]`
//!
//! Defaults: the seed's β = 1, Adam 5e-3, 1,500 steps, init scale 0.1, a mean-field guide.
//! `--kl-weight 0.1 --vi-lr 1e-2 --vi-steps 3000 --init-scale 0.01` is the tempered variant the
//! README reports; `--rank R` makes each guide low-rank plus diagonal with `R` factor columns.

use std::time::Instant;

use flock_autograd::Batch;
use flock_ensemble::model::Guide;
use flock_ensemble::standard_normal;
use flock_metrics::{FitPanel, figure_svg};
use flock_optim::{AdamConfig, adam};
use flock_runner::app::patterns::{seed_model, seed_network};
use flock_runner::app::seed::*;
use flock_runner::app::write_figure;
use flock_runner::map::{EnsembleMAP, MapOptions, ensemble_map};
use flock_runner::train::RunOptions;
use flock_runner::vi::{EnsembleVI, ViConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: f64| -> Result<f64, std::num::ParseFloatError> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<f64>())
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let kl_weight = flag("--kl-weight", 1.0)?;
    let vi_lr = flag("--vi-lr", 5e-3)?;
    let vi_steps = flag("--vi-steps", NUM_EPOCHS as f64)? as usize;
    let init_scale = flag("--init-scale", 0.1)?;
    let rank = flag("--rank", 0.0)? as usize;
    let guide = if rank == 0 {
        Guide::MeanField
    } else {
        Guide::LowRank { rank }
    };
    let data = if args.iter().any(|a| a == "--fixture-data") {
        SeedData::from_fixture()?
    } else {
        SeedData::generate(666)
    };
    let batch = Batch::new(&data.x, &data.y, data.x.len())?;
    println!("{}", TableRow::header());

    let (layout, mlp) = seed_mlp();
    let scores_of = |label: &str, runtime, params: &flock_autograd::Parameters<f64>| {
        let preds = flock_ensemble::ensemble_predict(
            params,
            predict_mlp(&mlp),
            &data.x_test,
            data.x_test.len(),
        )?;
        let row = TableRow::score(label, runtime, &preds.values, &data)?;
        println!("{row}");
        Ok::<_, Box<dyn std::error::Error>>(row)
    };

    // 1. Layer 2 by hand: `init` once, then `update` in a loop the user owns (here a plain
    //    full-batch loop; anything — logging, early stopping, data streams — can go in it).
    let start = Instant::now();
    let mut map = EnsembleMAP::new(
        seed_log_joint(&layout, mlp.clone()),
        mlp_init_fn(&layout, &mlp),
        adam(5e-3, AdamConfig::default())?,
        ENSEMBLE_SIZE,
        1.0,
    )?;
    let mut state = map.init(0)?;
    for _ in 0..NUM_EPOCHS {
        map.update(&mut state, batch, 1.0)?;
    }
    scores_of("init + update loop", start.elapsed(), &state.params)?;

    // 2. The one-liner: adam 5e-3, MAP, full batch.
    let start = Instant::now();
    let result = ensemble_map(
        seed_log_joint(&layout, mlp.clone()),
        mlp_init_fn(&layout, &mlp),
        batch,
        MapOptions {
            ensemble_size: ENSEMBLE_SIZE,
            num_epochs: NUM_EPOCHS,
            ..MapOptions::default()
        },
    )?;
    scores_of("ensemble_map", start.elapsed(), &result.params)?;

    // 3. `EnsembleMAP.run`: the same training as one fused loop.
    let start = Instant::now();
    let mut map = EnsembleMAP::new(
        seed_log_joint(&layout, mlp.clone()),
        mlp_init_fn(&layout, &mlp),
        adam(5e-3, AdamConfig::default())?,
        ENSEMBLE_SIZE,
        1.0,
    )?;
    let result = map.run(0, NUM_EPOCHS, batch, RunOptions::default())?;
    let map_row = scores_of("EnsembleMAP.run", start.elapsed(), &result.params)?;
    let map_preds = flock_ensemble::ensemble_predict(
        &result.params,
        predict_mlp(&mlp),
        &data.x_test,
        data.x_test.len(),
    )?
    .values;

    // 4. `EnsembleVI.run`: a Gaussian guide per member over the seed's model.

    let start = Instant::now();
    let config = ViConfig {
        ensemble_size: ENSEMBLE_SIZE,
        kl_weight,
        init_scale,
        guide,
        // Members split over every core (the same bits for any thread count).
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..ViConfig::default()
    };
    let model_size = 2 * HIDDEN + HIDDEN * HIDDEN + 2 * HIDDEN + 1;
    let loc_init = move |rng: &mut flock_ensemble::MemberRng| {
        (0..model_size)
            .map(|_| 0.5 * standard_normal(rng))
            .collect()
    };
    let mut vi = EnsembleVI::new(
        seed_model,
        batch,
        loc_init,
        adam(vi_lr, AdamConfig::default())?,
        config,
    )?;
    let result = vi.run(0, vi_steps, batch, RunOptions::default())?;
    let runtime = start.elapsed();
    let preds = vi.predict(
        &result.params,
        |g, x, sites| {
            let p: [flock_autograd::Var; 6] = sites.try_into().expect("six sites");
            seed_network(g, x, p)
        },
        &data.x_test,
        data.x_test.len(),
        20,
        1,
    )?;
    let label = match guide {
        Guide::MeanField => format!("EnsembleVI.run β={kl_weight}"),
        Guide::LowRank { rank } => format!("EnsembleVI.run β={kl_weight} rank {rank}"),
    };
    let vi_row = TableRow::score(label, runtime, &preds.values, &data)?;
    println!("{vi_row}");

    let panels: Vec<FitPanel<'_>> = [
        ("EnsembleMAP (16 members)", &map_preds, &map_row),
        ("EnsembleVI (16 guides × 20 draws)", &preds.values, &vi_row),
    ]
    .into_iter()
    .map(|(label, member_means, row)| FitPanel {
        label: label.to_owned(),
        x_test: &data.x_test,
        member_means,
        y_truth: Some(&data.y_truth),
        y_obs: &data.y_obs,
        train: (&data.x, &data.y),
        scores: &row.scores,
    })
    .collect();
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/flock-figures");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("runner_tutorial.png");
    write_figure(&path, figure_svg(&panels))?;
    println!("figure: {}", path.canonicalize()?.display());
    Ok(())
}
