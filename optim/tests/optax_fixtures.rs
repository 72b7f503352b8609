//! Every optax trajectory in `fixtures/optax/`: flock replays the gradients from `params0` with
//! the optimizer the file's `optax` expression describes and matches every `params[t]`.

mod common;

use common::optax_expr::{parse, schedule, transformation};
use common::{fixture_files, flatten};
use flock_optim::{
    BoxedState, GradientTransformation, Layout, Params, ScaleByAdamState, ScaleByLearningRateState,
    apply_updates,
};
use serde_json::Value;

const LEAVES: [&str; 2] = ["w", "b"];

/// Member-major buffer from `{leaf: [member][...]}`.
fn member_major(v: &Value, members: usize) -> (Vec<f64>, Layout) {
    let per_leaf: Vec<Vec<Vec<f64>>> = LEAVES
        .iter()
        .map(|leaf| {
            let arr = v[leaf]
                .as_array()
                .unwrap_or_else(|| panic!("leaf {leaf} missing"));
            assert_eq!(arr.len(), members);
            arr.iter()
                .map(|m| {
                    let mut out = Vec::new();
                    flatten(m, &mut out);
                    out
                })
                .collect()
        })
        .collect();
    let layout = Layout::new(
        members,
        LEAVES
            .iter()
            .zip(&per_leaf)
            .map(|(n, l)| (n.to_string(), l[0].len())),
    );
    let mut buf = Vec::with_capacity(layout.len());
    for e in 0..members {
        for leaf in &per_leaf {
            buf.extend_from_slice(&leaf[e]);
        }
    }
    (buf, layout)
}

fn set_injected_lr(state: &mut BoxedState, value: f64) {
    let s = state
        .downcast_mut::<(ScaleByAdamState<f64>, ScaleByLearningRateState)>()
        .expect("inject_hyperparams fixtures are built as adam with an injected learning rate");
    s.1.set_learning_rate(value);
}

#[test]
fn every_optax_trajectory_matches() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in fixture_files("optax") {
        let result = std::panic::catch_unwind(|| replay(&path));
        match result {
            Ok(Some(steps)) => {
                checked += 1;
                println!("{}: {steps} steps match", path.display());
            }
            Ok(None) => {}
            Err(_) => failures.push(path.display().to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures that do not match: {failures:?}"
    );
    assert!(checked > 0, "no optax fixtures found");
}

/// Replays one trajectory file; `None` for the schedules file.
fn replay(path: &std::path::Path) -> Option<usize> {
    {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        if d.get("schedules").is_some() {
            return None; // schedules.json, tested below
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expr = d["optax"].as_str().unwrap();
        let members = d["members"].as_u64().unwrap() as usize;
        let opt = transformation(&parse(expr));
        let (mut params, layout) = member_major(&d["params0"], members);
        let mut state = opt.init(Params::new(&params, &layout).unwrap());
        let grads = d["grads"].as_array().unwrap();
        let expected = d["params"].as_array().unwrap();
        assert_eq!(
            expected.len(),
            grads.len() + 1,
            "{name}: params has T + 1 entries"
        );
        let events = d["events"].as_array().cloned().unwrap_or_default();
        for (t, g) in grads.iter().enumerate() {
            for ev in &events {
                if ev["before_step"].as_u64() == Some(t as u64) {
                    assert_eq!(
                        ev["set_hyperparam"], "learning_rate",
                        "{name}: unsupported event"
                    );
                    assert_eq!(ev["members"], "all", "{name}: unsupported event");
                    set_injected_lr(&mut state, ev["value"].as_f64().unwrap());
                }
            }
            let (mut updates, _) = member_major(g, members);
            opt.update(
                &mut updates,
                &mut state,
                Params::new(&params, &layout).unwrap(),
            );
            apply_updates(&mut params, &updates);
            let (want, _) = member_major(&expected[t + 1], members);
            let rel = 1e-10;
            for (i, (&got, &want)) in params.iter().zip(&want).enumerate() {
                let ok = (got.is_nan() && want.is_nan())
                    || (got - want).abs() <= 1e-13 + rel * want.abs();
                assert!(
                    ok,
                    "{name} ({expr}): step {t}, value {i}: flock {got} vs optax {want} (tolerance {rel:e})"
                );
            }
        }
        Some(grads.len())
    }
}

#[test]
fn every_schedule_matches() {
    let mut checked = 0;
    for path in fixture_files("optax") {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(schedules) = d.get("schedules").and_then(Value::as_object) else {
            continue;
        };
        for (name, s) in schedules {
            let expr = s["optax"].as_str().unwrap();
            let sched = schedule(&parse(expr));
            for (t, v) in s["values"].as_array().unwrap().iter().enumerate() {
                let (got, want) = (sched.value(t as u64), v.as_f64().unwrap());
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1e-300),
                    "{name} ({expr}) at step {t}: flock {got} vs optax {want}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no schedules found");
}
