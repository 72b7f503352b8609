//! The pieces of a [`FitMethod::Vi`](super::FitMethod::Vi) fit: the fit's network as a model
//! over latent weights, the networks its predictive draws from the fitted guides, and the
//! held-out score early stopping keeps each member by.

use flock_autograd::{Arg, AutogradError, LogJoint, ParamLayout, Parameters, Tape, Var};
use flock_ensemble::model::{Guide, GuideIds, Model, ModelContext, bernoulli, categorical, normal};
use flock_ensemble::{SeedStream, member_rng};
use flock_kernels::Element;

use super::network::{Network, Observation, Readout};
use crate::checkpoint::CheckpointError;
use crate::error::RunError;
use crate::train::Scorer;

/// The fit's network and likelihood as a model: every leaf of the network's layout a latent
/// site of the same name and shape with the standard-normal prior a MAP fit puts on it, and
/// `y ~ N(μ, σ)` with the fit's head.
#[derive(Clone, Debug)]
pub(crate) struct NetworkModel {
    net: Network,
    sites: Vec<(String, flock_autograd::Shape)>,
    /// σ on the standardised scale for a fixed likelihood.
    sigma_std: f64,
}

impl NetworkModel {
    pub(crate) fn new(net: Network, layout: &ParamLayout, sigma_std: f64) -> NetworkModel {
        let sites = layout
            .leaves()
            .iter()
            .map(|leaf| (leaf.name.clone(), leaf.shape))
            .collect();
        NetworkModel {
            net,
            sites,
            sigma_std,
        }
    }
}

impl<T: Element> Model<T> for NetworkModel {
    fn run(&self, m: &mut ModelContext<'_, '_, T>, x: Var, y: Var) -> Result<(), AutogradError> {
        // Site k is leaf k of the layout, so a leaf's id indexes its sampled value.
        let mut values = Vec::with_capacity(self.sites.len());
        for (name, shape) in &self.sites {
            values.push(m.sample(
                name,
                normal(Arg::Const(T::ZERO), Arg::Const(T::ONE)),
                *shape,
            )?);
        }
        let observation =
            self.net
                .observation_with(m.graph(), x, |_, id| Ok(values[id.index()]))?;
        let distribution = match observation {
            Observation::Gaussian { mu, sigma: Some(s) } => normal(mu, Arg::Var(s)),
            Observation::Gaussian { mu, sigma: None } => {
                normal(mu, Arg::Const(T::from_f64(self.sigma_std)))
            }
            Observation::Categorical { logits } => categorical(logits),
            Observation::Bernoulli { logits } => bernoulli(logits),
        };
        m.observe("y", distribution, y)
    }
}

/// The guides' layout for a network layout — [`Guide::layout`] over its leaves, the layout
/// [`EnsembleVI`](crate::vi::EnsembleVI) gives `guide` over [`NetworkModel`]'s sites — and the
/// guide leaves' ids.
///
/// # Errors
/// [`AutogradError::DuplicateLeaf`] (not for a layout of distinct names).
pub(crate) fn guide_layout(
    layout: &ParamLayout,
    guide: Guide,
) -> Result<(ParamLayout, GuideIds), AutogradError> {
    guide.layout(
        layout
            .leaves()
            .iter()
            .map(|leaf| (leaf.name.as_str(), leaf.shape)),
    )
}

/// `samples` networks from each member's guide in `guides` (laid out by
/// [`guide_layout`]`(layout, guide)`), as `E·S` members of `layout`, member-major (network
/// `e·S + s` is draw `s` of guide `e`): `θ = loc + s ⊙ (ε + V·z)` with `s = softplus(ρ)`,
/// `ε ~ N(0, I)` and, for a low-rank guide, one `z ~ N(0, I_rank)` per draw shared by every
/// leaf (`V·z = 0` for mean-field) — all from member `e`'s stream of the fit seed's
/// [`SeedStream::PredictiveDraws`], so the same guides and seed give the same networks.
///
/// # Errors
/// [`CheckpointError::Mismatch`] if `guides` is not laid out for `layout` and `guide` or
/// `samples` is 0.
pub(crate) fn guide_draws<T: Element>(
    guides: &Parameters<T>,
    layout: &ParamLayout,
    guide: Guide,
    samples: usize,
    seed: u64,
) -> Result<Parameters<T>, CheckpointError> {
    guide_draws_from(guides, layout, guide, samples, seed, 0)
}

