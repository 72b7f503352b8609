//! Every file in `fixtures/vi/`: the seed's model under a mean-field Gaussian guide with the
//! fixture's loc, rho and fixed noise — the negative tempered ELBO (Monte-Carlo and closed-form
//! KL) to 1e-10 and its gradients in loc and rho to 1e-9 of each leaf's max-norm, in f64.

use flock_autograd::*;
use flock_ensemble::model::*;
use flock_fixtures::{Value, field_f64, field_numbers};

const SITES: [&str; 6] = ["W1", "b1", "W2", "b2", "W3", "b3"];

fn seed_model(
    hidden: usize,
    sigma: f64,
) -> impl for<'c, 'g> Fn(&mut ModelContext<'c, 'g, f64>, Var, Var) -> Result<(), AutogradError> {
    move |m, x, y| {
        let w1 = m.sample("W1", normal(0.0, 1.0), [1, hidden])?;
        let b1 = m.sample("b1", normal(0.0, 1.0), [hidden])?;
        let w2 = m.sample("W2", normal(0.0, 1.0), [hidden, hidden])?;
        let b2 = m.sample("b2", normal(0.0, 1.0), [hidden])?;
        let w3 = m.sample("W3", normal(0.0, 1.0), [hidden, 1])?;
        let b3 = m.sample("b3", normal(0.0, 1.0), [1])?;
        let g = m.graph();
        let h = g.matmul(x, w1)?;
        let h = g.add(h, b1)?;
        let h = g.tanh(h);
        let h = g.matmul(h, w2)?;
        let h = g.add(h, b2)?;
        let h = g.tanh(h);
        let f = g.matmul(h, w3)?;
        let f = g.add(f, b3)?;
        let f = g.squeeze_last(f)?;
        m.observe("y", normal(f, sigma), y)
    }
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn check(name: &str, fx: &Value, kl: KlEstimator, key: &str) {
    let hidden = fx["hidden"].as_u64().unwrap() as usize;
    let members = fx["members"].as_u64().unwrap() as usize;
    let particles = fx["particles"].as_u64().unwrap() as usize;
    let beta = field_f64(fx, "kl_weight").unwrap();
    let sigma = field_f64(fx, "sigma").unwrap();
    let x = field_numbers(fx, "x").unwrap();
    let y = field_numbers(fx, "y").unwrap();
    let batch = Batch::new(&x, &y, y.len()).unwrap();
    let mut elbo = GuideElbo::new(seed_model(hidden, sigma), batch, particles, kl, 0).unwrap();
    let layout = elbo.layout().clone();
    // Variational parameters from the fixture.
    let mut params = Parameters::<f64>::zeros(layout.clone(), members);
    for site in SITES {
        for (part, field) in [("loc", "loc"), ("rho", "rho")] {
            let id = layout.find(&format!("{site}.{part}")).unwrap();
            let stacked = flock_fixtures::numbers(&fx[field][site]).unwrap();
            params.set_leaf_stacked(id, &stacked).unwrap();
        }
    }
    // Noise: fixture eps[site] is (E, S, shape); flock wants [S][site][E][len].
    let mut noise = Vec::new();
    for s in 0..particles {
        for site in elbo.sites() {
            let eps = flock_fixtures::numbers(&fx["eps"][site.name.as_str()]).unwrap();
            let len = site.shape.elems();
            for e in 0..members {
                let start = (e * particles + s) * len;
                noise.extend_from_slice(&eps[start..start + len]);
            }
        }
    }
    elbo.set_noise(Some(noise));
    let (mut ll, mut minus_kl) = (vec![0.0; members], vec![0.0; members]);
    let mut grad = vec![0.0; params.values().len()];
    elbo.evaluate(
        members,
        params.values(),
        batch,
        Weights {
            loglik: -1.0,
            logprior: -beta,
        },
        LogJointOutput {
            loglik: &mut ll,
            logprior: &mut minus_kl,
            grad: &mut grad,
        },
    )
    .unwrap();
    let expected = field_numbers(&fx[key], "loss").unwrap();
    for e in 0..members {
        let loss = -ll[e] - beta * minus_kl[e];
        assert!(
            (loss - expected[e]).abs() <= 1e-10 * expected[e].abs(),
            "{name} {key}: loss[{e}] = {loss} vs {}",
            expected[e]
        );
    }
    let grads = Parameters::from_values(layout.clone(), members, grad).unwrap();
    let mut worst = 0.0f64;
    for site in SITES {
        for (part, field) in [("loc", "grad_loc"), ("rho", "grad_rho")] {
            let theirs = flock_fixtures::numbers(&fx[key][field][site]).unwrap();
            let ours = grads
                .leaf_stacked(layout.find(&format!("{site}.{part}")).unwrap())
                .unwrap();
            let diff: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a - b).collect();
            let err = max_abs(&diff) / max_abs(&theirs).max(1e-300);
            worst = worst.max(err);
            assert!(err <= 1e-9, "{name} {key}: d/d{part} {site} off by {err:e}");
        }
    }
    println!("{name} {key}: loss matches, worst gradient leaf error {worst:.1e}");
}

#[test]
fn every_vi_fixture_matches() {
    let files = flock_fixtures::files("vi").unwrap();
    assert!(!files.is_empty());
    for path in files {
        let fx = flock_fixtures::load(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        check(&name, &fx, KlEstimator::MonteCarlo, "mc_kl");
        check(&name, &fx, KlEstimator::Analytic, "analytic_kl");
    }
}
