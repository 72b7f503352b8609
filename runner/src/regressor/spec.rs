//! What a [`Regressor`](super::Regressor) fits and how: [`FitSpec`], with the best recipe
//! measured as its default and the Deep Ensembles paper's as a named option. One serde
//! description ([`SpecRecord`]) is the format a model file stores it in, read back by the same
//! code — including files written before the format grew fields.

use flock_autograd::{Activation, WeightInit};
use flock_ensemble::DataOrder;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::vi::Guide;

/// The likelihood of the network's output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Likelihood {
    /// Two outputs: mean and variance `softplus(raw) + 1e-6` (Deep Ensembles).
    Heteroscedastic,
    /// One output, Gaussian noise with this σ in the target's units.
    Fixed {
        /// The noise standard deviation.
        sigma: f64,
    },
    /// One output, Gaussian noise with one σ per member learned with the weights (homoscedastic;
    /// a leaf `log_sigma` of shape `[]`, σ = exp(log_sigma) on the standardised scale, starting
    /// at 1).
    Learned,
    /// A classifier's: `K` outputs, the logits of `Categorical(softmax(logits))` over class
    /// indices.
    Categorical {
        /// The number of classes `K` (at least 2).
        classes: usize,
    },
    /// A two-class classifier's single logit: `Bernoulli(σ(logit))`.
    Bernoulli,
}

impl Likelihood {
    /// Whether it is a classifier's (categorical or Bernoulli).
    pub fn is_classification(self) -> bool {
        matches!(self, Likelihood::Categorical { .. } | Likelihood::Bernoulli)
    }

    /// The classes of a classifier's likelihood (`None` for a regressor's).
    pub fn classes(self) -> Option<usize> {
        match self {
            Likelihood::Categorical { classes } => Some(classes),
            Likelihood::Bernoulli => Some(2),
            _ => None,
        }
    }
}

/// How the learning rate moves over the fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LearningRateSchedule {
    /// The same rate at every step.
    #[serde(rename = "constant")]
    Constant,
    /// optax's `cosine_decay_schedule(lr, total_steps, alpha = 0)`: from the rate down to 0 at
    /// the last step.
    #[default]
    #[serde(rename = "cosine")]
    #[cfg_attr(feature = "cli", value(name = "cosine"))]
    CosineDecay,
}

/// How the inputs are scaled before the networks see them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum InputScaling {
    /// Each feature to zero mean and unit variance over the training rows (constant features
    /// are left unscaled) — for tabular data.
    #[default]
    Standardise,
    /// As given — for features already on one scale, such as pixels in `[0, 1]` (standardising
    /// each pixel would blow up the ones that are almost always 0).
    AsGiven,
}

/// How each member is fitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FitMethod {
    /// A point estimate per member (Deep Ensembles): maximum likelihood, or MAP with
    /// [`FitSpec::prior_weight`].
    #[default]
    Map,
    /// A Gaussian guide per member over every weight ([`EnsembleVI`](crate::vi::EnsembleVI);
    /// mean-field, or low-rank plus diagonal with [`ViFit::rank`]), under the standard-normal
    /// prior a MAP fit uses, trained on the tempered ELBO with the mini-batch scale `N/|B|`;
    /// the predictive mixes [`ViFit::samples`] networks drawn from each member's guide.
    Vi(ViFit),
}

/// The settings of a [`FitMethod::Vi`] fit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViFit {
    /// `β` of the tempered ELBO `E[log p(y|θ)] − β·KL(q ‖ p)` (1 = the ELBO).
    pub kl_weight: f64,
    /// The guides' initial scale (numpyro's `init_scale`) on the standardised weights.
    pub init_scale: f64,
    /// Networks drawn from each member's guide for the predictive (`E·S` components).
    pub samples: usize,
    /// Columns of a low-rank factor over all of a member's weights ([`Guide::LowRank`]); 0 =
    /// mean-field.
    pub rank: usize,
}

impl ViFit {
    /// The most draws per member a predictive mixes (a model file asking for more is refused:
    /// the draws are held in memory).
    pub const MAX_SAMPLES: usize = 1_000;

    /// The guide family it asks for.
    pub fn guide(self) -> Guide {
        match self.rank {
            0 => Guide::MeanField,
            rank => Guide::LowRank { rank },
        }
    }
}

impl Default for ViFit {
    /// `β = 1`, initial scale 0.01, 10 draws per member, mean-field.
    fn default() -> Self {
        ViFit {
            kl_weight: 1.0,
            init_scale: 0.01,
            samples: 10,
            rank: 0,
        }
    }
}

