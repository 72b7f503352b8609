//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod checkpoint;
mod classifier;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod crash_safety;
mod degenerate_data;
#[cfg(feature = "cli")]
mod ensemble_map;
#[cfg(feature = "cli")]
mod ensemble_vi;
mod legacy_files;
mod member_shards;
mod same_bits;
mod steps_apart;
mod table_fuzz;
// Sets this binary's `#[global_allocator]` (one that records only the thread that asks).
mod untrusted_files;

/// Helpers several of these suites share.
mod common {
    use flock_autograd::*;
    use flock_runner::train::{ProgressHook, StepReport};

    /// A 1 → 8 → 1 tanh MLP and its layout.
    pub(crate) fn small() -> (ParamLayout, Mlp) {
        tanh_mlp(8, 1)
    }

    /// A one-input, one-output tanh MLP with `depth` hidden layers of `width` units, and its
    /// layout.
    pub(crate) fn tanh_mlp(width: usize, depth: usize) -> (ParamLayout, Mlp) {
        let mut layout = ParamLayout::new();
        let mlp = Mlp::new(
            &mut layout,
            "",
            MlpConfig::new(1, 1, width, depth, Activation::Tanh),
        )
        .unwrap();
        (layout, mlp)
    }

    /// [`small`]'s log-joint: a Gaussian likelihood (σ = 0.1) and a standard-normal prior.
    pub(crate) fn small_log_joint(
        layout: &ParamLayout,
        mlp: Mlp,
    ) -> impl LogJoint<f64> + Send + use<> {
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

    /// A progress hook that asks to stop once step `.0` is reported (`.1`: the last reported).
    pub(crate) struct StopAt(pub(crate) usize, pub(crate) usize);

    impl ProgressHook for StopAt {
        fn update(&mut self, report: &StepReport) {
            self.1 = report.step;
        }
        fn stop_requested(&mut self) -> bool {
            self.1 >= self.0
        }
    }
}
