//! `LogJoint::workspace_per_member`: unknown before the first evaluation, then the tape's
//! storage per member — which grows with the batch's rows and does not depend on how many
//! members one call evaluated.

use flock_autograd::*;

use crate::tanh_mlp_log_joint;

#[test]
fn workspace_is_measured_per_member_and_scales_with_rows() {
    let (p, mut log_joint) = tanh_mlp_log_joint(1);
    assert_eq!(log_joint.workspace_per_member(40), None);
    let x: Vec<f64> = (0..40).map(|i| i as f64 / 40.0).collect();
    let mut evaluate = |members: usize, rows: usize| {
        let params = vec![0.1; members * p];
        let (mut ll, mut lp, mut grad) = (
            vec![0.0; members],
            vec![0.0; members],
            vec![0.0; members * p],
        );
        let batch = Batch::new(&x[..rows], &x[..rows], rows).unwrap();
        let weights = Weights {
            loglik: -1.0,
            logprior: -1.0,
        };
        let out = LogJointOutput {
            loglik: &mut ll,
            logprior: &mut lp,
            grad: &mut grad,
        };
        log_joint
            .evaluate(members, &params, batch, weights, out)
            .unwrap();
        log_joint.workspace_per_member(rows).unwrap()
    };
    let one = evaluate(1, 40);
    // Each member keeps at least its two 40 × 8 hidden activations, with their gradients.
    assert!(one >= 2 * 2 * 40 * 8, "{one}");
    let four = evaluate(4, 40);
    // Only the shared batch (x and y, 80 values) and the padding that starts every block on a
    // 64-byte boundary (at most 7 f64 for each of the graph's ≈20 nodes), with their gradient
    // space, are spread over the members.
    assert!(
        four <= one && one - four <= 2 * (80 + 7 * 20),
        "{one} {four}"
    );
    // Half the rows: about half the storage, measured or estimated.
    let half = evaluate(4, 20);
    assert!(half.abs_diff(four / 2) <= 2 * 20, "{half} {four}");
    let estimated = log_joint.workspace_per_member(40).unwrap();
    assert!(estimated.abs_diff(four) <= 4 * 20, "{estimated} {four}");
}