/// What to fit and how: the network, the likelihood, the method and the training recipe.
///
/// Its [`Default`] is the best recipe measured on the UCI benchmark (`--protocol flock`: 80
/// epochs with a cosine-decayed Adam rate from 1e-2 and 10 % of the training rows held out for
/// per-member early stopping); [`FitSpec::deep_ensembles`] is the Deep Ensembles paper's.
///
/// ```
/// use flock_runner::regressor::{FitSpec, LearningRateSchedule};
/// let best = FitSpec::default();
/// assert_eq!((best.epochs, best.schedule, best.validation_fraction), (80, LearningRateSchedule::CosineDecay, 0.1));
/// let paper = FitSpec::deep_ensembles();
/// assert_eq!((paper.epochs, paper.schedule, paper.validation_fraction), (40, LearningRateSchedule::Constant, 0.0));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "SpecRecord", try_from = "SpecRecord")]
pub struct FitSpec {
    /// Point estimates or variational guides.
    pub method: FitMethod,
    /// Members.
    pub members: usize,
    /// Units of each hidden layer, input side first (`[]`: a linear model).
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Output likelihood.
    pub likelihood: Likelihood,
    /// Epochs over the training rows.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// How the learning rate moves over the fit.
    pub schedule: LearningRateSchedule,
    /// Weight of a standard-normal prior on the (standardised-scale) weights (0 = MLE) of a
    /// point-estimate fit; a VI fit takes 0 here (its prior enters through the KL, weighted by
    /// [`ViFit::kl_weight`]).
    pub prior_weight: f64,
    /// Seed of everything random in the fit: the held-out rows, the initial weights, the batches
    /// and (VI) the guides' noise and the predictive's draws.
    pub seed: u64,
    /// Fraction of the training rows held out (a seeded random choice) and scored after every
    /// epoch; each member ends at the epoch of its best held-out NLL (early stopping). With
    /// [`DataOrder::PerMember`] a point-estimate fit's members each hold out their own rows
    /// (member `e`'s drawn from `(seed, e)`; member 0's are the shared split's) and so together
    /// train on every row; otherwise one split serves them all. `0` = train on every row and
    /// keep the last parameters.
    pub validation_fraction: f64,
    /// How the inputs are scaled.
    pub input_scaling: InputScaling,
    /// Whether the members share one order of batches or each draws its own (and, for point
    /// estimates with a `validation_fraction`, holds out its own rows).
    pub data_order: DataOrder,
    /// How the networks' weights are first drawn.
    pub weight_init: WeightInit,
}

impl Default for FitSpec {
    /// flock's recipe: 5 point-estimate members, one hidden layer of 50 ReLU units, a
    /// heteroscedastic head, 80 epochs of batches of 100, Adam 1e-2 cosine-decayed to 0, no
    /// prior, 10 % of the training rows held out for early stopping.
    fn default() -> Self {
        FitSpec {
            epochs: 80,
            schedule: LearningRateSchedule::CosineDecay,
            validation_fraction: 0.1,
            ..FitSpec::deep_ensembles()
        }
    }
}

impl FitSpec {
    /// flock's classification recipe: [`FitSpec::default`] with He-initialised weights and a
    /// data order of each member's own — its own batches and its own held-out rows. Measured on
    /// Fashion-MNIST (3 × 200 ReLU, M = 5, 20 epochs, seed 0; test accuracy / NLL / Brier /
    /// ECE): equinox's weights and one shared order 0.8953 / 0.2968 / – / 0.0101; He's weights,
    /// shared order 0.8982 / 0.2877 / – / 0.0106; He's weights, each member's own order and one
    /// shared held-out split 0.9011 / 0.2826 / 0.1453 / 0.0079 (about 8–20 % slower per epoch:
    /// each member's batch is gathered); each member's own order and held-out rows 0.9011 /
    /// 0.2773 / 0.1437 / 0.0087 (the proper scores better, the ECE within its noise; with 10
    /// members NLL 0.2698, ECE 0.0075). On the red-wine quality classes (1 × 50, 10 splits)
    /// the choices are within noise of each other.
    pub fn classification() -> FitSpec {
        FitSpec {
            weight_init: WeightInit::He,
            data_order: DataOrder::PerMember,
            ..FitSpec::default()
        }
    }

    /// The Deep Ensembles paper's UCI settings: 5 members, one hidden layer of 50 ReLU units, a
    /// heteroscedastic head, 40 epochs of batches of 100 at a constant Adam rate of 1e-2, every
    /// training row trained on and the last epoch kept.
    pub fn deep_ensembles() -> FitSpec {
        FitSpec {
            method: FitMethod::Map,
            members: 5,
            hidden: vec![50],
            activation: Activation::Relu,
            likelihood: Likelihood::Heteroscedastic,
            epochs: 40,
            batch_size: 100,
            learning_rate: 1e-2,
            schedule: LearningRateSchedule::Constant,
            prior_weight: 0.0,
            seed: 0,
            validation_fraction: 0.0,
            input_scaling: InputScaling::Standardise,
            data_order: DataOrder::Shared,
            weight_init: WeightInit::Equinox,
        }
    }

