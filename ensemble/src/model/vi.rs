//! Variational inference over a model's latent sites with a Gaussian guide per member —
//! mean-field or low-rank plus diagonal ([`Guide`]): [`GuideElbo`].

use flock_autograd::{
    Arg, AutogradError, Batch, Graph, LogJoint, LogJointOutput, ParamId, ParamLayout, Parameters,
    Shape, Tape, Var, Weights, batch_inputs, finish_evaluation,
};
use flock_kernels::Element;
use flock_kernels::elementwise::{exp, softplus};

use super::{Distribution, Mode, Model, ModelContext, ModelLogJoint, Site, Support, accumulate};
use crate::{EnsembleError, MemberRng, fill_standard_normal, member_rng};

/// The guide's leaves in the variational layout: `{site}.loc` and `{site}.rho` per site, and
/// with a low-rank guide `{site}.cov_factor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuideIds {
    /// `loc` of each site, in site order.
    pub loc: Vec<ParamId>,
    /// `ρ` of each site (scale `softplus(ρ)`), in site order.
    pub rho: Vec<ParamId>,
    /// The site's rows of the relative covariance factor `V` (`W = diag(s)·V`), stored
    /// transposed as `[rank, len]`, in site order; empty for a mean-field guide.
    pub cov_factor: Vec<ParamId>,
}

/// The family of each member's Gaussian guide over all its latent values `θ ∈ ℝᴰ`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Guide {
    /// `θ ~ N(loc, diag(s²))`, `s = softplus(ρ)` (numpyro's `AutoNormal`).
    #[default]
    MeanField,
    /// `θ ~ N(loc, W·Wᵀ + diag(s²))` with `W: [D, rank]` — numpyro's
    /// `AutoLowRankMultivariateNormal` family: correlations between all latent values of a
    /// member, across sites, for `D·rank` more parameters.
    ///
    /// flock stores the factor relative to the scales, `W = diag(s)·V`, and draws
    /// `θ = loc + s ⊙ (ε + V·z)`; `V` starts at zero, so the guide starts mean-field. The family
    /// is the same as numpyro's (its `cov_factor` is `W` itself), but under Adam, whose steps
    /// have the learning rate's size whatever the gradient's, an absolute `W` random-walks on
    /// the Monte-Carlo noise to sizes far above small scales: on the seed problem (β = 0.1,
    /// init scale 0.01, Adam 1e-2, 3,000 steps, rank 4, 16 members) the absolute factor's
    /// loss over the last 200 steps averaged 1,687 against mean-field's 144, the relative
    /// factor's 166.
    LowRank {
        /// Columns of `W` (at least 1).
        rank: usize,
    },
}

impl Guide {
    /// Columns of the covariance factor (0 for mean-field).
    pub fn rank(self) -> usize {
        match self {
            Guide::MeanField => 0,
            Guide::LowRank { rank } => rank,
        }
    }

