//! Layer 2: `EnsembleVI` — an ensemble of Gaussian guides (mean-field, or low-rank plus
//! diagonal), each fitted by maximising a tempered ELBO, with the same `init` / `update` / `run`
//! as [`EnsembleMAP`].

use std::path::Path;

use flock_autograd::{AutogradError, Batch, Graph, LogJoint, Parameters, Tape, Var};
/// The guide family and KL estimator of a [`ViConfig`] (from `flock_ensemble::model`).
pub use flock_ensemble::model::{Guide, KlEstimator};
use flock_ensemble::model::{GuideElbo, Model, Support};
use flock_ensemble::{
    EnsembleError, EnsembleState, MemberRng, ParallelLogJoint, Predictions, fill_standard_normal,
    member_rng,
};
use flock_kernels::Element;
use flock_optim::{Adam, AdamConfig, GradientTransformation, adam};

use crate::checkpoint::{Checkpoint, CheckpointError, save_state_with};
use crate::map::{EnsembleMAP, EnsembleResult, RunError, RunOptions, split_seed};

/// The checkpoint metadata entry holding each member's noise-stream position.
const NOISE_DRAWS: &str = "vi_noise_draws";

/// The guides' noise seed of a run seeded `seed`.
fn noise_seed(seed: u64) -> u64 {
    seed.wrapping_mul(0xd134_2543_de82_ef95).wrapping_add(7)
}

/// The configuration of an [`EnsembleVI`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViConfig {
    /// Members (independent guides).
    pub ensemble_size: usize,
    /// `β` of the tempered ELBO `E[log p(y|θ)] − β·KL(q ‖ p)`.
    pub kl_weight: f64,
    /// Monte-Carlo particles per member and step.
    pub num_particles: usize,
    /// How the KL term is computed.
    pub kl: KlEstimator,
    /// The guide's initial scale `softplus(ρ)` (numpyro's `init_scale`).
    pub init_scale: f64,
    /// The guide family: mean-field (numpyro's `AutoNormal`) or low-rank plus diagonal
    /// (`AutoLowRankMultivariateNormal`, its factor starting at zero).
    pub guide: Guide,
    /// Threads to split members over (blocks of at least 4 members); the results are the same
    /// bits for any value.
    pub threads: usize,
}

impl Default for ViConfig {
    /// 16 members, `β = 1`, one particle, Monte-Carlo KL, initial scale 0.1, mean-field, one
    /// thread.
    fn default() -> Self {
        ViConfig {
            ensemble_size: 16,
            kl_weight: 1.0,
            num_particles: 1,
            kl: KlEstimator::MonteCarlo,
            init_scale: 0.1,
            guide: Guide::MeanField,
            threads: 1,
        }
    }
}

type BoxedInit<T> = Box<dyn FnMut(&mut MemberRng) -> Vec<T>>;

/// An ensemble of VI fits (pyrox's `EnsembleVI`) over a model written with flock's model
/// language. The state's parameters are the guides' `{site}.loc` and `{site}.rho` (and with a
/// low-rank guide `{site}.cov_factor`, the factor relative to the scales as `[rank, len]`).
///
/// ```
/// use flock_autograd::{AutogradError, Batch, Var};
/// use flock_ensemble::model::{ModelContext, normal};
/// use flock_runner::map::RunOptions;
/// use flock_runner::vi::{EnsembleVI, ViConfig};
/// use flock_optim::{AdamConfig, adam};
///
/// // y ~ N(w·x, 0.1) with w ~ N(0, 1)
/// fn model(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
///     let w = m.sample("w", normal(0.0, 1.0), [1, 1])?;
///     let f = m.graph().matmul(x, w)?;
///     let f = m.graph().squeeze_last(f)?;
///     m.observe("y", normal(f, 0.1), y)
/// }
/// let x: Vec<f64> = (0..20).map(|i| i as f64 / 10.0 - 1.0).collect();
/// let y: Vec<f64> = x.iter().map(|v| 0.7 * v).collect();
/// let data = Batch::new(&x, &y, 20)?;
/// let config = ViConfig { ensemble_size: 2, ..ViConfig::default() };
/// let mut vi = EnsembleVI::new(model, data, |_rng: &mut flock_ensemble::MemberRng| vec![0.0],
///                              adam(5e-2, AdamConfig::default())?, config)?;
/// let result = vi.run(0, 500, data, RunOptions::default())?;
/// let w_loc = result.params.member(0)[0];
/// assert!((w_loc - 0.7).abs() < 0.05, "{w_loc}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EnsembleVI<T, M, O> {
    map: EnsembleMAP<T, ParallelLogJoint<GuideElbo<T, M>>, BoxedInit<T>, O>,
    site_shapes: Vec<(usize, bool)>,
}