    /// Checks every setting, naming the first one out of its range.
    ///
    /// ```
    /// use flock_runner::Error;
    /// use flock_runner::regressor::FitSpec;
    /// let bad = FitSpec { members: 0, ..FitSpec::default() };
    /// assert!(matches!(bad.validate(), Err(Error::InvalidArgument { name: "members", .. })));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the setting, its value and what it must be.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |name: &'static str, value: String, expected: &'static str| {
            Err(Error::InvalidArgument {
                name,
                value,
                expected,
            })
        };
        if self.members == 0 {
            return invalid("members", "0".into(), "at least one member");
        }
        if let Some(&zero) = self.hidden.iter().find(|&&w| w == 0) {
            return invalid(
                "hidden",
                format!("{:?} (a layer of {zero})", self.hidden),
                "hidden layers of at least one unit",
            );
        }
        if self.epochs == 0 {
            return invalid("epochs", "0".into(), "at least one epoch");
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "0".into(), "at least one example per step");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(
                "learning_rate",
                self.learning_rate.to_string(),
                "a positive, finite rate",
            );
        }
        if !(self.prior_weight.is_finite() && self.prior_weight >= 0.0) {
            return invalid(
                "prior_weight",
                self.prior_weight.to_string(),
                "a finite weight ≥ 0 (0 = maximum likelihood, 1 = MAP)",
            );
        }
        let f = self.validation_fraction;
        if !(f.is_finite() && (0.0..1.0).contains(&f)) {
            return invalid(
                "validation_fraction",
                f.to_string(),
                "a fraction in [0, 1) of the training rows",
            );
        }
        if let Likelihood::Fixed { sigma } = self.likelihood
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return invalid("sigma", sigma.to_string(), "a positive, finite noise σ");
        }
        if let Likelihood::Categorical { classes } = self.likelihood
            && classes < 2
        {
            return invalid("classes", classes.to_string(), "at least two classes");
        }
        if let FitMethod::Vi(vi) = self.method {
            if self.prior_weight != 0.0 {
                return invalid(
                    "prior_weight",
                    self.prior_weight.to_string(),
                    "0 for a VI fit (its prior enters through the KL, weighted by kl_weight)",
                );
            }
            if !(vi.kl_weight.is_finite() && vi.kl_weight >= 0.0) {
                return invalid("kl_weight", vi.kl_weight.to_string(), "a finite β ≥ 0");
            }
            if !(vi.init_scale.is_finite() && vi.init_scale > 0.0) {
                return invalid(
                    "init_scale",
                    vi.init_scale.to_string(),
                    "a positive, finite scale",
                );
            }
            if vi.samples == 0 || vi.samples > ViFit::MAX_SAMPLES {
                return invalid(
                    "samples",
                    vi.samples.to_string(),
                    "1 to 1,000 draws per member (ViFit::MAX_SAMPLES)",
                );
            }
        }
        Ok(())
    }
}

/// A [`FitSpec`] as a model file stores it (JSON in the safetensors metadata). Files written
/// before a field existed lack it: no `method` was a point-estimate fit, no `schedule` a
/// constant rate, no `validation_fraction` no held-out rows, no `data_order` one shared order, no `weight_init` equinox's; the hidden layers were one width
/// `hidden` repeated `depth` times.
#[derive(Serialize, Deserialize)]
struct SpecRecord {
    #[serde(default)]
    method: FitMethod,
    members: usize,
    hidden: HiddenRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    depth: Option<usize>,
    #[serde(with = "activation_name")]
    activation: Activation,
    likelihood: Likelihood,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    #[serde(default = "constant_schedule")]
    schedule: LearningRateSchedule,
    prior_weight: f64,
    seed: u64,
    #[serde(default)]
    validation_fraction: f64,
    #[serde(default)]
    input_scaling: InputScaling,
    #[serde(default = "shared_order", with = "data_order_name")]
    data_order: DataOrder,
    #[serde(default = "equinox_init", with = "weight_init_name")]
    weight_init: WeightInit,
}

fn equinox_init() -> WeightInit {
    WeightInit::Equinox
}

fn shared_order() -> DataOrder {
    DataOrder::Shared
}