/// [`guide_draws`] of a block of guides whose first is the whole ensemble's member
/// `first_member` (a member-sharded run's): guide `e` of the block draws from member
/// `first_member + e`'s stream, as it does in the whole ensemble.
///
/// # Errors
/// As [`guide_draws`].
pub(crate) fn guide_draws_from<T: Element>(
    guides: &Parameters<T>,
    layout: &ParamLayout,
    guide: Guide,
    samples: usize,
    seed: u64,
    first_member: usize,
) -> Result<Parameters<T>, CheckpointError> {
    let mismatch = |reason: &str| CheckpointError::Mismatch {
        reason: reason.to_owned(),
    };
    if samples == 0 {
        return Err(mismatch(
            "a VI fit's predictive needs at least one draw per member",
        ));
    }
    let (expected, ids) = guide_layout(layout, guide).map_err(|e| mismatch(&e.to_string()))?;
    if guides.layout() != &expected {
        return Err(mismatch(
            "the guides are not laid out as this guide family over the network's leaves",
        ));
    }
    let positive = vec![false; layout.leaves().len()];
    guide
        .draw(guides, &ids, layout, &positive, samples, |e| {
            member_rng(SeedStream::PredictiveDraws.seed(seed), first_member + e)
        })
        .map_err(|e| mismatch(&e.to_string()))
}

/// A VI fit's held-out score: each member's predictive — the mixture of `samples` networks
/// drawn from its guide ([`guide_draws`], the same noise at every scoring) — scored by its mean
/// NLL per held-out row ([`member_mixture_nll`]).
pub(crate) struct GuideMixtureNll<'a, T> {
    pub(crate) network: &'a Network,
    pub(crate) layout: &'a ParamLayout,
    pub(crate) guide: Guide,
    pub(crate) samples: usize,
    pub(crate) seed: u64,
    /// The whole ensemble's index of the scored guides' first (a member-sharded run's block).
    pub(crate) first_member: usize,
    pub(crate) sigma_std: f64,
    pub(crate) x: &'a [T],
    pub(crate) y: Vec<f64>,
    /// Kept from scoring to scoring.
    pub(crate) tape: Tape<T>,
}

impl<T: Element> Scorer<T> for GuideMixtureNll<'_, T> {
    fn score(
        &mut self,
        _log_joint: &mut dyn LogJoint<T>,
        params: &Parameters<T>,
        scores: &mut Vec<f64>,
    ) -> Result<(), RunError<T>> {
        let draws = guide_draws_from(
            params,
            self.layout,
            self.guide,
            self.samples,
            self.seed,
            self.first_member,
        )?;
        if let Some(classes) = self.network.likelihood.classes() {
            let n = self.y.len();
            let probs = self
                .network
                .class_probs(&mut self.tape, &draws, self.x, n, 1.0)?;
            *scores = member_mixture_class_nll(&probs, &self.y, self.samples, classes);
            return Ok(());
        }
        let (means, sigmas) = self.network.moments(
            &mut self.tape,
            &draws,
            self.x,
            self.y.len(),
            Readout::new(0.0, 1.0, self.sigma_std),
        )?;
        *scores = member_mixture_nll(&means, &sigmas, &self.y, self.samples);
        Ok(())
    }
}

/// Each member's mean negative log-likelihood per row of the labels `y` under the mean of its
/// `samples` consecutive components' class probabilities (`probs`: `[E·S·N·K]`).
pub(crate) fn member_mixture_class_nll(
    probs: &[f64],
    y: &[f64],
    samples: usize,
    classes: usize,
) -> Vec<f64> {
    let n = y.len();
    let members = probs.len() / (samples * n * classes).max(1);
    (0..members)
        .map(|e| {
            let mut total = 0.0;
            for (i, &label) in y.iter().enumerate() {
                let p: f64 = (0..samples)
                    .map(|s| probs[((e * samples + s) * n + i) * classes + label as usize])
                    .sum::<f64>()
                    / samples as f64;
                total -= p.ln();
            }
            total / n as f64
        })
        .collect()
}

