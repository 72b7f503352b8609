//! Bad input gets a typed error that names the problem, and leaves the state untouched.

use flock_autograd::*;
use flock_ensemble::*;
use flock_optim::{AdamConfig, MemberState, adam};

fn setup() -> (ParamLayout, Mlp) {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, 4, 1, Activation::Tanh),
    )
    .unwrap();
    (layout, mlp)
}

fn log_joint(layout: &ParamLayout, mlp: Mlp) -> impl LogJoint<f64> {
    TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
        let f = mlp.forward(g, x)?;
        let f = g.squeeze_last(f)?;
        let ll = g.normal_log_density(y, f, Arg::Const(0.1))?;
        let theta = g.all_params();
        Ok((
            ll,
            g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.0))?,
        ))
    })
}

fn init(layout: &ParamLayout, mlp: &Mlp) -> impl FnMut(&mut MemberRng) -> Vec<f64> {
    let (layout, mlp) = (layout.clone(), mlp.clone());
    move |rng| {
        let mut block = vec![0.0; layout.member_size()];
        mlp.init_member(&layout, rng, &mut block).unwrap();
        block
    }
}

#[test]
fn init_errors_name_the_member() {
    let (layout, mlp) = setup();
    let opt = adam(1e-3, AdamConfig::default()).unwrap();
    assert_eq!(
        ensemble_init(&layout, init(&layout, &mlp), &opt, 0, 0).unwrap_err(),
        EnsembleError::ZeroMembers
    );
    let mut calls = 0;
    let short = |_: &mut MemberRng| {
        calls += 1;
        vec![0.0; if calls == 3 { 5 } else { layout.member_size() }]
    };
    assert_eq!(
        ensemble_init(&layout, short, &opt, 4, 0).unwrap_err(),
        EnsembleError::InitShape {
            member: 2,
            len: 5,
            expected: layout.member_size()
        }
    );
    let nan = |_: &mut MemberRng| {
        let mut v = vec![0.0; layout.member_size()];
        v[3] = f64::NAN;
        v
    };
    assert_eq!(
        ensemble_init(&layout, nan, &opt, 2, 0).unwrap_err(),
        EnsembleError::NonFiniteInit {
            member: 0,
            index: 3
        }
    );
}

#[test]
fn step_errors_leave_the_state_unchanged() {
    let (layout, mlp) = setup();
    let opt = adam(1e-3, AdamConfig::default()).unwrap();
    let mut state = ensemble_init(&layout, init(&layout, &mlp), &opt, 3, 0).unwrap();
    let before = state.params.clone();
    let mut lj = log_joint(&layout, mlp);
    let x = [0.1, 0.2, 0.3];
    let cases: Vec<(Batch<'_, f64>, f64, f64, EnsembleError)> = vec![
        (
            Batch {
                x: &x,
                y: &[1.0, 2.0],
                rows: 3,
                per_member: None,
            },
            1.0,
            1.0,
            EnsembleError::BatchShape {
                what: "y",
                len: 2,
                rows: 3,
            },
        ),
        (
            Batch {
                x: &[],
                y: &[],
                rows: 0,
                per_member: None,
            },
            1.0,
            1.0,
            EnsembleError::EmptyBatch,
        ),
        (
            Batch {
                x: &[0.1, f64::NAN, 0.3],
                y: &x,
                rows: 3,
                per_member: None,
            },
            1.0,
            1.0,
            EnsembleError::NonFiniteData {
                what: "x",
                index: 1,
            },
        ),
        (
            Batch {
                x: &x,
                y: &x,
                rows: 3,
                per_member: None,
            },
            0.0,
            1.0,
            EnsembleError::InvalidArgument {
                name: "scale",
                value: 0.0,
                expected: "a finite positive number (N/|B|)",
            },
        ),
        (
            Batch {
                x: &x,
                y: &x,
                rows: 3,
                per_member: None,
            },
            1.0,
            f64::NAN,
            EnsembleError::InvalidArgument {
                name: "prior_weight",
                value: f64::NAN,
                expected: "a finite number ≥ 0 (0 = MLE, 1 = MAP)",
            },
        ),
    ];
    for (batch, scale, prior_weight, expected) in cases {
        let err = ensemble_step(&mut state, batch, &mut lj, &opt, prior_weight, scale).unwrap_err();
        // NaN ≠ NaN: compare the message.
        assert_eq!(err.to_string(), expected.to_string());
        assert_eq!(state.params, before);
    }
    // A batch with two features for a one-feature MLP: the op and both shapes are named.
    let err = ensemble_step(
        &mut state,
        Batch::new(&[0.0; 6], &x, 3).unwrap(),
        &mut lj,
        &opt,
        1.0,
        1.0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("dense (x and weight)"), "{err}");
}

