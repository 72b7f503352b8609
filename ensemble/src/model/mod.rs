//! Pattern C in Rust: one model, many inference paths.
//!
//! A model is a function that declares its latent variables with
//! [`ModelContext::sample`]`(name, distribution, shape)` and its observations with
//! [`ModelContext::observe`]`(name, distribution, data)`, and computes with the tape in between
//! (through [`ModelContext::graph`]). From that one function flock derives:
//!
//! - the parameter layout (one leaf per latent site, named after it), found by running the model
//!   once ([`ModelLogJoint::new`]);
//! - [`log_density`]: the log-likelihood (observed sites) and the log-prior (latent sites)
//!   **separately**, so tempered MAP (`0 < prior_weight < 1`) works;
//! - a [`LogJoint`] ([`ModelLogJoint`]) that [`ensemble_step`](crate::ensemble_step) trains, and
//!   initial parameters drawn from the priors ([`ModelLogJoint::init_from_prior`]) or from a
//!   user init.
//!
//! ```
//! use flock_autograd::{AutogradError, Batch, LogJoint, Parameters, Var};
//! use flock_ensemble::model::{ModelContext, ModelLogJoint, half_normal, log_density, normal};
//!
//! // y ~ N(w·x, σ), w ~ N(0, 1), σ ~ HalfNormal(1)
//! fn model(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
//!     let w = m.sample("w", normal(0.0, 1.0), [1, 1])?;
//!     let sigma = m.sample("sigma", half_normal(1.0), [])?;
//!     let f = m.graph().matmul(x, w)?;
//!     let f = m.graph().squeeze_last(f)?;
//!     m.observe("y", normal(f, sigma), y)
//! }
//!
//! let (x, y) = ([0.0, 1.0, 2.0], [0.1, 0.9, 2.1]);
//! let batch = Batch::new(&x, &y, 3)?;
//! let mut joint = ModelLogJoint::new(model, batch)?;
//! assert_eq!(joint.sites().len(), 2);
//! let layout = joint.layout().clone();
//! // One member drawn from the priors (σ stored as its logarithm), one set by hand.
//! let mut values = joint.init_from_prior(&mut flock_ensemble::member_rng(0, 0))?;
//! values.extend([1.0, (0.1f64).ln()]);
//! let params = Parameters::from_values(layout, 2, values)?;
//! let (loglik, logprior) = log_density(&mut joint, &params, batch)?;
//! assert!(loglik[1] > loglik[0]); // w = 1, σ = 0.1 fits this data
//! # let _ = logprior;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Latents with positive support (`HalfNormal`, `LogNormal`, e.g. a learned noise scale) are
//! stored as their logarithm `u` (value `eᵘ`), and the log-prior includes the Jacobian `Σu`, so an
//! optimizer can never step them out of their support — NumPyro's unconstrained parameterisation.

mod distribution;
mod vi;

use flock_autograd::{
    AutogradError, Batch, Graph, LogJoint, LogJointOutput, ParamLayout, Parameters, Shape, Tape,
    Var, Weights, batch_inputs, finish_evaluation,
};
use flock_kernels::Element;

pub use distribution::{
    Distribution, Support, bernoulli, categorical, half_normal, log_normal, normal,
};
pub use vi::{Guide, GuideBlock, GuideElbo, GuideIds, KlEstimator, inverse_softplus};

use crate::{EnsembleError, MemberRng};

/// A latent site as discovered in the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Site<T> {
    /// Its name (and the parameter leaf's).
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Its prior, as declared when the model was first run.
    pub prior: Distribution<T>,
}

enum Mode<'c, T> {
    /// Discovering sites: latents are placeholders of zeros, the layout is being built.
    Discover {
        layout: &'c mut ParamLayout,
        sites: &'c mut Vec<Site<T>>,
    },
    /// Evaluating: latents are the parameters.
    Evaluate { sites: &'c [Site<T>] },
    /// Evaluating one particle of a guide: latent `k` is `loc + softplus(rho)·ε` with `ε` from
    /// `noise` (per site, `[E, len]` at `offsets[k]`); for a low-rank guide
    /// `loc + softplus(rho) ⊙ (ε + Vₖ·z)` (`z`: `[1, rank]` per member, shared by the sites).
    Guide {
        sites: &'c [Site<T>],
        guide: &'c vi::GuideIds,
        noise: &'c [T],
        offsets: &'c [usize],
        z: Option<Var>,
    },
}

