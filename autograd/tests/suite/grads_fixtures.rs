//! Every file in `fixtures/grads/`: rebuild the described MLP and log-joint from its fields, load
//! its parameters and match JAX's loglik, logprior, loss (1e-10 relative) and every gradient leaf
//! (1e-9 of that leaf's max-norm), in f64.

use flock_autograd::*;
use flock_fixtures::{Value, field_f64, field_numbers};

fn activation(name: &str) -> Activation {
    match name {
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        "softplus" => Activation::Softplus,
        other => panic!("unknown activation {other}"),
    }
}

/// The log-joint the fixture describes, as user code would write it.
fn build(spec: &Value, mlp: Mlp, layout: &ParamLayout) -> impl GraphFn<f64> + use<> {
    let lik = spec["likelihood"].as_str().unwrap().to_owned();
    let prior = spec["prior"].as_str().unwrap().to_owned();
    let sigma = spec.get("sigma").and_then(Value::as_f64);
    let min_scale = spec.get("min_scale").and_then(Value::as_f64);
    let prior_scale = spec.get("prior_scale").and_then(Value::as_f64);
    let leaves: Vec<ParamId> = layout
        .leaves()
        .iter()
        .map(|leaf| layout.find(&leaf.name).unwrap())
        .collect();
    move |g: &mut Graph<'_, f64>, x: Var, y: Var| {
        let out = mlp.forward(g, x)?;
        let ll = match lik.as_str() {
            "gaussian_sse" => {
                let f = g.squeeze_last(out)?;
                let r = g.sub(y, f)?;
                let sse = g.sum_squares(r);
                let s = sigma.unwrap();
                g.scale(sse, -0.5 / (s * s))
            }
            "normal" => {
                let f = g.squeeze_last(out)?;
                g.normal_log_density(y, f, Arg::Const(sigma.unwrap()))?
            }
            "normal_heteroscedastic" => {
                let mu = g.select_column(out, 0)?;
                let raw = g.select_column(out, 1)?;
                let s = g.softplus(raw);
                let s = g.offset(s, min_scale.unwrap());
                g.normal_log_density(y, mu, s)?
            }
            other => panic!("unknown likelihood {other}"),
        };
        let lp = match prior.as_str() {
            "sum_squares" => {
                let theta = g.all_params();
                let ss = g.sum_squares(theta);
                g.scale(ss, -0.5)
            }
            // Leaf by leaf, as the Python sums over leaves.
            "normal" => {
                let mut total = None;
                for &id in &leaves {
                    let w = g.param(id)?;
                    let term =
                        g.normal_log_density(w, Arg::Const(0.0), Arg::Const(prior_scale.unwrap()))?;
                    total = Some(match total {
                        None => term,
                        Some(t) => g.add(t, term)?,
                    });
                }
                total.unwrap()
            }
            other => panic!("unknown prior {other}"),
        };
        Ok((ll, lp))
    }
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn every_grads_fixture_matches_jax() {
    let files = flock_fixtures::files("grads").unwrap();
    assert!(!files.is_empty(), "no fixtures in grads/");
    for path in files {
        let fx = flock_fixtures::load(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let m = &fx["mlp"];
        let u = |k: &str| m[k].as_u64().unwrap() as usize;
        let config = MlpConfig::new(
            u("in_size"),
            u("out_size"),
            u("width_size"),
            u("depth"),
            activation(m["activation"].as_str().unwrap()),
        );
        let mut layout = ParamLayout::new();
        let mlp = Mlp::new(&mut layout, "", config).unwrap();
        let loss_ref = field_numbers(&fx, "loss").unwrap();
        let members = loss_ref.len();
        let mut params = Parameters::<f64>::zeros(layout.clone(), members);
        let fx_params = fx["params"].as_object().unwrap();
        assert_eq!(fx_params.len(), layout.leaves().len(), "{name}: leaf count");
        for (leaf_name, values) in fx_params {
            let id = layout
                .find(leaf_name)
                .unwrap_or_else(|| panic!("{name}: leaf {leaf_name} not in flock's MLP"));
            let stacked = flock_fixtures::numbers(values).unwrap();
            params.set_leaf_stacked(id, &stacked).unwrap();
        }
        let x = field_numbers(&fx, "x").unwrap();
        let y = field_numbers(&fx, "y").unwrap();
        let scale = field_f64(&fx, "scale").unwrap();
        let prior_weight = field_f64(&fx, "prior_weight").unwrap();
        let mut lj = TapeLogJoint::new(layout.clone(), build(&fx["log_joint"], mlp, &layout));
        let (mut ll, mut lp) = (vec![0.0; members], vec![0.0; members]);
        let mut grad = vec![0.0; params.values().len()];
        let weights = Weights {
            loglik: -scale,
            logprior: -prior_weight,
        };
        lj.evaluate(
            members,
            params.values(),
            Batch::new(&x, &y, y.len()).unwrap(),
            weights,
            LogJointOutput {
                loglik: &mut ll,
                logprior: &mut lp,
                grad: &mut grad,
            },
        )
        .unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
        for (what, ours, theirs) in [
            ("loglik", &ll, field_numbers(&fx, "loglik").unwrap()),
            ("logprior", &lp, field_numbers(&fx, "logprior").unwrap()),
        ] {
            for e in 0..members {
                assert!(
                    rel(ours[e], theirs[e]) <= 1e-10,
                    "{name}: {what}[{e}] = {} vs JAX {}",
                    ours[e],
                    theirs[e]
                );
            }
        }
        for e in 0..members {
            let loss = -scale * ll[e] - prior_weight * lp[e];
            assert!(
                rel(loss, loss_ref[e]) <= 1e-10,
                "{name}: loss[{e}] {loss} vs {}",
                loss_ref[e]
            );
        }
        let grads = Parameters::from_values(layout.clone(), members, grad).unwrap();
        let mut worst = 0.0f64;
        for (leaf_name, values) in fx["grads"].as_object().unwrap() {
            let theirs = flock_fixtures::numbers(values).unwrap();
            let ours = grads.leaf_stacked(layout.find(leaf_name).unwrap()).unwrap();
            let norm = max_abs(&theirs).max(1e-300);
            let diff: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a - b).collect();
            let err = max_abs(&diff) / norm;
            worst = worst.max(err);
            assert!(
                err <= 1e-9,
                "{name}: grad {leaf_name} off by {err:e} of its max-norm"
            );
        }
        println!("{name}: worst gradient leaf error {worst:.1e} (relative to max-norm)");
    }
}