#[test]
fn a_diverging_member_is_left_as_it_was() {
    let (layout, mlp) = setup();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let mut state = ensemble_init(&layout, init(&layout, &mlp), &opt, 3, 0).unwrap();
    // Member 1 starts with a huge weight: its log-density overflows to -inf.
    state.params.member_mut(1)[0] = 1e300;
    let before = state.params.member(1).to_vec();
    let mut lj = log_joint(&layout, mlp);
    let x: Vec<f64> = (0..8).map(|i| i as f64).collect();
    let batch = Batch::new(&x, &x, 8).unwrap();
    let losses = ensemble_step(&mut state, batch, &mut lj, &opt, 1.0, 1.0)
        .unwrap()
        .to_vec();
    assert!(!losses[1].is_finite());
    assert!(losses[0].is_finite() && losses[2].is_finite());
    assert_eq!(state.diverged(), &[1]);
    assert_eq!(state.params.member(1), &before[..]);
    // The others moved.
    let again = ensemble_step(&mut state, batch, &mut lj, &opt, 1.0, 1.0).unwrap();
    assert!(again[0] < losses[0]);
}

#[test]
fn members_do_not_depend_on_ensemble_size_or_threads() {
    let (layout, mlp) = setup();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let x: Vec<f64> = (0..16).map(|i| i as f64 / 8.0 - 1.0).collect();
    let y: Vec<f64> = x.iter().map(|v| v.sin()).collect();
    let batch = Batch::new(&x, &y, 16).unwrap();
    let run = |members: usize, parallelism: Parallelism| {
        let mut state = ensemble_init(&layout, init(&layout, &mlp), &opt, members, 42).unwrap();
        let mlp = mlp.clone();
        let mut lj = TapeLogJoint::with_tape(
            layout.clone(),
            move |g: &mut Graph<'_, f64>, x, y| {
                let f = mlp.forward(g, x)?;
                let f = g.squeeze_last(f)?;
                let ll = g.normal_log_density(y, f, Arg::Const(0.1))?;
                let theta = g.all_params();
                Ok((ll, g.sum_squares(theta)))
            },
            Tape::with_parallelism(parallelism),
        );
        for _ in 0..20 {
            ensemble_step(&mut state, batch, &mut lj, &opt, 0.5, 2.0).unwrap();
        }
        state.params
    };
    let big = run(16, Parallelism::Rayon { min_flops: 0 });
    let small = run(8, Parallelism::Sequential);
    for e in 0..8 {
        let a: Vec<u64> = big.member(e).iter().map(|v| v.to_bits()).collect();
        let b: Vec<u64> = small.member(e).iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b, "member {e}");
    }
}