/// What a model sees: the graph and the site statements.
pub struct ModelContext<'c, 'g, T> {
    graph: &'c mut Graph<'g, T>,
    mode: Mode<'c, T>,
    next_site: usize,
    loglik: Option<Var>,
    logprior: Option<Var>,
    /// `Σ log q(θ)` of the guide's draw (guide mode only).
    logq: Option<Var>,
    /// `Σ ln s` over the sites' guide scales (low-rank guide mode only: its entropy's term).
    sum_log_scale: Option<Var>,
}

impl<T> core::fmt::Debug for ModelContext<'_, '_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModelContext")
            .field("next_site", &self.next_site)
            .finish_non_exhaustive()
    }
}

/// Checks that site `index` is the one the first run declared.
fn check_site<T>(
    sites: &[Site<T>],
    index: usize,
    name: &str,
    shape: Shape,
) -> Result<(), AutogradError> {
    match sites.get(index) {
        Some(s) if s.name == name && s.shape == shape => Ok(()),
        _ => Err(AutogradError::Site {
            name: name.to_owned(),
            problem: "not declared in this order or shape when the model was first run",
        }),
    }
}

fn accumulate<T: Element>(
    g: &mut Graph<'_, T>,
    total: &mut Option<Var>,
    term: Var,
) -> Result<(), AutogradError> {
    *total = Some(match *total {
        None => term,
        Some(t) => g.add(t, term)?,
    });
    Ok(())
}

