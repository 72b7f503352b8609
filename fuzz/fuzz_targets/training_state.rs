//! The training-state checkpoint reader (`--resume`): for a fixed network and Adam, a typed
//! error or a state whose parameters have the layout's shape.
#![no_main]

use flock_autograd::{Activation, Mlp, MlpConfig, ParamLayout};
use flock_optim::adam;
use flock_runner::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(checkpoint) = Checkpoint::from_bytes(data) else {
        return;
    };
    let mut layout = ParamLayout::new();
    Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, 4, 1, Activation::Tanh),
    )
    .unwrap();
    let Ok(optimizer) = adam(1e-3, Default::default()) else {
        return;
    };
    for members in [1, 2] {
        if let Ok((training, _)) = checkpoint.training::<f64, _>(&optimizer, &layout, members) {
            assert_eq!(training.members(), members);
        }
    }
});