    /// The variational layout of this family over latent sites `(name, shape)`, in order: per
    /// site `{name}.loc`, `{name}.rho` and, low-rank, `{name}.cov_factor` (`[rank, len]`); with
    /// the ids of each. [`GuideElbo`] lays out its parameters so.
    ///
    /// ```
    /// use flock_ensemble::model::Guide;
    /// let (layout, ids) = Guide::LowRank { rank: 2 }.layout([("w", [3, 1].into())])?;
    /// assert_eq!(layout.member_size(), 3 + 3 + 2 * 3);
    /// assert_eq!(layout.leaf(ids.cov_factor[0])?.name, "w.cov_factor");
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutogradError::DuplicateLeaf`] for a repeated site name.
    pub fn layout<'a>(
        self,
        sites: impl IntoIterator<Item = (&'a str, Shape)>,
    ) -> Result<(ParamLayout, GuideIds), AutogradError> {
        let mut layout = ParamLayout::new();
        let mut ids = GuideIds {
            loc: Vec::new(),
            rho: Vec::new(),
            cov_factor: Vec::new(),
        };
        let rank = self.rank();
        for (name, shape) in sites {
            ids.loc.push(layout.add(format!("{name}.loc"), shape)?);
            ids.rho.push(layout.add(format!("{name}.rho"), shape)?);
            if rank > 0 {
                ids.cov_factor
                    .push(layout.add(format!("{name}.cov_factor"), [rank, shape.elems()])?);
            }
        }
        Ok((layout, ids))
    }
}

impl Guide {
    /// `samples` draws from each member's guide, as plain values — the predictive's draws (the
    /// training objective draws on the tape, [`GuideElbo`], for its gradient). `guides` is laid
    /// out by [`Guide::layout`] over the sites whose values `values` lays out (one leaf per site,
    /// in site order; e.g. a network's layout); draw `s` of member `e` is member `e·S + s` of the
    /// result: `θ = loc + s ⊙ (ε + V·z)` with `s = softplus(ρ)`, `ε ~ N(0, I)` and, low rank, one
    /// `z ~ N(0, I_rank)` per draw shared by every site (`V·z = 0` for mean-field), drawn from
    /// `rng(e)` in the order `z`, then `ε` of each site; a site with `positive[k]` (a latent on
    /// the positive reals, kept in log space) gives `exp(θ)`.
    ///
    /// ```
    /// use flock_autograd::{ParamLayout, Parameters};
    /// use flock_ensemble::{member_rng, model::Guide};
    /// let mut values = ParamLayout::new();
    /// values.add("w", [2])?;
    /// let (layout, ids) = Guide::MeanField.layout([("w", [2].into())])?;
    /// // loc (1, −1), ρ = −30 (a scale of e⁻³⁰): every draw is the loc.
    /// let guides = Parameters::from_values(layout, 1, vec![1.0f64, -1.0, -30.0, -30.0])?;
    /// let draws = Guide::MeanField.draw(&guides, &ids, &values, &[false], 3, |e| member_rng(7, e))?;
    /// assert_eq!(draws.members(), 3);
    /// assert!((draws.member(2)[1] + 1.0).abs() < 1e-9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EnsembleError::InvalidArgument`] when `guides` is not laid out so, or `positive` has
    /// another length than the sites.
    pub fn draw<T: Element>(
        self,
        guides: &Parameters<T>,
        ids: &GuideIds,
        values: &ParamLayout,
        positive: &[bool],
        samples: usize,
        mut rng: impl FnMut(usize) -> MemberRng,
    ) -> Result<Parameters<T>, EnsembleError> {
        let sites = values.leaves();
        let rank = self.rank();
        let invalid = |expected: &'static str| EnsembleError::InvalidArgument {
            name: "guides",
            value: sites.len() as f64,
            expected,
        };
        if ids.loc.len() != sites.len()
            || ids.rho.len() != sites.len()
            || ids.cov_factor.len() != if rank > 0 { sites.len() } else { 0 }
            || positive.len() != sites.len()
        {
            return Err(invalid(
                "a guide of this family over the sites of the value layout",
            ));
        }
        let members = guides.members();
        let mut draws = Parameters::zeros(values.clone(), members * samples);
        // One member's scales softplus(ρ), site by site in the value layout.
        let mut scale = vec![T::ZERO; values.member_size()];
        let (mut eps, mut z) = (Vec::new(), vec![T::ZERO; rank]);
        for e in 0..members {
            let mut rng = rng(e);
            for (k, site) in sites.iter().enumerate() {
                let rho = guides.leaf(e, ids.rho[k])?;
                if rho.len() != site.len() {
                    return Err(invalid("each site's ρ as long as the site"));
                }
                softplus(rho, &mut scale[site.offset..site.offset + site.len()]);
            }
            for s in 0..samples {
                if rank > 0 {
                    fill_standard_normal(&mut rng, &mut z);
                }
                let draw = draws.member_mut(e * samples + s);
                for (k, site) in sites.iter().enumerate() {
                    eps.resize(site.len(), T::ZERO);
                    fill_standard_normal(&mut rng, &mut eps);
                    if rank > 0 {
                        // + V·z, V stored as [rank, len].
                        let factor = guides.leaf(e, ids.cov_factor[k])?;
                        for (row, &zr) in factor.chunks_exact(site.len()).zip(&z) {
                            eps.iter_mut().zip(row).for_each(|(v, &w)| *v += w * zr);
                        }
                    }
                    let loc = guides.leaf(e, ids.loc[k])?;
                    let range = site.offset..site.offset + site.len();
                    let out = &mut draw[range.clone()];
                    for (((o, &l), &sc), &n) in out.iter_mut().zip(loc).zip(&scale[range]).zip(&eps)
                    {
                        *o = l + sc * n;
                    }
                    if positive[k] {
                        eps.copy_from_slice(out);
                        exp(&eps, out);
                    }
                }
            }
        }
        Ok(draws)
    }
}

