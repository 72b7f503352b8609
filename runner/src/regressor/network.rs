//! A regressor's network: the MLP and its Gaussian head, the point-estimate log-joint, and the
//! predictive moments of many networks on many rows.

use flock_autograd::{
    Arg, AutogradError, Graph, LogJoint, Mlp, ParamId, ParamLayout, Parameters, Shape, Tape,
    TapeLogJoint, Var,
};
use flock_ensemble::{EnsembleError, ensemble_predict_in};
use flock_kernels::Element;

use super::spec::{FitSpec, Likelihood};
use crate::error::Error;

/// The MLP and, for [`Likelihood::Learned`], the `log_sigma` leaf.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub(crate) mlp: Mlp,
    pub(crate) log_sigma: Option<ParamId>,
    pub(crate) likelihood: Likelihood,
}

impl Network {
    /// The network `spec` describes over `features` inputs, and its parameter layout.
    pub(crate) fn new(spec: &FitSpec, features: usize) -> Result<(ParamLayout, Network), Error> {
        let outputs = match spec.likelihood {
            Likelihood::Heteroscedastic => 2,
            Likelihood::Fixed { .. } | Likelihood::Learned | Likelihood::Bernoulli => 1,
            Likelihood::Categorical { classes } => classes,
        };
        let mut layout = ParamLayout::new();
        let mlp = Mlp::with_hidden(
            &mut layout,
            "",
            features,
            &spec.hidden,
            outputs,
            spec.activation,
        )?;
        let log_sigma = match spec.likelihood {
            Likelihood::Learned => Some(layout.add("log_sigma", Shape::SCALAR)?),
            _ => None,
        };
        Ok((
            layout,
            Network {
                mlp,
                log_sigma,
                likelihood: spec.likelihood,
            },
        ))
    }

    /// What the network says about `y` at inputs `x`: a Gaussian `(μ, σ)` on the standardised
    /// scale (σ `[N]` for the heteroscedastic head, `[]` for a learned one, `None` for a fixed
    /// one), or a classifier's logits — each leaf's value given by `leaf(graph, id)` (the
    /// parameters, or weights a model samples).
    pub(crate) fn observation_with<T: Element>(
        &self,
        g: &mut Graph<'_, T>,
        x: Var,
        mut leaf: impl FnMut(&mut Graph<'_, T>, ParamId) -> Result<Var, AutogradError>,
    ) -> Result<Observation, AutogradError> {
        let out = self.mlp.forward_with(g, x, &mut leaf)?;
        Ok(match (self.likelihood, self.log_sigma) {
            (Likelihood::Heteroscedastic, _) => {
                let mu = g.select_column(out, 0)?;
                let raw = g.select_column(out, 1)?;
                let var = g.softplus(raw);
                let var = g.offset(var, 1e-6);
                Observation::Gaussian {
                    mu,
                    sigma: Some(g.sqrt(var)),
                }
            }
            (Likelihood::Learned, Some(id)) => {
                let log_sigma = leaf(g, id)?;
                Observation::Gaussian {
                    mu: g.squeeze_last(out)?,
                    sigma: Some(g.exp(log_sigma)),
                }
            }
            (Likelihood::Categorical { .. }, _) => Observation::Categorical { logits: out },
            (Likelihood::Bernoulli, _) => Observation::Bernoulli {
                logits: g.squeeze_last(out)?,
            },
            _ => Observation::Gaussian {
                mu: g.squeeze_last(out)?,
                sigma: None,
            },
        })
    }

    /// [`Network::observation_with`] on the parameters.
    pub(crate) fn observation<T: Element>(
        &self,
        g: &mut Graph<'_, T>,
        x: Var,
    ) -> Result<Observation, AutogradError> {
        self.observation_with(g, x, |g, id| g.param(id))
    }

    /// The log-joint of a point-estimate fit: the likelihood of `y` under the network's
    /// observation (`N(μ, σ)`, σ = `sigma_std` for a fixed likelihood; or the categorical /
    /// Bernoulli of class labels), and — when `with_prior` — a standard-normal prior on every
    /// leaf. A fit whose prior weight is 0 never reads the prior, so it goes without: its
    /// log-prior is `0·ℓ` (no pass over the parameters forward or backward; ≈ 1.5 % of a
    /// Fashion-MNIST step's time, 239k parameters per member, measured by sampling).
    pub(crate) fn log_joint<T: Element>(
        &self,
        layout: &ParamLayout,
        sigma_std: f64,
        with_prior: bool,
    ) -> impl LogJoint<T> + Send + use<T> {
        let net = self.clone();
        TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, T>, x, y| {
            let ll = match net.observation(g, x)? {
                Observation::Gaussian { mu, sigma: Some(s) } => g.normal_log_density(y, mu, s)?,
                Observation::Gaussian { mu, sigma: None } => {
                    g.normal_log_density(y, mu, Arg::Const(T::from_f64(sigma_std)))?
                }
                Observation::Categorical { logits } => g.categorical_log_likelihood(logits, y)?,
                Observation::Bernoulli { logits } => g.bernoulli_log_likelihood(logits, y)?,
            };
            let lp = if with_prior {
                let theta = g.all_params();
                g.normal_log_density(theta, Arg::Const(T::ZERO), Arg::Const(T::ONE))?
            } else {
                g.scale(ll, 0.0)
            };
            Ok((ll, lp))
        })
    }

