//! Files written by an earlier flock (`tests/data/legacy`, see its README) still read: model
//! files predict what they predicted then, and a training state whose optimizer state is
//! identified only by a Rust type name (before the versioned tag) restores.

use std::path::{Path, PathBuf};

use flock_autograd::{Activation, Mlp, MlpConfig, ParamLayout};
use flock_optim::{AdamConfig, adam};
use flock_runner::checkpoint::Checkpoint;
use flock_runner::{FitMethod, FittedRegressor, Matrix};

fn legacy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/legacy")
        .join(name)
}

/// A CSV of numbers with a header, row-major.
fn read_csv(name: &str) -> (Vec<String>, Vec<f64>) {
    let text = std::fs::read_to_string(legacy(name)).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let values = lines
        .flat_map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()))
        .collect();
    (header, values)
}

#[test]
fn old_model_files_predict_what_they_predicted() {
    let (_, inputs) = read_csv("inputs.csv");
    let x = Matrix::new(&inputs, 2).unwrap();
    for (model, predictions) in [
        ("map.safetensors", "map_predictions.csv"),
        ("vi.safetensors", "vi_predictions.csv"),
    ] {
        let model = FittedRegressor::<f64>::load(legacy(model)).unwrap();
        assert_eq!(model.features(), 2);
        assert_eq!(model.feature_names(), None, "not recorded then");
        assert_eq!(model.spec().hidden, vec![8]);
        let p = model.predict(&x).unwrap();
        let (header, expected) = read_csv(predictions);
        assert_eq!(
            header,
            [
                "mean",
                "total_std",
                "epistemic_std",
                "aleatoric_std",
                "q0.025",
                "q0.975"
            ]
        );
        let (lo, hi) = p.interval(0.95).unwrap();
        let columns = [
            p.mean().to_vec(),
            p.std().to_vec(),
            p.epistemic_std(),
            p.aleatoric_std(),
            lo,
            hi,
        ];
        for (i, row) in expected.chunks_exact(6).enumerate() {
            for (c, &want) in row.iter().enumerate() {
                let got = columns[c][i];
                assert!(
                    (got - want).abs() <= 1e-9 * (1.0 + want.abs()),
                    "{predictions} row {i} {}: {got} vs {want}",
                    header[c]
                );
            }
        }
        match model.spec().method {
            FitMethod::Map => assert_eq!(model.networks().members(), 3),
            FitMethod::Vi(vi) => {
                assert_eq!(vi.rank, 1);
                assert_eq!(model.networks().members(), 3 * 2);
            }
        }
    }
}

#[test]
fn an_old_training_state_restores() {
    let mut layout = ParamLayout::new();
    Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(2, 2, 8, 1, Activation::Relu),
    )
    .unwrap();
    let checkpoint = Checkpoint::read(&legacy("map_epoch2.state")).unwrap();
    assert!(checkpoint.metadata("optimizer_state_tag").is_none());
    let adam = adam(1e-2, AdamConfig::default()).unwrap();
    let (training, streams) = checkpoint.training::<f64, _>(&adam, &layout, 3).unwrap();
    assert_eq!(training.step(), 8);
    assert!(streams.is_none());
    assert!(training.member_losses(2).all(f64::is_finite));
    // The wrong number of members, or a layout of another width, is refused.
    assert!(checkpoint.training::<f64, _>(&adam, &layout, 2).is_err());
    let mut wider = ParamLayout::new();
    Mlp::new(&mut wider, "", MlpConfig::new(2, 2, 9, 1, Activation::Relu)).unwrap();
    assert!(checkpoint.training::<f64, _>(&adam, &wider, 3).is_err());
}