/// The block layout of one member's guide, to build initial blocks from site values without the
/// ELBO at hand: per site `loc`, `ρ` and (low rank) the zero-initialised `cov_factor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuideBlock {
    site_lens: Vec<usize>,
    rank: usize,
}

impl GuideBlock {
    /// Site values per member (`Σ` site sizes).
    pub fn model_size(&self) -> usize {
        self.site_lens.iter().sum()
    }

    /// One member's guide parameters from a model block `loc` (site values in order, positive
    /// sites as logarithms) and the initial guide scale (numpyro's `init_scale`).
    ///
    /// # Errors
    /// [`EnsembleError::InitShape`] (member 0) if `loc` is not one model block.
    pub fn member<T: Element>(&self, loc: &[T], init_scale: f64) -> Result<Vec<T>, EnsembleError> {
        if loc.len() != self.model_size() {
            return Err(EnsembleError::InitShape {
                member: 0,
                len: loc.len(),
                expected: self.model_size(),
            });
        }
        let rho = T::from_f64(inverse_softplus(init_scale));
        let mut block = Vec::with_capacity((2 + self.rank) * loc.len());
        let mut offset = 0;
        for &len in &self.site_lens {
            block.extend_from_slice(&loc[offset..offset + len]);
            block.extend(std::iter::repeat_n(rho, len));
            block.extend(std::iter::repeat_n(T::ZERO, self.rank * len));
            offset += len;
        }
        Ok(block)
    }
}

/// How the KL term of the ELBO is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KlEstimator {
    /// `(1/S) Σₛ [log q(θₛ) − log p(θₛ)]` on the guide's own draws (numpyro's `Trace_ELBO`).
    MonteCarlo,
    /// The closed-form Gaussian KL (every prior must be a Normal with constant parameters).
    Analytic,
}

/// The negative tempered ELBO of a Gaussian guide over a model.
///
/// The mean-field guide is `θₖ = locₖ + softplus(ρₖ)·εₖ` for every latent site `k` of each
/// member (numpyro's `AutoNormal`); the low-rank guide ([`Guide::LowRank`]) draws
/// `θₖ = locₖ + sₖ ⊙ (εₖ + Vₖ·z)`, one `z ~ N(0, I_rank)` per member and draw shared by all
/// sites. The ELBO is a [`LogJoint`], so
/// [`ensemble_step`](crate::ensemble_step) trains it like any log-joint.
///
/// As a log-joint the ELBO reports, per member, `ℓ = (1/S) Σₛ log p(y | θₛ)` (the expected
/// log-likelihood over `S` particles) and `π = −KL(q ‖ p)` — estimated by
/// `(1/S) Σₛ [log p(θₛ) − log q(θₛ)]` ([`KlEstimator::MonteCarlo`], numpyro's `Trace_ELBO`) or in
/// closed form for Normal priors ([`KlEstimator::Analytic`]). A step with `prior_weight = β`
/// and `scale = N/|B|` therefore minimises `−(N/|B|)·E[log p(y|θ)] + β·KL`, the tempered ELBO.
///
/// With a low-rank guide the Monte-Carlo KL takes `log q` in expectation — the guide's exact
/// entropy `H(q) = ½·D·(1 + ln 2π) + Σ ln s + ½ ln det(I + Σₖ Vₖᵀ·Vₖ)` (the matrix
/// determinant lemma, `Vₖ` as `[len, rank]`) — instead of at each draw: the same expectation,
/// one `rank × rank` log-determinant per member instead of a solve per draw. The analytic KL is
/// the closed form against the Normal priors, as for the mean-field guide.
pub struct GuideElbo<T, M> {
    model: M,
    sites: Vec<Site<T>>,
    layout: ParamLayout,
    guide: GuideIds,
    family: Guide,
    /// `I_rank`, row-major (empty for mean-field).
    identity: Vec<T>,
    particles: usize,
    kl: KlEstimator,
    seed: u64,
    first_member: usize,
    scratch: Scratch<T>,
}

