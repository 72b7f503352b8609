//! `Weights::values_only`: a tape log-joint computes `ℓ` exactly as a differentiated evaluation
//! does, writes a zero gradient (over whatever the buffer held) and skips the backward pass.

use flock_autograd::*;

use crate::tanh_mlp_log_joint;

#[test]
fn values_only_gives_the_same_loglik_and_a_zero_gradient() {
    let (p, mut lj) = tanh_mlp_log_joint(2);
    let members = 3;
    let params: Vec<f64> = (0..members * p)
        .map(|i| ((i * 37) % 11) as f64 / 11.0 - 0.5)
        .collect();
    let x: Vec<f64> = (0..20).map(|i| i as f64 / 10.0 - 1.0).collect();
    let y: Vec<f64> = (0..10).map(|i| (i as f64 / 3.0).sin()).collect();
    let batch = Batch::new(&x, &y, 10).unwrap();
    let mut run = |weights: Weights<f64>| {
        let (mut ll, mut lp, mut grad) = (
            vec![7.0; members],
            vec![7.0; members],
            vec![7.0; members * p],
        );
        lj.evaluate(
            members,
            &params,
            batch,
            weights,
            LogJointOutput {
                loglik: &mut ll,
                logprior: &mut lp,
                grad: &mut grad,
            },
        )
        .unwrap();
        (ll, lp, grad)
    };
    let (ll, _, grad) = run(Weights {
        loglik: -1.0,
        logprior: 0.0,
    });
    assert!(grad.iter().any(|&g| g != 0.0));
    let (ll_only, lp_only, grad_only) = run(Weights::values_only());
    assert_eq!(ll_only, ll);
    assert_eq!(lp_only, vec![0.0; members]);
    assert!(grad_only.iter().all(|&g| g == 0.0));
}

#[test]
fn values_only_still_checks_the_gradient_buffer() {
    let (p, mut lj) = tanh_mlp_log_joint(2);
    let params = vec![0.1; 2 * p];
    let (x, y) = (vec![0.5; 4], vec![0.0; 2]);
    let (mut ll, mut lp, mut grad) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 3]);
    let err = lj
        .evaluate(
            2,
            &params,
            Batch::new(&x, &y, 2).unwrap(),
            Weights::values_only(),
            LogJointOutput {
                loglik: &mut ll,
                logprior: &mut lp,
                grad: &mut grad,
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            AutogradError::BufferLength {
                what: "param_grads",
                len: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Nothing is differentiated: where `ℓ` is infinite, `0·∂ℓ/∂θ` would be NaN, but the gradient
/// of the zero objective is written as zeros.
#[test]
fn values_only_skips_the_backward_pass() {
    let mut layout = ParamLayout::new();
    layout.add("w", [3]).unwrap();
    let mut lj = TapeLogJoint::new(layout.clone(), |g: &mut Graph<'_, f64>, _x, _y| {
        let theta = g.all_params();
        let ss = g.sum_squares(theta);
        Ok((g.scale(ss, f64::INFINITY), ss))
    });
    let params = [1.0, 2.0, 3.0];
    let (x, y) = ([0.0], [0.0]);
    let (mut ll, mut lp, mut grad) = ([0.0], [0.0], [7.0; 3]);
    lj.evaluate(
        1,
        &params,
        Batch::new(&x, &y, 1).unwrap(),
        Weights::values_only(),
        LogJointOutput {
            loglik: &mut ll,
            logprior: &mut lp,
            grad: &mut grad,
        },
    )
    .unwrap();
    assert_eq!(ll, [f64::INFINITY]);
    assert_eq!(grad, [0.0; 3]);
}