impl<'g, T: Element> ModelContext<'_, 'g, T> {
    /// The graph, for the model's computations.
    pub fn graph(&mut self) -> &mut Graph<'g, T> {
        self.graph
    }

    /// A latent variable `name` of `shape` with prior `prior`; returns its value.
    ///
    /// # Errors
    /// [`AutogradError::Site`] if the name repeats or the sites differ from the first run;
    /// shape errors from the prior's `log_prob`.
    pub fn sample(
        &mut self,
        name: &str,
        prior: Distribution<T>,
        shape: impl Into<Shape>,
    ) -> Result<Var, AutogradError> {
        let shape = shape.into();
        if prior.support() == Support::Discrete {
            return Err(AutogradError::Site {
                name: name.to_owned(),
                problem: "has a discrete prior: latent sites are continuous (observe labels instead)",
            });
        }
        let index = self.next_site;
        self.next_site += 1;
        let positive = prior.support() == Support::Positive;
        let (raw, value) = match &mut self.mode {
            Mode::Discover { layout, sites } => {
                layout.add(name, shape).map_err(|_| AutogradError::Site {
                    name: name.to_owned(),
                    problem: "declared twice",
                })?;
                sites.push(Site {
                    name: name.to_owned(),
                    shape,
                    prior,
                });
                let zeros = vec![T::ZERO; self.graph.members() * shape.elems()];
                let raw = self.graph.input_per_member(&zeros, shape)?;
                (raw, if positive { self.graph.exp(raw) } else { raw })
            }
            Mode::Guide {
                sites,
                guide,
                noise,
                offsets,
                z,
            } => {
                check_site(sites, index, name, shape)?;
                let g = &mut *self.graph;
                let loc = g.param(guide.loc[index])?;
                let rho = g.param(guide.rho[index])?;
                let scale = g.softplus(rho);
                let len = g.members() * shape.elems();
                let eps =
                    g.input_per_member(&noise[offsets[index]..offsets[index] + len], shape)?;
                if let Some(z) = *z {
                    // loc + s ⊙ (ε + Vₖ·z); log q enters once per evaluation as the guide's
                    // entropy.
                    let factor = g.param(guide.cov_factor[index])?;
                    let vz = g.matmul(z, factor)?;
                    let vz = g.reshape(vz, shape)?;
                    let eps = g.add(eps, vz)?;
                    let raw = g.mul_add(scale, eps, loc)?;
                    let sum_log = g.sum_log(scale);
                    accumulate(g, &mut self.sum_log_scale, sum_log)?;
                    let value = if positive { g.exp(raw) } else { raw };
                    return self.finish_sample(prior, raw, value, positive);
                }
                let raw = g.mul_add(scale, eps, loc)?;
                // log q(θ) = Σ log N(loc + s·ε | loc, s) = Σ (−½ε² − ln s) − n·½ln 2π: the same
                // value and gradient as the density of θ (its ε-terms cancel), with one vector
                // log instead of a scalar one per element.
                let n = shape.elems() as f64;
                let sum_log_scale = g.sum_log(scale);
                let eps_sq = g.sum_squares(eps);
                let constant = g.scale(eps_sq, -0.5);
                let constant = g.offset(constant, -n * 0.5 * (2.0 * core::f64::consts::PI).ln());
                let lq = g.sub(constant, sum_log_scale)?;
                accumulate(g, &mut self.logq, lq)?;
                (raw, if positive { g.exp(raw) } else { raw })
            }
            Mode::Evaluate { sites } => {
                check_site(sites, index, name, shape)?;
                let id = self.graph.layout().find(name).ok_or(AutogradError::Site {
                    name: name.to_owned(),
                    problem: "not in the parameter layout",
                })?;
                let raw = self.graph.param(id)?;
                (raw, if positive { self.graph.exp(raw) } else { raw })
            }
        };
        self.finish_sample(prior, raw, value, positive)
    }

    /// Adds the site's log-prior at `value` (with the Jacobian `Σ raw` of a positive site stored
    /// as its logarithm `raw`); returns `value`.
    fn finish_sample(
        &mut self,
        prior: Distribution<T>,
        raw: Var,
        value: Var,
        positive: bool,
    ) -> Result<Var, AutogradError> {
        let mut lp = prior.log_prob(self.graph, value)?;
        if positive {
            // log|d eᵘ/du| = u.
            let jacobian = self.graph.sum(raw);
            lp = self.graph.add(lp, jacobian)?;
        }
        accumulate(self.graph, &mut self.logprior, lp)?;
        Ok(value)
    }

    /// An observed site: adds `Σ log p(data)` to the log-likelihood.
    ///
    /// # Errors
    /// Shape errors when the distribution's parameters do not broadcast against `data`.
    pub fn observe(
        &mut self,
        _name: &str,
        distribution: Distribution<T>,
        data: Var,
    ) -> Result<(), AutogradError> {
        let ll = distribution.log_prob(self.graph, data)?;
        accumulate(self.graph, &mut self.loglik, ll)?;
        Ok(())
    }
}

/// A model: declares sites on the context given the batch `x` (`[B, D]`) and `y` (`[B]` or
/// `[B, K]`). Closures with this signature are models.
pub trait Model<T: Element> {
    /// Runs the model once.
    ///
    /// # Errors
    /// Whatever the model's statements return.
    fn run(&self, m: &mut ModelContext<'_, '_, T>, x: Var, y: Var) -> Result<(), AutogradError>;
}

impl<T: Element, F> Model<T> for F
where
    F: for<'c, 'g> Fn(&mut ModelContext<'c, 'g, T>, Var, Var) -> Result<(), AutogradError>,
{
    fn run(&self, m: &mut ModelContext<'_, '_, T>, x: Var, y: Var) -> Result<(), AutogradError> {
        self(m, x, y)
    }
}

/// A model as a [`LogJoint`]: `ℓ` from the observed sites, `π` from the latent ones.
pub struct ModelLogJoint<T, M> {
    model: M,
    layout: ParamLayout,
    sites: Vec<Site<T>>,
    tape: Tape<T>,
}

