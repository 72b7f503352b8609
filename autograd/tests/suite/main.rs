//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod finite_differences;
mod grads_fixtures;
mod log_det;
mod param_grads;
mod values_only;
mod workspace;

use flock_autograd::*;

/// A tanh MLP (`inputs` → 8 → 8 → 1) with a Gaussian log-likelihood (σ = 1) and a standard-normal
/// prior on every parameter, and its parameters per member.
fn tanh_mlp_log_joint(inputs: usize) -> (usize, impl LogJoint<f64>) {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(inputs, 1, 8, 2, Activation::Tanh),
    )
    .unwrap();
    let log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
        let f = mlp.forward(g, x)?;
        let f = g.squeeze_last(f)?;
        let r = g.sub(y, f)?;
        let sse = g.sum_squares(r);
        let theta = g.all_params();
        let ss = g.sum_squares(theta);
        Ok((g.scale(sse, -0.5), g.scale(ss, -0.5)))
    });
    (layout.member_size(), log_joint)
}