/// What an evaluation reuses and a fresh copy starts without: the members' noise streams, the
/// drawn noise and the tape.
#[derive(Debug)]
struct Scratch<T> {
    /// Member `e`'s noise stream at index `e` of the ensemble (made on first use), so a stream
    /// follows its member whichever block or call evaluates it.
    rngs: Vec<Option<MemberRng>>,
    /// Draws taken from member `e`'s stream since `(seed, e)` (each evaluation takes one).
    draws: Vec<u64>,
    /// Where member `e`'s stream starts when it is made: `(seed, e)` advanced by this many
    /// draws ([`GuideElbo::resume_noise`]; empty: at its start).
    start_draws: Vec<u64>,
    noise: Vec<T>,
    member_noise: Vec<T>,
    /// Where each site's noise starts in a particle's block.
    offsets: Vec<usize>,
    fixed_noise: bool,
    tape: Tape<T>,
}

impl<T: Element> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            rngs: Vec::new(),
            draws: Vec::new(),
            start_draws: Vec::new(),
            noise: Vec::new(),
            member_noise: Vec::new(),
            offsets: Vec::new(),
            fixed_noise: false,
            tape: Tape::new(),
        }
    }
}

impl<T, M> core::fmt::Debug for GuideElbo<T, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuideElbo")
            .field("layout", &self.layout)
            .field("guide", &self.family)
            .field("particles", &self.particles)
            .field("kl", &self.kl)
            .finish_non_exhaustive()
    }
}

/// `softplus⁻¹(s) = ln(eˢ − 1)`: the `ρ` of a guide scale `s`.
pub fn inverse_softplus(s: f64) -> f64 {
    s + (-(-s).exp_m1()).ln()
}

impl<T: Element, M: Model<T>> GuideElbo<T, M> {
    /// A mean-field guide over `model`'s latent sites (found by running it once on `example`),
    /// with `particles` draws per member and step; member `e`'s noise comes from the stream
    /// `(seed, e)`.
    ///
    /// # Errors
    /// [`EnsembleError::InvalidArgument`] for zero particles; the model's errors.
    pub fn new(
        model: M,
        example: Batch<'_, T>,
        particles: usize,
        kl: KlEstimator,
        seed: u64,
    ) -> Result<Self, EnsembleError> {
        Self::with_guide(model, example, Guide::MeanField, particles, kl, seed)
    }

    /// As [`GuideElbo::new`], with the guide family `guide`.
    ///
    /// # Errors
    /// [`EnsembleError::InvalidArgument`] for zero particles or a zero rank; the model's errors.
    pub fn with_guide(
        model: M,
        example: Batch<'_, T>,
        guide_family: Guide,
        particles: usize,
        kl: KlEstimator,
        seed: u64,
    ) -> Result<Self, EnsembleError> {
        if guide_family == (Guide::LowRank { rank: 0 }) {
            return Err(EnsembleError::InvalidArgument {
                name: "rank",
                value: 0.0,
                expected: "a low-rank guide of rank at least 1",
            });
        }
        if particles == 0 {
            return Err(EnsembleError::InvalidArgument {
                name: "num_particles",
                value: 0.0,
                expected: "at least one particle",
            });
        }
        let discovered = ModelLogJoint::new(model, example)?;
        let ModelLogJoint { model, sites, .. } = discovered;
        let (layout, guide) =
            guide_family.layout(sites.iter().map(|site| (site.name.as_str(), site.shape)))?;
        let rank = guide_family.rank();
        if kl == KlEstimator::Analytic {
            for site in &sites {
                analytic_prior(site)?;
            }
        }
        Ok(GuideElbo {
            model,
            sites,
            layout,
            guide,
            family: guide_family,
            identity: (0..rank * rank)
                .map(|i| if i % (rank + 1) == 0 { T::ONE } else { T::ZERO })
                .collect(),
            particles,
            kl,
            seed,
            first_member: 0,
            scratch: Scratch::default(),
        })
    }