impl<T, M> core::fmt::Debug for ModelLogJoint<T, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModelLogJoint")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl<T: Element, M: Model<T>> ModelLogJoint<T, M> {
    /// Runs `model` once on `example` (any batch of the data's shape) to discover its sites.
    ///
    /// # Errors
    /// [`AutogradError::Site`] for a repeated site name; errors of the model.
    pub fn new(model: M, example: Batch<'_, T>) -> Result<Self, EnsembleError> {
        let mut layout = ParamLayout::new();
        let mut sites = Vec::new();
        let mut tape = Tape::new();
        let empty = ParamLayout::new();
        {
            let mut g = tape.graph_over(1, &[], &empty)?;
            let (x, y) = batch_inputs(&mut g, &example)?;
            let mut ctx = ModelContext {
                graph: &mut g,
                mode: Mode::Discover {
                    layout: &mut layout,
                    sites: &mut sites,
                },
                next_site: 0,
                loglik: None,
                logprior: None,
                logq: None,
                sum_log_scale: None,
            };
            model.run(&mut ctx, x, y)?;
        }
        Ok(ModelLogJoint {
            model,
            layout,
            sites,
            tape,
        })
    }

    /// The latent sites in declaration order.
    pub fn sites(&self) -> &[Site<T>] {
        &self.sites
    }

    /// One member's parameters drawn from the priors (stored as logarithms for positive sites).
    ///
    /// # Errors
    /// [`AutogradError::Site`] when a prior's parameters are not constants (a hierarchical
    /// prior): initialise such models with a user init instead.
    pub fn init_from_prior(&self, rng: &mut MemberRng) -> Result<Vec<T>, EnsembleError> {
        let mut block = Vec::with_capacity(self.layout.member_size());
        for site in &self.sites {
            for _ in 0..site.shape.elems() {
                let v = site.prior.sample(rng).ok_or_else(|| AutogradError::Site {
                    name: site.name.clone(),
                    problem: "init from the prior needs a prior with constant parameters",
                })?;
                let stored = match site.prior.support() {
                    Support::Positive => v.max(f64::MIN_POSITIVE).ln(),
                    // Discrete priors are refused when the site is declared.
                    Support::Real | Support::Discrete => v,
                };
                block.push(T::from_f64(stored));
            }
        }
        Ok(block)
    }

    fn record<'g>(
        model: &M,
        sites: &[Site<T>],
        g: &mut Graph<'g, T>,
        batch: &Batch<'_, T>,
    ) -> Result<(Var, Var), AutogradError> {
        let (x, y) = batch_inputs(g, batch)?;
        let mut ctx = ModelContext {
            graph: g,
            mode: Mode::Evaluate { sites },
            next_site: 0,
            loglik: None,
            logprior: None,
            logq: None,
            sum_log_scale: None,
        };
        model.run(&mut ctx, x, y)?;
        let (ll, lp) = (ctx.loglik, ctx.logprior);
        let zero = |g: &mut Graph<'g, T>| g.input(&[T::ZERO], Shape::SCALAR);
        let ll = match ll {
            Some(v) => v,
            None => zero(g)?,
        };
        let lp = match lp {
            Some(v) => v,
            None => zero(g)?,
        };
        Ok((ll, lp))
    }
}

impl<T: Element, M: Model<T>> LogJoint<T> for ModelLogJoint<T, M> {
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError> {
        let mut g = self.tape.graph_over(members, params, &self.layout)?;
        let (ll, lp) = Self::record(&self.model, &self.sites, &mut g, &batch)?;
        finish_evaluation(&mut g, ll, lp, weights, out)
    }

    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        self.tape.workspace_per_member(rows)
    }
}

/// `(ℓ_e, π_e)` of a model for every member: the log-likelihood of the observed sites and the
/// log-prior of the latent sites (with the Jacobian of positive sites).
///
/// # Errors
/// Errors of the model or of the tape.
pub fn log_density<T: Element, M: Model<T>>(
    model: &mut ModelLogJoint<T, M>,
    params: &Parameters<T>,
    batch: Batch<'_, T>,
) -> Result<(Vec<T>, Vec<T>), EnsembleError> {
    let members = params.members();
    let mut tape = Tape::new();
    let mut g = tape.graph(params);
    let (ll, lp) = ModelLogJoint::record(&model.model, &model.sites, &mut g, &batch)?;
    let (mut ll_out, mut lp_out) = (vec![T::ZERO; members], vec![T::ZERO; members]);
    g.copy_values(ll, &mut ll_out)?;
    g.copy_values(lp, &mut lp_out)?;
    Ok((ll_out, lp_out))
}