    /// Each network's class probabilities at each row of the standardised inputs `xs`
    /// (`[n, D]`), the logits divided by `temperature` before the softmax: `[M·n·K]` in f64,
    /// network-major, taken in chunks as [`Network::moments`] does.
    pub(crate) fn class_probs<T: Element>(
        &self,
        tape: &mut Tape<T>,
        nets: &Parameters<T>,
        xs: &[T],
        n: usize,
        temperature: f64,
    ) -> Result<Vec<f64>, EnsembleError> {
        let classes = self.likelihood.classes().unwrap_or(1);
        let m = nets.members();
        let d = xs.len() / n.max(1);
        let width = self.mlp.config().width_size.max(classes);
        let chunk = (CHUNK_VALUES / (m * width).max(1)).clamp(1, n.max(1));
        let mut probs = vec![0.0; m * n * classes];
        let mut row = vec![0.0; classes];
        for start in (0..n).step_by(chunk) {
            let rows = chunk.min(n - start);
            let logits = ensemble_predict_in(
                tape,
                nets,
                |g, x| self.mlp.forward(g, x),
                &xs[start * d..(start + rows) * d],
                rows,
            )?;
            for e in 0..m {
                let block = logits.member(e);
                for i in 0..rows {
                    let out = &mut probs[(e * n + start + i) * classes..][..classes];
                    if self.likelihood == Likelihood::Bernoulli {
                        // σ(z) for class 1, 1 − σ(z) for class 0.
                        let z = block[i].to_f64() / temperature;
                        let p1 = 1.0 / (1.0 + (-z).exp());
                        out.copy_from_slice(&[1.0 - p1, p1]);
                    } else {
                        for (r, v) in row.iter_mut().zip(&block[i * classes..(i + 1) * classes]) {
                            *r = v.to_f64();
                        }
                        softmax(&row, temperature, out);
                    }
                }
            }
        }
        Ok(probs)
    }

    /// Each network's `(μ, σ)` at each row of the standardised inputs `xs` (`[n, D]`), as
    /// `readout` says: `[M·n]` each, network-major, in f64.
    ///
    /// Rows go through the networks in chunks (2²⁰ hidden values, 8 MiB, by default) on `tape`,
    /// so that many networks (a VI fit's draws) on many rows never build one huge tape; the
    /// chunking does not change the values.
    pub(crate) fn moments<T: Element>(
        &self,
        tape: &mut Tape<T>,
        nets: &Parameters<T>,
        xs: &[T],
        n: usize,
        readout: Readout,
    ) -> Result<(Vec<f64>, Vec<f64>), EnsembleError> {
        let Readout {
            mean: y_mean,
            std: y_std,
            fixed_sigma,
            chunk_values,
        } = readout;
        let m = nets.members();
        let d = xs.len() / n.max(1);
        let width = self.mlp.config().width_size.max(2);
        let chunk = (chunk_values / (m * width).max(1)).clamp(1, n.max(1));
        let fixed: Vec<Option<f64>> = (0..m)
            .map(|e| match (self.likelihood, self.log_sigma) {
                (Likelihood::Fixed { .. }, _) => Ok(Some(fixed_sigma)),
                (Likelihood::Learned, Some(id)) => {
                    Ok(Some(nets.leaf(e, id)?[0].to_f64().exp() * y_std))
                }
                _ => Ok(None),
            })
            .collect::<Result<_, AutogradError>>()
            .map_err(EnsembleError::from)?;
        let (mut means, mut sigmas) = (vec![0.0; m * n], vec![0.0; m * n]);
        for start in (0..n).step_by(chunk) {
            let rows = chunk.min(n - start);
            let preds = ensemble_predict_in(
                tape,
                nets,
                |g, x| {
                    let Observation::Gaussian { mu, sigma } = self.observation(g, x)? else {
                        unreachable!("moments of a regressor's network");
                    };
                    let mu = g.unsqueeze_last(mu)?;
                    let sigma = match (self.likelihood, sigma) {
                        (Likelihood::Heteroscedastic, Some(s)) => g.unsqueeze_last(s)?,
                        _ => g.scale(mu, 0.0),
                    };
                    stack_two(g, mu, sigma)
                },
                &xs[start * d..(start + rows) * d],
                rows,
            )?;
            for (e, fixed) in fixed.iter().enumerate() {
                let block = preds.member(e);
                for i in 0..rows {
                    means[e * n + start + i] = block[2 * i].to_f64() * y_std + y_mean;
                    sigmas[e * n + start + i] = fixed.unwrap_or(block[2 * i + 1].to_f64() * y_std);
                }
            }
        }
        Ok((means, sigmas))
    }
}