/// Each member's mean negative log-likelihood per row of `y` under the equal-weight mixture of
/// its `samples` consecutive components (`means`, `sigmas`: `[E·S·N]`, component-major, as
/// [`guide_draws`] orders the networks): `−(1/N) Σᵢ ln((1/S) Σₛ N(yᵢ | μ_{eS+s,i}, σ_{eS+s,i}))`,
/// `[E]`, by log-sum-exp.
pub(crate) fn member_mixture_nll(
    means: &[f64],
    sigmas: &[f64],
    y: &[f64],
    samples: usize,
) -> Vec<f64> {
    let n = y.len();
    let members = means.len() / (samples * n).max(1);
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let mut log_densities = vec![0.0; samples];
    (0..members)
        .map(|e| {
            let mut total = 0.0;
            for (i, &yi) in y.iter().enumerate() {
                for (s, ld) in log_densities.iter_mut().enumerate() {
                    let c = (e * samples + s) * n + i;
                    let z = (yi - means[c]) / sigmas[c];
                    *ld = -0.5 * z * z - sigmas[c].ln() - half_ln_2pi;
                }
                let top = log_densities
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = log_densities.iter().map(|v| (v - top).exp()).sum();
                total += top + sum.ln() - (samples as f64).ln();
            }
            -total / n as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use flock_autograd::{Activation, Batch, LogJoint, LogJointOutput, Weights};
    use flock_ensemble::model::ModelLogJoint;

    use super::super::spec::{FitSpec, Likelihood};
    use super::*;

    /// `(ℓ, π, gradient)` of `log_joint` at `params` on `(x, y)`, weights 1 and 1.
    fn evaluate(
        log_joint: &mut impl LogJoint<f64>,
        params: &Parameters<f64>,
        x: &[f64],
        y: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let members = params.members();
        let (mut ll, mut lp) = (vec![0.0; members], vec![0.0; members]);
        let mut grad = vec![0.0; params.values().len()];
        log_joint
            .evaluate(
                members,
                params.values(),
                Batch::new(x, y, y.len()).unwrap(),
                Weights {
                    loglik: 1.0,
                    logprior: 1.0,
                },
                LogJointOutput {
                    loglik: &mut ll,
                    logprior: &mut lp,
                    grad: &mut grad,
                },
            )
            .unwrap();
        (ll, lp, grad)
    }

    /// The VI model evaluated at point weights is the MAP fit's log-joint — the same sites,
    /// head, likelihood and prior — for every likelihood: same log-likelihood, log-prior and
    /// gradient (its layout, discovered from the sites, is the network's).
    #[test]
    fn network_model_at_point_weights_is_the_map_log_joint() {
        let (features, rows) = (3, 17);
        let x: Vec<f64> = (0..rows * features)
            .map(|i| ((i * 7 % 13) as f64 - 6.0) / 4.0)
            .collect();
        let y: Vec<f64> = (0..rows).map(|i| (i as f64 / 5.0).sin()).collect();
        for likelihood in [
            Likelihood::Heteroscedastic,
            Likelihood::Learned,
            Likelihood::Fixed { sigma: 0.3 },
        ] {
            let spec = FitSpec {
                hidden: vec![6, 6],
                activation: Activation::Tanh,
                likelihood,
                ..FitSpec::default()
            };
            let (layout, net) = Network::new(&spec, features).unwrap();
            let mut params = Parameters::<f64>::zeros(layout.clone(), 3);
            let mut rng = member_rng(5, 0);
            flock_ensemble::fill_standard_normal(&mut rng, params.values_mut());
            let sigma_std = 0.3;
            let model = NetworkModel::new(net.clone(), &layout, sigma_std);
            let mut as_model =
                ModelLogJoint::new(model, Batch::new(&x, &y, rows).unwrap()).unwrap();
            assert_eq!(as_model.layout(), &layout, "{likelihood:?}");
            let mut as_map = net.log_joint::<f64>(&layout, sigma_std, true);
            let (ll_a, lp_a, g_a) = evaluate(&mut as_model, &params, &x, &y);
            let (ll_b, lp_b, g_b) = evaluate(&mut as_map, &params, &x, &y);
            let close = |a: &[f64], b: &[f64], what: &str| {
                for (u, v) in a.iter().zip(b) {
                    assert!(
                        (u - v).abs() <= 1e-12 * (1.0 + v.abs()),
                        "{likelihood:?} {what}: {u} vs {v}"
                    );
                }
            };
            close(&ll_a, &ll_b, "loglik");
            close(&lp_a, &lp_b, "logprior");
            close(&g_a, &g_b, "gradient");
        }
    }

    fn guides_for(layout: &ParamLayout, members: usize) -> Parameters<f64> {
        let (guide, _) = guide_layout(layout, Guide::MeanField).unwrap();
        let mut guides = Parameters::<f64>::zeros(guide.clone(), members);
        for e in 0..members {
            for (i, leaf) in guide.leaves().iter().enumerate() {
                for (j, v) in guides.member_mut(e)[leaf.offset..leaf.offset + leaf.len()]
                    .iter_mut()
                    .enumerate()
                {
                    // loc: a pattern per member; rho: scales from 0.05 up.
                    *v = if i % 2 == 0 {
                        (e as f64 + 1.0) * (j as f64 / 7.0 - 0.5)
                    } else {
                        -3.0 + 0.4 * (j % 5) as f64
                    };
                }
            }
        }
        guides
    }

    /// Draws are `loc + softplus(ρ)·ε`: over many draws each weight's mean and std match its
    /// guide's; member `e`'s draws depend only on its own guide; the same seed repeats them.
    #[test]
    fn guide_draws_follow_each_member_guide() {
        let spec = FitSpec {
            hidden: vec![3],
            ..FitSpec::default()
        };
        let (layout, _) = Network::new(&spec, 2).unwrap();
        let guides = guides_for(&layout, 2);
        let samples = 4000;
        let draws = guide_draws(&guides, &layout, Guide::MeanField, samples, 9).unwrap();
        assert_eq!(draws.members(), 2 * samples);
        let (guide, _) = guide_layout(&layout, Guide::MeanField).unwrap();
        for e in 0..2 {
            for (k, leaf) in layout.leaves().iter().enumerate() {
                let (loc, rho) = (&guide.leaves()[2 * k], &guide.leaves()[2 * k + 1]);
                for j in 0..leaf.len() {
                    let values: Vec<f64> = (0..samples)
                        .map(|s| draws.member(e * samples + s)[leaf.offset + j])
                        .collect();
                    let mean = values.iter().sum::<f64>() / samples as f64;
                    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                        / (samples - 1) as f64;
                    let want_loc = guides.member(e)[loc.offset + j];
                    let r = guides.member(e)[rho.offset + j];
                    let want_scale = (1.0 + r.exp()).ln();
                    // 5 standard errors of the mean and of the std.
                    let se = want_scale / (samples as f64).sqrt();
                    assert!((mean - want_loc).abs() < 5.0 * se, "{e} {k} {j}: {mean}");
                    assert!(
                        (var.sqrt() - want_scale).abs() < 5.0 * se / 2f64.sqrt(),
                        "{e} {k} {j}: {} vs {want_scale}",
                        var.sqrt()
                    );
                }
            }
        }
        // Member 0's draws do not move when member 1's guide does; the seed repeats them.
        let mut changed = guides.clone();
        changed.member_mut(1).iter_mut().for_each(|v| *v += 1.0);
        let again = guide_draws(&changed, &layout, Guide::MeanField, 3, 9).unwrap();
        let first = guide_draws(&guides, &layout, Guide::MeanField, 3, 9).unwrap();
        assert_eq!(first.member(0), again.member(0));
        assert_eq!(first.member(2), again.member(2));
        assert_ne!(first.member(3), again.member(3));
        assert_ne!(
            first.values(),
            guide_draws(&guides, &layout, Guide::MeanField, 3, 10)
                .unwrap()
                .values()
        );
        // A guide of another network, and zero draws, are refused.
        let (other, _) = Network::new(&FitSpec::default(), 3).unwrap();
        assert!(guide_draws(&guides, &other, Guide::MeanField, 3, 9).is_err());
        assert!(guide_draws(&guides, &layout, Guide::MeanField, 0, 9).is_err());
    }

    /// The held-out score is the mixture NLL: one component per member is the Gaussian NLL, two
    /// equal components the log of their mean density; members do not mix.
    #[test]
    fn member_mixture_nll_is_each_member_mixture() {
        let y = [0.3, -1.0];
        let density = |y: f64, m: f64, s: f64| {
            (-0.5 * ((y - m) / s).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
        };
        // Two members of two components over two rows: [E·S·N].
        let means = [0.0, -0.5, 1.0, -1.5, 0.2, 0.1, -0.3, -2.0];
        let sigmas = [1.0, 0.5, 2.0, 0.7, 0.3, 1.1, 0.9, 0.4];
        let got = member_mixture_nll(&means, &sigmas, &y, 2);
        for (e, &got) in got.iter().enumerate() {
            let want = -(0..2)
                .map(|i| {
                    let c = |s: usize| (e * 2 + s) * 2 + i;
                    (0.5 * (density(y[i], means[c(0)], sigmas[c(0)])
                        + density(y[i], means[c(1)], sigmas[c(1)])))
                    .ln()
                })
                .sum::<f64>()
                / 2.0;
            assert!((got - want).abs() < 1e-12, "{e}: {got} vs {want}");
        }
        let single = member_mixture_nll(&means, &sigmas, &y, 1);
        assert_eq!(single.len(), 4);
        let want = -(density(y[0], 0.0, 1.0).ln() + density(y[1], -0.5, 0.5).ln()) / 2.0;
        assert!((single[0] - want).abs() < 1e-12);
    }

    /// A low-rank guide's draws have the guide's covariance `diag(s)·(I + V·Vᵀ)·diag(s)` —
    /// correlated across leaves through the shared `z` — and its means.
    #[test]
    fn low_rank_draws_have_the_guide_covariance() {
        let spec = FitSpec {
            hidden: vec![1],
            ..FitSpec::default()
        };
        let (layout, _) = Network::new(&spec, 1).unwrap();
        let (rank, d) = (2, layout.member_size());
        assert_eq!(d, 6);
        let guide = Guide::LowRank { rank };
        let (gl, _) = guide_layout(&layout, guide).unwrap();
        let mut guides = Parameters::<f64>::zeros(gl.clone(), 1);
        // Flattened over the network's leaves: loc, scale and V ([D, rank]).
        let (mut loc, mut scale, mut v) = (vec![0.0; d], vec![0.0; d], vec![0.0; d * rank]);
        for (k, leaf) in layout.leaves().iter().enumerate() {
            let [l, r, f] = [3 * k, 3 * k + 1, 3 * k + 2].map(|i| gl.leaves()[i].clone());
            let block = guides.member_mut(0);
            for j in 0..leaf.len() {
                let i = leaf.offset + j;
                block[l.offset + j] = 0.3 * i as f64 - 0.5;
                block[r.offset + j] = -1.0 + 0.3 * i as f64;
                loc[i] = block[l.offset + j];
                scale[i] = (1.0 + block[r.offset + j].exp()).ln();
                for c in 0..rank {
                    let w = ((i * 5 + c * 3) % 7) as f64 / 7.0 - 0.4;
                    block[f.offset + c * leaf.len() + j] = w;
                    v[i * rank + c] = w;
                }
            }
        }
        let samples = 40_000;
        let draws = guide_draws(&guides, &layout, guide, samples, 4).unwrap();
        let mean: Vec<f64> = (0..d)
            .map(|i| (0..samples).map(|s| draws.member(s)[i]).sum::<f64>() / samples as f64)
            .collect();
        for a in 0..d {
            for b in 0..d {
                let cov = (0..samples)
                    .map(|s| (draws.member(s)[a] - mean[a]) * (draws.member(s)[b] - mean[b]))
                    .sum::<f64>()
                    / (samples - 1) as f64;
                let vv: f64 = (0..rank).map(|c| v[a * rank + c] * v[b * rank + c]).sum();
                let want = scale[a] * scale[b] * (vv + if a == b { 1.0 } else { 0.0 });
                // Standard error of a sample covariance: √((σ_aa·σ_bb + σ_ab²)/n).
                let var = |i: usize| {
                    let vv: f64 = (0..rank).map(|c| v[i * rank + c].powi(2)).sum();
                    scale[i] * scale[i] * (1.0 + vv)
                };
                let se = ((var(a) * var(b) + want * want) / samples as f64).sqrt();
                assert!((cov - want).abs() < 5.0 * se, "{a} {b}: {cov} vs {want}");
            }
            let se = (scale[a].powi(2) * 2.0 / samples as f64).sqrt();
            assert!(
                (mean[a] - loc[a]).abs() < 5.0 * se.max(1e-3),
                "{a}: {}",
                mean[a]
            );
        }
        // A mean-field guide's layout is not a low-rank one's.
        assert!(guide_draws(&guides, &layout, Guide::MeanField, 3, 4).is_err());
    }
}