    /// A copy with the same model, sites and settings, and fresh scratch (noise streams restart
    /// at the next evaluation): one per block of members when an ensemble is split over threads.
    pub fn clone_fresh(&self) -> Self
    where
        M: Clone,
    {
        GuideElbo {
            model: self.model.clone(),
            sites: self.sites.clone(),
            layout: self.layout.clone(),
            guide: self.guide.clone(),
            family: self.family,
            identity: self.identity.clone(),
            particles: self.particles,
            kl: self.kl,
            seed: self.seed,
            first_member: 0,
            scratch: Scratch::default(),
        }
    }

    /// Restarts every member's noise stream from `seed` (member `e` draws from `(seed, e)`).
    pub fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.scratch.rngs.clear();
        self.scratch.draws.clear();
        self.scratch.start_draws.clear();
    }

    /// Draws taken so far from each member's noise stream, by ensemble member index (one per
    /// evaluation of the member; 0 for members this copy has not evaluated — with the members
    /// split over threads, each copy counts its own block's).
    pub fn noise_draws(&self) -> &[u64] {
        &self.scratch.draws
    }

    /// Restarts the noise streams from `seed` with member `e`'s advanced past its first
    /// `draws[e]` draws — where a run that had taken them left it (see [`GuideElbo::noise_draws`]);
    /// members beyond `draws` start at the beginning.
    pub fn resume_noise(&mut self, seed: u64, draws: &[u64]) {
        self.reseed(seed);
        self.scratch.start_draws = draws.to_vec();
    }

    /// The latent sites.
    pub fn sites(&self) -> &[Site<T>] {
        &self.sites
    }

    /// The guide's leaves.
    pub fn guide_ids(&self) -> &GuideIds {
        &self.guide
    }

    /// The guide family.
    pub fn guide(&self) -> Guide {
        self.family
    }

    /// Parameters per member of the model (`Σ` site sizes; the guide has `2 + rank` times as
    /// many).
    pub fn model_size(&self) -> usize {
        self.sites.iter().map(|s| s.shape.elems()).sum()
    }

    /// The layout of one member's guide block, for building initial blocks.
    pub fn guide_block(&self) -> GuideBlock {
        GuideBlock {
            site_lens: self.sites.iter().map(|s| s.shape.elems()).collect(),
            rank: self.family.rank(),
        }
    }

    /// One member's variational block from a model block `loc` (site values in order, positive
    /// sites as logarithms, as [`ModelLogJoint`] stores them) and the initial guide scale
    /// (numpyro's `init_scale`, 0.1 by default); a low-rank factor starts at zero.
    ///
    /// # Errors
    /// [`EnsembleError::InitShape`] (member 0) if `loc` is not one model block.
    pub fn init_member(&self, loc: &[T], init_scale: f64) -> Result<Vec<T>, EnsembleError> {
        self.guide_block().member(loc, init_scale)
    }

    /// Uses fixed noise instead of fresh draws (for reproducing a reference): `noise` holds,
    /// for each particle `s`: for each site in order, each member `e`: that site's `ε`
    /// (row-major in the site's shape) — `[site][E][len]` — and then, with a low-rank guide,
    /// each member's `z` — `[E][rank]`; `E·(D + rank)` values per particle. `None` returns to
    /// fresh draws.
    pub fn set_noise(&mut self, noise: Option<Vec<T>>) {
        self.scratch.fixed_noise = noise.is_some();
        self.scratch.noise = noise.unwrap_or_default();
    }

    /// Draws this step's noise: member `e` from its own stream, particle by particle, site by
    /// site.
    fn draw_noise(&mut self, members: usize) {
        let (first, seed) = (self.first_member, self.seed ^ 0x006e_6f69_7365);
        if self.scratch.rngs.len() < first + members {
            self.scratch.rngs.resize_with(first + members, || None);
            self.scratch.draws.resize(first + members, 0);
        }
        let Scratch {
            rngs,
            draws,
            start_draws,
            ..
        } = &mut self.scratch;
        for (e, rng) in rngs[first..first + members].iter_mut().enumerate() {
            rng.get_or_insert_with(|| {
                let start = start_draws.get(first + e).copied().unwrap_or(0);
                draws[first + e] = start;
                let mut stream = member_rng(seed, first + e);
                stream.advance(u128::from(start));
                stream
            });
        }
        let p = self.model_size();
        let rank = self.family.rank();
        let per_member = p + rank;
        self.scratch
            .noise
            .resize(self.particles * members * per_member, T::ZERO);
        self.scratch
            .member_noise
            .resize(self.particles * per_member, T::ZERO);
        if per_member == 0 {
            return;
        }
        let rngs = self.scratch.rngs[first..first + members]
            .iter_mut()
            .map(|rng| rng.as_mut().expect("made above"));
        for (e, rng) in rngs.enumerate() {
            // Member e's draws in one pass, then into the `[S][site][E][len]` layout.
            fill_standard_normal(rng, &mut self.scratch.member_noise);
            self.scratch.draws[first + e] += 1;
            let mut drawn = self.scratch.member_noise.chunks_exact(per_member);
            for s in 0..self.particles {
                let particle = drawn.next().expect("one chunk per particle");
                let (mut offset, mut read) = (s * members * per_member, 0);
                for site in &self.sites {
                    let len = site.shape.elems();
                    let start = offset + e * len;
                    self.scratch.noise[start..start + len]
                        .copy_from_slice(&particle[read..read + len]);
                    offset += members * len;
                    read += len;
                }
                let start = offset + e * rank;
                self.scratch.noise[start..start + rank].copy_from_slice(&particle[read..]);
            }
        }
    }
}