/// What a network says about `y` at some inputs ([`Network::observation_with`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Observation {
    /// `N(μ, σ)` (σ the fixed one when `None`).
    Gaussian { mu: Var, sigma: Option<Var> },
    /// `Categorical(softmax(logits))`, logits `[N, K]`.
    Categorical { logits: Var },
    /// `Bernoulli(σ(logits))`, logits `[N]`.
    Bernoulli { logits: Var },
}

/// `out = softmax(z / temperature)` in f64, shifted by the maximum.
fn softmax(z: &[f64], temperature: f64, out: &mut [f64]) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = ((v - m) / temperature).exp();
        sum += *o;
    }
    out.iter_mut().for_each(|o| *o /= sum);
}

/// `[N, 1]` and `[N, 1]` side by side as `[N, 2]`.
fn stack_two<T: Element>(g: &mut Graph<'_, T>, a: Var, b: Var) -> Result<Var, AutogradError> {
    let left = g.input(&[T::ONE, T::ZERO], [1, 2])?;
    let right = g.input(&[T::ZERO, T::ONE], [1, 2])?;
    let a2 = g.matmul(a, left)?;
    let b2 = g.matmul(b, right)?;
    g.add(a2, b2)
}

/// How [`Network::moments`] reports: on the scale `y = mean + std·ŷ` of the standardised `ŷ`
/// (a fixed likelihood's σ given on that scale), the rows taken in chunks of about
/// `chunk_values` hidden values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readout {
    pub(crate) mean: f64,
    pub(crate) std: f64,
    pub(crate) fixed_sigma: f64,
    pub(crate) chunk_values: usize,
}

impl Readout {
    /// On the scale `mean + std·ŷ`, in chunks of [`CHUNK_VALUES`].
    pub(crate) fn new(mean: f64, std: f64, fixed_sigma: f64) -> Readout {
        Readout {
            mean,
            std,
            fixed_sigma,
            chunk_values: CHUNK_VALUES,
        }
    }
}

/// Hidden values per chunk of [`Network::moments`].
pub(crate) const CHUNK_VALUES: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use flock_ensemble::member_rng;

    use super::*;

    /// Taking the rows in chunks — one row, a few rows with a ragged last chunk, all at once —
    /// gives the same moments, for every likelihood and on a target scale.
    #[test]
    fn moments_do_not_depend_on_the_chunking() {
        let (features, rows, nets) = (3, 37, 23);
        let xs: Vec<f64> = (0..rows * features)
            .map(|i| ((i * 11 % 17) as f64 - 8.0) / 5.0)
            .collect();
        for likelihood in [
            Likelihood::Heteroscedastic,
            Likelihood::Learned,
            Likelihood::Fixed { sigma: 0.4 },
        ] {
            let spec = FitSpec {
                hidden: vec![7],
                likelihood,
                ..FitSpec::default()
            };
            let (layout, net) = Network::new(&spec, features).unwrap();
            let mut params = Parameters::<f64>::zeros(layout, nets);
            let mut rng = member_rng(2, 0);
            flock_ensemble::fill_standard_normal(&mut rng, params.values_mut());
            let moments = |chunk_values: usize| {
                let readout = Readout {
                    chunk_values,
                    ..Readout::new(1.5, 2.0, 0.4)
                };
                net.moments(&mut Tape::new(), &params, &xs, rows, readout)
                    .unwrap()
            };
            let whole = moments(CHUNK_VALUES);
            assert!(CHUNK_VALUES / (nets * 7) >= rows, "one chunk");
            for chunk_values in [1, nets * 7 * 5] {
                let chunked = moments(chunk_values);
                for (a, b) in chunked
                    .0
                    .iter()
                    .chain(&chunked.1)
                    .zip(whole.0.iter().chain(&whole.1))
                {
                    assert!(
                        (a - b).abs() <= 1e-13 * (1.0 + b.abs()),
                        "{likelihood:?} {chunk_values}: {a} vs {b}"
                    );
                }
            }
            // The fixed σ is reported as given; the learned one on the target scale.
            if let Likelihood::Fixed { sigma } = likelihood {
                assert!(whole.1.iter().all(|&s| s == sigma));
            }
        }
    }
}
