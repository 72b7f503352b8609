//! Named optimizers, each only a chain of the transformations (as in optax's `alias.py`).
//! The learning rate and its sign are applied in one place: `scale_by_learning_rate`.

use crate::adaptive::{
    AdamConfig, RmsConfig, ScaleByAdam, ScaleByAmsgrad, ScaleByBelief, ScaleByLion, ScaleByRms,
    ScaleByRss, scale_by_adam, scale_by_amsgrad, scale_by_belief, scale_by_lion, scale_by_rms,
    scale_by_rss, scale_by_stddev,
};
use crate::basic::{
    AddDecayedWeights, LeafMask, LearningRate, ScaleByLearningRate, ScaleByTrustRatio, Trace,
    add_decayed_weights, scale_by_learning_rate, scale_by_trust_ratio, trace,
};
use crate::combine::{Chain, chain};
use crate::{OptimError, PerMember};

/// `chain(scale_by_adam, scale_by_learning_rate)`.
pub type Adam = Chain<ScaleByAdam, ScaleByLearningRate>;
/// `chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)`.
pub type AdamW = Chain<ScaleByAdam, Chain<AddDecayedWeights, ScaleByLearningRate>>;
/// `chain(trace?, scale_by_learning_rate)`.
pub type Sgd = Chain<Option<Trace>, ScaleByLearningRate>;

/// Stochastic gradient descent with optional (Nesterov) momentum (optax `sgd`).
pub fn sgd(
    learning_rate: impl Into<LearningRate>,
    momentum: Option<f64>,
    nesterov: bool,
) -> Result<Sgd, OptimError> {
    let tr = momentum.map(|m| trace(m, nesterov)).transpose()?;
    Ok(chain(tr, scale_by_learning_rate(learning_rate)?))
}

/// Adam (optax `adam`).
///
/// ```
/// use flock_optim::{adam, AdamConfig, Layout, Params, GradientTransformation, apply_updates};
/// let layout = Layout::flat(2, 3); // 2 members × 3 parameters
/// let mut params = vec![1.0f64; 6];
/// let opt = adam(1e-3, AdamConfig::default())?;
/// let mut state = opt.init(Params::new(&params, &layout)?);
/// let mut updates = vec![0.5; 6]; // gradients
/// opt.update(&mut updates, &mut state, Params::new(&params, &layout)?);
/// apply_updates(&mut params, &updates);
/// assert!((params[0] - (1.0 - 1e-3)).abs() < 1e-9); // Adam's first step is −lr·sign(g)
/// # Ok::<(), flock_optim::OptimError>(())
/// ```
pub fn adam(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
) -> Result<Adam, OptimError> {
    Ok(chain(
        scale_by_adam(config)?,
        scale_by_learning_rate(learning_rate)?,
    ))
}

/// NAdam: Adam with Nesterov momentum (optax `nadam`).
pub fn nadam(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
) -> Result<Adam, OptimError> {
    adam(
        learning_rate,
        AdamConfig {
            nesterov: true,
            ..config
        },
    )
}

/// AdamW: Adam with decoupled weight decay, optionally on a subset of leaves (optax `adamw`).
///
/// The seed's Pattern B optimizer:
/// ```
/// use flock_optim::{chain, adamw, clip_by_global_norm, warmup_cosine_decay_schedule, AdamConfig};
/// let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 100, 1500, 1e-4, 1.0)?;
/// let opt_b = chain!(clip_by_global_norm(1.0)?, adamw(schedule, AdamConfig::default(), 0.0, None)?);
/// # let _ = opt_b;
/// # Ok::<(), flock_optim::OptimError>(())
/// ```
pub fn adamw(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
    weight_decay: impl Into<PerMember<f64>>,
    mask: Option<LeafMask>,
) -> Result<AdamW, OptimError> {
    Ok(chain(
        scale_by_adam(config)?,
        chain(
            add_decayed_weights(weight_decay, mask)?,
            scale_by_learning_rate(learning_rate)?,
        ),
    ))
}