fn constant_schedule() -> LearningRateSchedule {
    LearningRateSchedule::Constant
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum HiddenRecord {
    /// Written before layers could differ in width (with `depth`).
    Width(usize),
    Layers(Vec<usize>),
}

impl From<FitSpec> for SpecRecord {
    fn from(s: FitSpec) -> SpecRecord {
        SpecRecord {
            method: s.method,
            members: s.members,
            hidden: HiddenRecord::Layers(s.hidden),
            depth: None,
            activation: s.activation,
            likelihood: s.likelihood,
            epochs: s.epochs,
            batch_size: s.batch_size,
            learning_rate: s.learning_rate,
            schedule: s.schedule,
            prior_weight: s.prior_weight,
            seed: s.seed,
            validation_fraction: s.validation_fraction,
            input_scaling: s.input_scaling,
            data_order: s.data_order,
            weight_init: s.weight_init,
        }
    }
}

impl TryFrom<SpecRecord> for FitSpec {
    type Error = String;

    fn try_from(r: SpecRecord) -> Result<FitSpec, String> {
        let hidden = match (r.hidden, r.depth) {
            (HiddenRecord::Width(width), depth) => vec![width; depth.unwrap_or(1)],
            (HiddenRecord::Layers(layers), None) => layers,
            (HiddenRecord::Layers(layers), Some(depth)) if depth == layers.len() => layers,
            (HiddenRecord::Layers(layers), Some(depth)) => {
                return Err(format!(
                    "hidden layers {layers:?} disagree with depth {depth}"
                ));
            }
        };
        Ok(FitSpec {
            method: r.method,
            members: r.members,
            hidden,
            activation: r.activation,
            likelihood: r.likelihood,
            epochs: r.epochs,
            batch_size: r.batch_size,
            learning_rate: r.learning_rate,
            schedule: r.schedule,
            prior_weight: r.prior_weight,
            seed: r.seed,
            validation_fraction: r.validation_fraction,
            input_scaling: r.input_scaling,
            data_order: r.data_order,
            weight_init: r.weight_init,
        })
    }
}

/// A [`DataOrder`] as its name (`"per-member"`).
mod data_order_name {
    use flock_ensemble::DataOrder;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(o: &DataOrder, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(o.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataOrder, D::Error> {
        let name = String::deserialize(d)?;
        DataOrder::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown data order {name:?}: expected shared or per-member"
            ))
        })
    }
}

/// A [`WeightInit`] as its name (`"he"`).
mod weight_init_name {
    use flock_autograd::WeightInit;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(i: &WeightInit, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(i.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WeightInit, D::Error> {
        let name = String::deserialize(d)?;
        WeightInit::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown weight initialisation {name:?}: expected one of {}",
                WeightInit::ALL.map(WeightInit::name).join(", ")
            ))
        })
    }
}

/// An [`Activation`] as its name (`"relu"`).
mod activation_name {
    use flock_autograd::Activation;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(a: &Activation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Activation, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec goes to JSON and back unchanged, for both methods; a file of the first format
    /// (one width and a depth, no method, schedule or held-out fraction) reads as the fit it was.
    #[test]
    fn specs_round_trip_and_old_files_read() {
        for spec in [
            FitSpec::default(),
            FitSpec::classification(),
            FitSpec {
                method: FitMethod::Vi(ViFit {
                    rank: 2,
                    ..ViFit::default()
                }),
                hidden: vec![7, 3],
                likelihood: Likelihood::Fixed { sigma: 0.25 },
                activation: Activation::Identity,
                ..FitSpec::deep_ensembles()
            },
        ] {
            let text = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<FitSpec>(&text).unwrap(), spec);
        }
        let old = r#"{"activation":"relu","batch_size":32,"depth":2,"epochs":4,"hidden":8,
            "learning_rate":0.01,"likelihood":{"kind":"heteroscedastic"},"members":3,
            "prior_weight":0.0,"seed":3,"x_mean":[1.0],"y_mean":0.5}"#;
        let spec: FitSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.hidden, vec![8, 8]);
        assert_eq!(spec.method, FitMethod::Map);
        assert_eq!(spec.schedule, LearningRateSchedule::Constant);
        assert_eq!(spec.validation_fraction, 0.0);
        assert_eq!(spec.data_order, DataOrder::Shared);
        assert_eq!(spec.weight_init, WeightInit::Equinox);
        let bad = old.replace("\"relu\"", "\"gelu\"");
        let err = serde_json::from_str::<FitSpec>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gelu") && err.contains("identity"), "{err}");
        let text = serde_json::to_string(&FitSpec::classification()).unwrap();
        assert!(text.contains(r#""data_order":"per-member""#), "{text}");
        assert!(text.contains(r#""weight_init":"he""#), "{text}");
        let bad = text.replace(r#""weight_init":"he""#, r#""weight_init":"xavier""#);
        let err = serde_json::from_str::<FitSpec>(&bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("xavier") && err.contains("equinox, he, glorot"),
            "{err}"
        );
    }
}