/// The constant `(μ, σ)` of a Normal prior on the real line, as the analytic KL needs.
fn analytic_prior<T: Element>(site: &Site<T>) -> Result<(f64, f64), AutogradError> {
    match site.prior {
        Distribution::Normal {
            loc: Arg::Const(mu),
            scale: Arg::Const(sigma),
        } => Ok((mu.to_f64(), sigma.to_f64())),
        _ => Err(AutogradError::Site {
            name: site.name.clone(),
            problem: "the analytic KL needs a Normal prior with constant parameters",
        }),
    }
}

/// `KL(N(loc, s) ‖ N(μ, σ))` summed over a site (`s = softplus(ρ)`): `Σ ln σ − ln s + (s² + (loc − μ)²)/(2σ²) − ½`.
fn site_kl<T: Element>(
    g: &mut Graph<'_, T>,
    loc: Var,
    s: Var,
    (mu, sigma): (f64, f64),
) -> Result<Var, AutogradError> {
    let n = g.shape(loc).elems() as f64;
    let ln_s = g.log(s);
    let s2 = g.square(s);
    let d = g.offset(loc, -mu);
    let d2 = g.square(d);
    let t = g.add(s2, d2)?;
    let t = g.scale(t, 0.5 / (sigma * sigma));
    let u = g.sub(t, ln_s)?;
    let total = g.sum(u);
    Ok(g.offset(total, n * (sigma.ln() - 0.5)))
}