/// NAdamW (optax `nadamw`).
pub fn nadamw(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
    weight_decay: impl Into<PerMember<f64>>,
    mask: Option<LeafMask>,
) -> Result<AdamW, OptimError> {
    adamw(
        learning_rate,
        AdamConfig {
            nesterov: true,
            ..config
        },
        weight_decay,
        mask,
    )
}

/// AMSGrad (optax `amsgrad`).
pub fn amsgrad(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
) -> Result<Chain<ScaleByAmsgrad, ScaleByLearningRate>, OptimError> {
    Ok(chain(
        scale_by_amsgrad(config)?,
        scale_by_learning_rate(learning_rate)?,
    ))
}

/// AdaBelief (optax `adabelief`; use [`AdamConfig::belief`] for optax's defaults).
pub fn adabelief(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
) -> Result<Chain<ScaleByBelief, ScaleByLearningRate>, OptimError> {
    Ok(chain(
        scale_by_belief(config)?,
        scale_by_learning_rate(learning_rate)?,
    ))
}

/// RMSProp: plain or centered, with optional momentum applied after the learning rate
/// (optax `rmsprop`).
pub fn rmsprop(
    learning_rate: impl Into<LearningRate>,
    config: RmsConfig,
    centered: bool,
    momentum: Option<f64>,
    nesterov: bool,
) -> Result<Chain<ScaleByRms, Chain<ScaleByLearningRate, Option<Trace>>>, OptimError> {
    let rms = if centered {
        scale_by_stddev(config)?
    } else {
        scale_by_rms(config)?
    };
    let tr = momentum.map(|m| trace(m, nesterov)).transpose()?;
    Ok(chain(
        rms,
        chain(scale_by_learning_rate(learning_rate)?, tr),
    ))
}

/// AdaGrad (optax `adagrad`; defaults `initial_accumulator_value = 0.1`, `eps = 1e-7`).
pub fn adagrad(
    learning_rate: impl Into<LearningRate>,
    initial_accumulator_value: f64,
    eps: f64,
) -> Result<Chain<ScaleByRss, ScaleByLearningRate>, OptimError> {
    Ok(chain(
        scale_by_rss(initial_accumulator_value, eps)?,
        scale_by_learning_rate(learning_rate)?,
    ))
}

/// Lion (optax `lion`; defaults `b1 = 0.9`, `b2 = 0.99`, `weight_decay = 1e-3`).
pub fn lion(
    learning_rate: impl Into<LearningRate>,
    b1: f64,
    b2: f64,
    weight_decay: impl Into<PerMember<f64>>,
    mask: Option<LeafMask>,
) -> Result<Chain<ScaleByLion, Chain<AddDecayedWeights, ScaleByLearningRate>>, OptimError> {
    Ok(chain(
        scale_by_lion(b1, b2)?,
        chain(
            add_decayed_weights(weight_decay, mask)?,
            scale_by_learning_rate(learning_rate)?,
        ),
    ))
}

/// `chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate)`.
pub type Lamb =
    Chain<ScaleByAdam, Chain<AddDecayedWeights, Chain<ScaleByTrustRatio, ScaleByLearningRate>>>;

/// LAMB (optax `lamb`; optax's defaults are `eps = 1e-6`, `weight_decay = 0`).
pub fn lamb(
    learning_rate: impl Into<LearningRate>,
    config: AdamConfig,
    weight_decay: impl Into<PerMember<f64>>,
    mask: Option<LeafMask>,
) -> Result<Lamb, OptimError> {
    Ok(chain(
        scale_by_adam(config)?,
        chain(
            add_decayed_weights(weight_decay, mask)?,
            chain(
                scale_by_trust_ratio(0.0, 1.0, 0.0)?,
                scale_by_learning_rate(learning_rate)?,
            ),
        ),
    ))
}