/// With per-member batches, member e trains exactly as a one-member ensemble fed member e's
/// batches would.
#[test]
fn per_member_batches_keep_members_independent() {
    let (layout, mlp) = setup();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let x: Vec<f64> = (0..40).map(|i| i as f64 / 20.0 - 1.0).collect();
    let y: Vec<f64> = x.iter().map(|v| (3.0 * v).sin()).collect();
    let mut ensemble = ensemble_init(&layout, init(&layout, &mlp), &opt, 3, 5).unwrap();
    let mut single = EnsembleState::from_params(
        Parameters::from_values(layout.clone(), 1, ensemble.params.member(1).to_vec()).unwrap(),
        &opt,
    )
    .unwrap();
    let mut batches = PerMemberBatcher::new(40, 8, Sampling::WithoutReplacement, 9, 3).unwrap();
    let mut lj = log_joint(&layout, mlp);
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let scale = batches.scale();
    for _ in 0..25 {
        batches.next_batch(&x, &y, &mut xb, &mut yb);
        let batch = Batch::per_member(&xb, &yb, 8, 3).unwrap();
        ensemble_step(&mut ensemble, batch, &mut lj, &opt, 1.0, scale).unwrap();
        let (x1, y1) = (&xb[8..16], &yb[8..16]);
        ensemble_step(
            &mut single,
            Batch::new(x1, y1, 8).unwrap(),
            &mut lj,
            &opt,
            1.0,
            scale,
        )
        .unwrap();
    }
    let a: Vec<u64> = ensemble
        .params
        .member(1)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let b: Vec<u64> = single
        .params
        .member(0)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(a, b);
    // The members really saw different data.
    assert_ne!(&xb[..8], &xb[8..16]);
}

/// Members on two or three threads, or evaluated a few per call, give bitwise the results of one
/// thread evaluating all of them at once.
#[test]
fn parallel_log_joint_is_bitwise_sequential() {
    let (layout, mlp) = setup();
    let opt = adam(1e-2, AdamConfig::default()).unwrap();
    let x: Vec<f64> = (0..30).map(|i| i as f64 / 15.0 - 1.0).collect();
    let y: Vec<f64> = x.iter().map(|v| (2.0 * v).cos()).collect();
    let shared = Batch::new(&x, &y, 30).unwrap();
    // Each of the 11 members sees its own 10 rows (a rotation of the data).
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for e in 0..11 {
        for i in 0..10 {
            xs.push(x[(3 * e + i) % 30]);
            ys.push(y[(3 * e + i) % 30]);
        }
    }
    let own_rows = Batch::per_member(&xs, &ys, 10, 11).unwrap();
    let run = |batch: Batch<'_, f64>, parts: usize, per_call: Option<usize>| {
        let mut state = ensemble_init(&layout, init(&layout, &mlp), &opt, 11, 2).unwrap();
        // Member 8 (in the last block on two or three threads) diverges from the start.
        state.params.member_mut(8)[0] = 1e300;
        let mut lj = ParallelLogJoint::new(
            (0..parts)
                .map(|_| log_joint(&layout, mlp.clone()))
                .collect(),
        );
        if let Some(per_call) = per_call {
            lj = lj.with_members_per_call(per_call);
        }
        for _ in 0..15 {
            ensemble_step(&mut state, batch, &mut lj, &opt, 1.0, 1.0).unwrap();
            assert_eq!(state.diverged(), &[8]);
        }
        let mut opt_state = Vec::new();
        state.opt_state().save(&mut opt_state);
        state
            .params
            .values()
            .iter()
            .chain(&opt_state)
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    for batch in [shared, own_rows] {
        let reference = run(batch, 1, Some(16));
        assert_eq!(reference, run(batch, 2, Some(16)));
        assert_eq!(reference, run(batch, 3, Some(16)));
        // Members evaluated a few at a time per call: the same bits.
        assert_eq!(reference, run(batch, 1, Some(3)));
        assert_eq!(reference, run(batch, 2, Some(1)));
        // The default: one member in the first call, then as many as the measured storage allows.
        assert_eq!(reference, run(batch, 1, None));
        assert_eq!(reference, run(batch, 2, None));
    }
    assert_ne!(run(shared, 2, None), run(own_rows, 2, None));
    // A per-member batch for another number of members is refused, not sliced.
    let mut state = ensemble_init(&layout, init(&layout, &mlp), &opt, 10, 2).unwrap();
    let mut lj = ParallelLogJoint::new(vec![
        log_joint(&layout, mlp.clone()),
        log_joint(&layout, mlp.clone()),
    ]);
    assert!(matches!(
        ensemble_step(&mut state, own_rows, &mut lj, &opt, 1.0, 1.0),
        Err(EnsembleError::Autograd(AutogradError::BufferLength { .. }))
    ));
}