/// `ln det(I + Σₖ Vₖᵀ·Vₖ)` per member (each `cov_factorₖ` stored as `Vₖᵀ`, `[rank, len]`): the
/// capacitance of the low-rank covariance `diag(s)·(V·Vᵀ + I)·diag(s)`, whose log-determinant
/// is `2 Σ ln s` plus this (matrix determinant lemma).
fn log_det_capacitance<T: Element>(
    g: &mut Graph<'_, T>,
    guide: &GuideIds,
    rank: usize,
    identity: &[T],
) -> Result<Var, AutogradError> {
    let mut sum = None;
    for &factor in &guide.cov_factor {
        let factor = g.param(factor)?;
        let vvt = g.matmul_transposed(factor, factor)?;
        accumulate(g, &mut sum, vvt)?;
    }
    let eye = g.input(identity, [rank, rank])?;
    let capacitance = match sum {
        Some(s) => g.add(s, eye)?,
        None => eye,
    };
    g.log_det_spd(capacitance)
}

/// The entropy `½·D·(1 + ln 2π) + Σ ln s + ½ ln det C` of the low-rank guide, `C` the capacitance
/// with log-determinant `log_det`, `Σ ln s` given (`sum_log_scale`).
fn low_rank_entropy<T: Element>(
    g: &mut Graph<'_, T>,
    model_size: usize,
    log_det: Var,
    sum_log_scale: Var,
) -> Result<Var, AutogradError> {
    let half = g.scale(log_det, 0.5);
    let total = g.add(half, sum_log_scale)?;
    let d = model_size as f64;
    Ok(g.offset(total, 0.5 * d * (1.0 + (2.0 * core::f64::consts::PI).ln())))
}

impl<T: Element, M: Model<T>> LogJoint<T> for GuideElbo<T, M> {
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Member `e` of the next evaluation is the ensemble's member `first + e`: its noise comes
    /// from the stream `(seed, first + e)`.
    fn set_first_member(&mut self, first: usize) {
        self.first_member = first;
    }

    /// Each member's draws so far: a member this copy has evaluated since its streams were last
    /// (re)started counts its draws; any other is where [`LogJoint::seek_streams`] put it (0 if
    /// nowhere).
    fn stream_positions(&self, positions: &mut Vec<u64>) -> bool {
        let Scratch {
            rngs,
            draws,
            start_draws,
            ..
        } = &self.scratch;
        positions.clear();
        positions.extend(
            (0..draws.len().max(start_draws.len())).map(|e| match rngs.get(e) {
                Some(Some(_)) => draws[e],
                _ => start_draws.get(e).copied().unwrap_or(0),
            }),
        );
        true
    }

    /// Restarts the streams from the current seed, advanced to `positions`
    /// ([`GuideElbo::resume_noise`]).
    fn seek_streams(&mut self, positions: &[u64]) {
        self.resume_noise(self.seed, positions);
    }

    fn workspace_per_member(&self, rows: usize) -> Option<usize> {
        self.scratch.tape.workspace_per_member(rows)
    }