impl<T, M, O> core::fmt::Debug for EnsembleVI<T, M, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EnsembleVI")
            .field("sites", &self.site_shapes.len())
            .finish_non_exhaustive()
    }
}

impl<T, M, O> EnsembleVI<T, M, O>
where
    T: Element,
    M: Model<T> + Clone + Send,
    O: GradientTransformation<T>,
{
    /// An ensemble of guides over `model` (its sites found by running it on `example`);
    /// `loc_init(rng)` gives one member's initial site values (a model block, positive sites as
    /// logarithms), and every guide scale starts at `config.init_scale`.
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for a bad configuration or model.
    pub fn new(
        model: M,
        example: Batch<'_, T>,
        mut loc_init: impl FnMut(&mut MemberRng) -> Vec<T> + 'static,
        optimizer: O,
        config: ViConfig,
    ) -> Result<Self, RunError<T>> {
        if !(config.init_scale.is_finite() && config.init_scale > 0.0) {
            return Err(EnsembleError::InvalidArgument {
                name: "init_scale",
                value: config.init_scale,
                expected: "a positive scale",
            }
            .into());
        }
        if config.threads == 0 {
            return Err(EnsembleError::InvalidArgument {
                name: "threads",
                value: 0.0,
                expected: "at least one thread",
            }
            .into());
        }
        let elbo = GuideElbo::with_guide(
            model,
            example,
            config.guide,
            config.num_particles,
            config.kl,
            0,
        )?;
        let site_shapes: Vec<(usize, bool)> = elbo
            .sites()
            .iter()
            .map(|s| (s.shape.elems(), s.prior.support() == Support::Positive))
            .collect();
        let guide_block = elbo.guide_block();
        let init_scale = config.init_scale;
        let init: BoxedInit<T> = Box::new(move |rng| {
            let loc = loc_init(rng);
            // A wrong length is returned as is: the runner's init check reports it.
            guide_block.member(&loc, init_scale).unwrap_or(loc)
        });
        // One ELBO per block of members; each draws its members' noise from their own streams.
        let mut parts = Vec::with_capacity(config.threads);
        for _ in 1..config.threads {
            parts.push(elbo.clone_fresh());
        }
        parts.insert(0, elbo);
        let map = EnsembleMAP::new(
            ParallelLogJoint::new(parts),
            init,
            optimizer,
            config.ensemble_size,
            config.kl_weight,
        )?;
        Ok(EnsembleVI { map, site_shapes })
    }

    /// Fresh guides and optimizer state.
    ///
    /// # Errors
    /// As [`EnsembleMAP::init`].
    pub fn init(&mut self, seed: u64) -> Result<EnsembleState<T, O::State>, RunError<T>> {
        self.map.init(seed)
    }

    /// One ELBO step on `batch` (`scale = N/|B|`); returns the per-member negative ELBOs.
    ///
    /// # Errors
    /// As [`EnsembleMAP::update`].
    pub fn update<'s>(
        &mut self,
        state: &'s mut EnsembleState<T, O::State>,
        batch: Batch<'_, T>,
        scale: f64,
    ) -> Result<&'s [T], RunError<T>> {
        self.map.update(state, batch, scale)
    }

    /// Trains fresh guides for `num_epochs` steps; the seed drives init, batches and the guide's
    /// noise. Can be called any number of times. [`EnsembleVI::start`] then
    /// [`EnsembleVI::train`] with the same seed.
    ///
    /// # Errors
    /// As [`EnsembleMAP::run`].
    pub fn run(
        &mut self,
        seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        let mut state = self.start(seed)?;
        self.train(&mut state, seed, num_epochs, data, options)
    }

    /// [`EnsembleVI::run`]'s first half: fresh guides from `seed`, and the guides' noise streams
    /// restarted from it.
    ///
    /// # Errors
    /// As [`EnsembleMAP::init`].
    pub fn start(&mut self, seed: u64) -> Result<EnsembleState<T, O::State>, RunError<T>> {
        for elbo in self.map.log_joint_mut().parts_mut() {
            elbo.reseed(noise_seed(seed));
        }
        self.map.init(split_seed(seed).0)
    }

    /// [`EnsembleVI::run`]'s second half on a state it updates in place: `num_epochs` steps
    /// (counted from `options.start_step`) with the batches of `seed`, the guides' noise
    /// continuing where the last step left it. A run saved with [`EnsembleVI::save_state`] and
    /// continued after [`EnsembleVI::restore_state`] gives the bits of an uninterrupted one.
    ///
    /// # Errors
    /// As [`EnsembleMAP::train`].
    pub fn train(
        &mut self,
        state: &mut EnsembleState<T, O::State>,
        seed: u64,
        num_epochs: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        self.map
            .train(state, split_seed(seed).1, num_epochs, data, options)
    }

    /// Draws taken so far from each member's noise stream (one per evaluation of the member).
    pub fn noise_draws(&self) -> Vec<u64> {
        let mut draws = vec![0; self.map.ensemble_size()];
        for elbo in self.map.log_joint().parts() {
            for (total, &d) in draws.iter_mut().zip(elbo.noise_draws()) {
                *total = (*total).max(d);
            }
        }
        draws
    }

    /// Saves `state` after `step` steps, with where each member's noise stream stands, to
    /// `path` (a training-state checkpoint, [`save_state`](crate::checkpoint::save_state)).
    ///
    /// # Errors
    /// [`CheckpointError::Io`].
    pub fn save_state(
        &self,
        path: &Path,
        state: &EnsembleState<T, O::State>,
        step: usize,
    ) -> Result<(), CheckpointError> {
        self.save_state_with(path, state, step, &[])
    }

    /// [`EnsembleVI::save_state`] with extra named tensors (`(name, values, shape)`), as
    /// [`save_state_with`] writes them.
    ///
    /// # Errors
    /// [`CheckpointError::Io`].
    pub fn save_state_with(
        &self,
        path: &Path,
        state: &EnsembleState<T, O::State>,
        step: usize,
        extra: &[(&str, &[T], &[usize])],
    ) -> Result<(), CheckpointError> {
        let draws: Vec<String> = self.noise_draws().iter().map(u64::to_string).collect();
        save_state_with(path, state, step, &[(NOISE_DRAWS, &draws.join(","))], extra)
    }

    /// Reads a state saved by [`EnsembleVI::save_state`] and sets every member's noise stream —
    /// `seed`'s, as [`EnsembleVI::start`] with the same seed made it — to where the saved run
    /// had taken it; returns the state and the step to continue from
    /// ([`RunOptions::start_step`]).
    ///
    /// ```
    /// use flock_autograd::{AutogradError, Batch, Var};
    /// use flock_ensemble::model::{ModelContext, normal};
    /// use flock_optim::{AdamConfig, adam};
    /// use flock_runner::map::RunOptions;
    /// use flock_runner::vi::{EnsembleVI, Guide, ViConfig};
    ///
    /// fn model(m: &mut ModelContext<'_, '_, f64>, x: Var, y: Var) -> Result<(), AutogradError> {
    ///     let w = m.sample("w", normal(0.0, 1.0), [1, 1])?;
    ///     let f = m.graph().matmul(x, w)?;
    ///     let f = m.graph().squeeze_last(f)?;
    ///     m.observe("y", normal(f, 0.1), y)
    /// }
    /// let (x, y) = (vec![0.0, 0.5, 1.0, 1.5], vec![0.1, 0.3, 0.6, 0.8]);
    /// let data = Batch::new(&x, &y, 4)?;
    /// let config = ViConfig { ensemble_size: 2, guide: Guide::LowRank { rank: 1 }, ..ViConfig::default() };
    /// let mut vi = EnsembleVI::new(model, data, |_: &mut flock_ensemble::MemberRng| vec![0.0],
    ///                              adam(1e-2, AdamConfig::default())?, config)?;
    /// let straight = vi.run(3, 40, data, RunOptions::default())?;
    ///
    /// // The same run, stopped after 15 steps and continued from the checkpoint.
    /// let path = std::env::temp_dir().join(format!("flock-doc-vi-{}.safetensors", std::process::id()));
    /// let mut state = vi.start(3)?;
    /// let first = vi.train(&mut state, 3, 15, data, RunOptions::default())?;
    /// vi.save_state(&path, &state, first.steps)?;
    /// let (mut restored, step) = vi.restore_state(&path, 3)?;
    /// let options = RunOptions { start_step: step, ..RunOptions::default() };
    /// let rest = vi.train(&mut restored, 3, 40, data, options)?;
    /// assert_eq!(rest.params.values(), straight.params.values());
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`CheckpointError`] for an unreadable file, another model or optimizer, or a checkpoint
    /// without the noise streams' positions.
    pub fn restore_state(
        &mut self,
        path: &Path,
        seed: u64,
    ) -> Result<(EnsembleState<T, O::State>, usize), CheckpointError> {
        self.restore_from(&Checkpoint::read(path)?, seed)
    }

    /// [`EnsembleVI::restore_state`] from a checkpoint already read.
    ///
    /// # Errors
    /// As [`EnsembleVI::restore_state`].
    pub fn restore_from(
        &mut self,
        checkpoint: &Checkpoint,
        seed: u64,
    ) -> Result<(EnsembleState<T, O::State>, usize), CheckpointError> {
        let members = self.map.ensemble_size();
        let draws: Vec<u64> = checkpoint
            .metadata(NOISE_DRAWS)
            .ok_or_else(|| CheckpointError::Mismatch {
                reason: format!("no {NOISE_DRAWS:?} entry: not saved by EnsembleVI::save_state"),
            })?
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| CheckpointError::Corrupt {
                reason: format!("{NOISE_DRAWS:?}: {e}"),
            })?;
        if draws.len() != members {
            return Err(CheckpointError::Mismatch {
                reason: format!(
                    "{NOISE_DRAWS:?} has {} members, this ensemble {members}",
                    draws.len()
                ),
            });
        }
        let layout = self.map.log_joint().layout().clone();
        let restored = checkpoint.training_state(self.map.optimizer(), &layout, members)?;
        for elbo in self.map.log_joint_mut().parts_mut() {
            elbo.resume_noise(noise_seed(seed), &draws);
        }
        Ok(restored)
    }

    /// Network outputs under `samples` draws from each member's guide: `network(graph, x,
    /// site values)` → `[N]` per draw, collected as `[E·S, N]` (member-major: row `e·S + s`),
    /// the noise-free outputs the metrics score.
    ///
    /// # Errors
    /// [`EnsembleError`]s for bad inputs; errors of `network`.
    pub fn predict<F>(
        &self,
        params: &Parameters<T>,
        mut network: F,
        x_new: &[T],
        points: usize,
        samples: usize,
        seed: u64,
    ) -> Result<Predictions<T>, RunError<T>>
    where
        F: for<'g> FnMut(&mut Graph<'g, T>, Var, &[Var]) -> Result<Var, AutogradError>,
    {
        if points == 0 || !x_new.len().is_multiple_of(points) || samples == 0 {
            return Err(EnsembleError::BatchShape {
                what: "x",
                len: x_new.len(),
                rows: points,
            }
            .into());
        }
        let members = params.members();
        let mut rngs: Vec<MemberRng> = (0..members).map(|e| member_rng(seed, e)).collect();
        let mut out = vec![T::ZERO; members * samples * points];
        let mut tape = Tape::new();
        let mut noise = Vec::new();
        let mut row = vec![T::ZERO; members * points];
        for s in 0..samples {
            let mut g = tape.graph(params);
            let x = g
                .input(x_new, [points, x_new.len() / points])
                .map_err(EnsembleError::from)?;
            let elbo = &self.map.log_joint().parts()[0];
            let guide = elbo.guide_ids();
            let rank = elbo.guide().rank();
            // A low-rank guide's z (one per member and draw) comes first from each member's
            // stream, then the sites' ε.
            let z = if rank > 0 {
                noise.resize(rngs.len() * rank, T::ZERO);
                for (rng, block) in rngs.iter_mut().zip(noise.chunks_exact_mut(rank)) {
                    fill_standard_normal(rng, block);
                }
                Some(g.input_per_member(&noise, [1, rank])?)
            } else {
                None
            };
            let mut values = Vec::with_capacity(self.site_shapes.len());
            for (k, &(len, positive)) in self.site_shapes.iter().enumerate() {
                let shape = elbo.sites()[k].shape;
                let loc = g.param(guide.loc[k])?;
                let rho = g.param(guide.rho[k])?;
                noise.resize(rngs.len() * len, T::ZERO);
                for (rng, block) in rngs.iter_mut().zip(noise.chunks_exact_mut(len.max(1))) {
                    fill_standard_normal(rng, block);
                }
                let eps = g.input_per_member(&noise, shape)?;
                let scale = g.softplus(rho);
                let eps = match z {
                    // s ⊙ (ε + Vₖ·z)
                    Some(z) => {
                        let factor = g.param(guide.cov_factor[k])?;
                        let vz = g.matmul(z, factor)?;
                        let vz = g.reshape(vz, shape)?;
                        g.add(eps, vz)?
                    }
                    None => eps,
                };
                let step = g.mul(scale, eps)?;
                let raw = g.add(loc, step)?;
                values.push(if positive { g.exp(raw) } else { raw });
            }
            let f = network(&mut g, x, &values)?;
            g.copy_values(f, &mut row).map_err(EnsembleError::from)?;
            for e in 0..members {
                let dst = (e * samples + s) * points;
                out[dst..dst + points].copy_from_slice(&row[e * points..(e + 1) * points]);
            }
        }
        Ok(Predictions {
            values: out,
            members: members * samples,
            points,
            outputs: 1,
        })
    }
}

/// pyrox's `ensemble_vi`: [`EnsembleVI`] with `adam(5e-3)`, `β = 1`, one particle, full batch.
///
/// # Errors
/// As [`EnsembleVI::run`].
pub fn ensemble_vi<T, M>(
    model: M,
    loc_init: impl FnMut(&mut MemberRng) -> Vec<T> + 'static,
    data: Batch<'_, T>,
    ensemble_size: usize,
    num_epochs: usize,
    seed: u64,
) -> Result<EnsembleResult<T>, RunError<T>>
where
    T: Element,
    M: Model<T> + Clone + Send,
{
    let optimizer: Adam = adam(5e-3, AdamConfig::default())?;
    let config = ViConfig {
        ensemble_size,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..ViConfig::default()
    };
    let mut vi = EnsembleVI::new(model, data, loc_init, optimizer, config)?;
    vi.run(seed, num_epochs, data, RunOptions::default())
}
