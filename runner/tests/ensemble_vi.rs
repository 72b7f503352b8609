//! `EnsembleVI`: reproducible runs, the predictive's shape and order, configuration errors.

use flock_autograd::{AutogradError, Batch, Var};
use flock_ensemble::model::{ModelContext, normal};
use flock_optim::{AdamConfig, adam};
use flock_runner::map::{RunError, RunOptions};
use flock_runner::vi::{EnsembleVI, ViConfig};

/// y ~ N(w·x + b, 0.2), w ~ N(0, 1), b ~ N(0, 1).
fn line(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
    let w = m.sample("w", normal(0.0, 1.0), [1, 1])?;
    let b = m.sample("b", normal(0.0, 1.0), [1])?;
    let g = m.graph();
    let f = g.matmul(x, w)?;
    let f = g.add(f, b)?;
    let f = g.squeeze_last(f)?;
    m.observe("y", normal(f, 0.2), y)
}

fn data() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..30).map(|i| i as f64 / 15.0 - 1.0).collect();
    let y = x
        .iter()
        .enumerate()
        .map(|(i, v)| 1.5 * v - 0.3 + 0.1 * ((i * 7 % 5) as f64 - 2.0))
        .collect();
    (x, y)
}

fn runner(
    config: ViConfig,
) -> Result<
    EnsembleVI<f64, impl flock_ensemble::model::Model<f64> + Clone + Send, flock_optim::Adam>,
    RunError<f64>,
> {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    EnsembleVI::new(
        line,
        batch,
        |_rng: &mut flock_ensemble::MemberRng| vec![0.0, 0.0],
        adam(2e-2, AdamConfig::default()).unwrap(),
        config,
    )
}

/// Members split over threads (blocks of at least 4) train to the same bits as on one thread:
/// each member's noise stream follows the member, not the block.
#[test]
fn threads_change_no_bits() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let run = |members: usize, threads: usize| {
        let config = ViConfig {
            ensemble_size: members,
            threads,
            ..ViConfig::default()
        };
        let mut vi = runner(config).unwrap();
        let result = vi.run(3, 150, batch, RunOptions::default()).unwrap();
        (bits(result.params.values()), bits(&result.losses))
    };
    let one = run(12, 1);
    assert_eq!(one, run(12, 2));
    assert_eq!(one, run(12, 3));
    // 40 members: one thread evaluates them 16 at a time (three calls of the same guide), three
    // threads 14 per block in one call each; member e's noise stream is the same either way.
    let one = run(40, 1);
    assert_eq!(one, run(40, 2));
    assert_eq!(one, run(40, 3));
    assert!(matches!(
        runner(ViConfig {
            threads: 0,
            ..ViConfig::default()
        }),
        Err(RunError::Ensemble(_))
    ));
}

#[test]
fn runs_are_reproducible_and_fit() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, 30).unwrap();
    let config = ViConfig {
        ensemble_size: 3,
        num_particles: 2,
        ..ViConfig::default()
    };
    let mut vi = runner(config).unwrap();
    let a = vi.run(5, 600, batch, RunOptions::default()).unwrap();
    let b = vi.run(5, 600, batch, RunOptions::default()).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a.params.values()), bits(b.params.values()));
    for e in 0..3 {
        // [w.loc, w.rho, b.loc, b.rho]
        let p = a.params.member(e);
        assert!(
            (p[0] - 1.5).abs() < 0.15 && (p[2] + 0.3).abs() < 0.1,
            "member {e}: {p:?}"
        );
    }
    let c = vi.run(6, 600, batch, RunOptions::default()).unwrap();
    assert_ne!(bits(a.params.values()), bits(c.params.values()));

    // The predictive: [E·S, N], member-major, draws around each member's mean line.
    let x_new = [0.0, 1.0];
    let preds = vi
        .predict(
            &a.params,
            |g, x, sites| {
                let f = g.matmul(x, sites[0])?;
                let f = g.add(f, sites[1])?;
                g.squeeze_last(f)
            },
            &x_new,
            2,
            50,
            0,
        )
        .unwrap();
    assert_eq!((preds.members, preds.points), (150, 2));
    for e in 0..3 {
        let draws: Vec<f64> = (0..50)
            .map(|s| preds.values[(e * 50 + s) * 2 + 1])
            .collect();
        let mean = draws.iter().sum::<f64>() / 50.0;
        let p = a.params.member(e);
        assert!((mean - (p[0] + p[2])).abs() < 0.1, "member {e}: {mean}");
    }
}

#[test]
fn bad_configurations_are_named() {
    let err = runner(ViConfig {
        init_scale: 0.0,
        ..ViConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("init_scale"), "{err}");
    let err = runner(ViConfig {
        num_particles: 0,
        ..ViConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("num_particles"), "{err}");
    let err = runner(ViConfig {
        ensemble_size: 0,
        ..ViConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("ensemble_size"), "{err}");
}