    fn evaluate(
        &mut self,
        members: usize,
        params: &[T],
        batch: Batch<'_, T>,
        weights: Weights<T>,
        out: LogJointOutput<'_, T>,
    ) -> Result<(), AutogradError> {
        let p = self.model_size();
        let rank = self.family.rank();
        let per_particle = members * (p + rank);
        if self.scratch.fixed_noise {
            let expected = self.particles * per_particle;
            if self.scratch.noise.len() != expected {
                return Err(AutogradError::BufferLength {
                    what: "fixed guide noise",
                    len: self.scratch.noise.len(),
                    expected,
                });
            }
        } else {
            self.draw_noise(members);
        }
        let offsets = &mut self.scratch.offsets;
        offsets.clear();
        let mut offset = 0;
        for site in &self.sites {
            offsets.push(offset);
            offset += members * site.shape.elems();
        }
        let GuideElbo {
            model,
            sites,
            layout,
            guide,
            identity,
            particles,
            kl,
            scratch:
                Scratch {
                    noise,
                    tape,
                    offsets,
                    ..
                },
            ..
        } = self;
        let mut g = tape.graph_over(members, params, layout)?;
        let (x, y) = batch_inputs(&mut g, &batch)?;
        let (mut ll_sum, mut log_ratio_sum, mut sum_log_scale) = (None, None, None);
        for s in 0..*particles {
            let block = &noise[s * per_particle..(s + 1) * per_particle];
            let z = if rank > 0 {
                Some(g.input_per_member(&block[members * p..], [1, rank])?)
            } else {
                None
            };
            let mut ctx = ModelContext {
                graph: &mut g,
                mode: Mode::Guide {
                    sites,
                    guide,
                    noise: block,
                    offsets,
                    z,
                },
                next_site: 0,
                loglik: None,
                logprior: None,
                logq: None,
                sum_log_scale: None,
            };
            model.run(&mut ctx, x, y)?;
            let (ll, lp, lq) = (ctx.loglik, ctx.logprior, ctx.logq);
            // The entropy's Σ ln s, from the first draw's scales (the same in every draw).
            sum_log_scale = sum_log_scale.or(ctx.sum_log_scale);
            if let Some(ll) = ll {
                accumulate(&mut g, &mut ll_sum, ll)?;
            }
            match (lp, lq) {
                (Some(lp), Some(lq)) => {
                    let ratio = g.sub(lp, lq)?;
                    accumulate(&mut g, &mut log_ratio_sum, ratio)?;
                }
                // A low-rank guide's log q enters once, as its entropy, below.
                (Some(lp), None) if rank > 0 => accumulate(&mut g, &mut log_ratio_sum, lp)?,
                _ => {}
            }
        }
        let zero = |g: &mut Graph<'_, T>| g.input(&[T::ZERO], Shape::SCALAR);
        let inv = 1.0 / *particles as f64;
        let ll = match ll_sum {
            Some(v) => g.scale(v, inv),
            None => zero(&mut g)?,
        };
        let capacitance = if rank > 0 && !sites.is_empty() {
            Some(log_det_capacitance(&mut g, guide, rank, identity)?)
        } else {
            None
        };
        let minus_kl = match kl {
            KlEstimator::MonteCarlo => {
                let mean = match log_ratio_sum {
                    Some(v) => g.scale(v, inv),
                    None => zero(&mut g)?,
                };
                match (capacitance, sum_log_scale) {
                    (Some(log_det), Some(sum_log)) => {
                        let entropy = low_rank_entropy(&mut g, p, log_det, sum_log)?;
                        g.add(mean, entropy)?
                    }
                    _ => mean,
                }
            }
            KlEstimator::Analytic => {
                let mut total = None;
                for (k, site) in sites.iter().enumerate() {
                    let prior = analytic_prior(site)?;
                    debug_assert_eq!(site.prior.support(), Support::Real);
                    let loc = g.param(guide.loc[k])?;
                    let rho = g.param(guide.rho[k])?;
                    let scale = g.softplus(rho);
                    let mut term = site_kl(&mut g, loc, scale, prior)?;
                    if rank > 0 {
                        // tr(Σₚ⁻¹·W·Wᵀ)/2 over the site, W = diag(s)·V: Σ (s ⊙ Vᵀ)² / (2σ²).
                        let factor = g.param(guide.cov_factor[k])?;
                        let len = g.shape(scale).elems();
                        let scale = g.reshape(scale, [len])?;
                        let w = g.mul(factor, scale)?;
                        let w2 = g.sum_squares(w);
                        let w2 = g.scale(w2, 0.5 / (prior.1 * prior.1));
                        term = g.add(term, w2)?;
                    }
                    accumulate(&mut g, &mut total, term)?;
                }
                if let Some(log_det) = capacitance {
                    // −½ ln det(I + Σ VₖᵀVₖ) of ln det Σ_q.
                    let half = g.scale(log_det, -0.5);
                    accumulate(&mut g, &mut total, half)?;
                }
                match total {
                    Some(v) => g.neg(v),
                    None => zero(&mut g)?,
                }
            }
        };
        finish_evaluation(&mut g, ll, minus_kl, weights, out)
    }
}
