//! Layer 2: `EnsembleVI` — an ensemble of Gaussian guides (mean-field, or low-rank plus
//! diagonal), each fitted by maximising a tempered ELBO, with the same `init` / `update` / `run`
//! as [`EnsembleMAP`].

use std::path::Path;

use flock_autograd::{AutogradError, Batch, Graph, ParamLayout, Parameters, Tape, Var};
/// The guide family and KL estimator of a [`ViConfig`] (from `flock_ensemble::model`).
pub use flock_ensemble::model::{Guide, KlEstimator};
use flock_ensemble::model::{GuideElbo, Model, Support};
use flock_ensemble::{
    EnsembleError, EnsembleState, MemberRng, ParallelLogJoint, Predictions, SeedStream, member_rng,
};
use flock_kernels::Element;
use flock_optim::{Adam, AdamConfig, GradientTransformation, adam};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::error::RunError;
use crate::map::{EnsembleMAP, EnsembleResult};
use crate::train::{RunOptions, Training};

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
/// use flock_runner::train::RunOptions;
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
    /// The sites' values, one leaf per site (what a draw from a guide is laid out as).
    sites: ParamLayout,
    /// Whether each site lives on the positive reals (its guide is over its logarithm).
    positive: Vec<bool>,
}

impl<T, M, O> core::fmt::Debug for EnsembleVI<T, M, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EnsembleVI")
            .field("sites", &self.positive.len())
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
        let mut sites = ParamLayout::new();
        for site in elbo.sites() {
            sites.add(site.name.clone(), site.shape)?;
        }
        let positive = elbo
            .sites()
            .iter()
            .map(|s| s.prior.support() == Support::Positive)
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
        Ok(EnsembleVI {
            map,
            sites,
            positive,
        })
    }

    /// Trains only guides `block` of the ensemble — one process's share of a member-sharded run
    /// ([`EnsembleMAP::with_members`]: each guide starts, draws its batches and its noise as in
    /// the whole ensemble).
    ///
    /// # Errors
    /// [`RunError::Ensemble`] for an empty block or one past the ensemble.
    pub fn with_members(mut self, block: core::ops::Range<usize>) -> Result<Self, RunError<T>> {
        self.map = self.map.with_members(block)?;
        Ok(self)
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
        let mut training = self.start(seed)?;
        self.train(&mut training, seed, num_epochs, data, options)
    }

    /// [`EnsembleVI::run`]'s first half: fresh guides from `seed`, and the guides' noise streams
    /// restarted from its [`SeedStream::GuideNoise`].
    ///
    /// # Errors
    /// As [`EnsembleMAP::init`].
    pub fn start(&mut self, seed: u64) -> Result<Training<T, O::State>, RunError<T>> {
        self.reseed(seed);
        self.map.start(seed)
    }

    fn reseed(&mut self, seed: u64) {
        for elbo in self.map.log_joint_mut().parts_mut() {
            elbo.reseed(SeedStream::GuideNoise.seed(seed));
        }
    }

    /// [`EnsembleVI::run`]'s second half — the training loop ([`EnsembleMAP::train`]) — on a
    /// run it takes forward in place: to step `num_steps` with the batches of `seed`, the guides'
    /// noise continuing where the last step left it. A run saved with [`EnsembleVI::save`] and
    /// continued after [`EnsembleVI::restore`] gives the bits of an uninterrupted one.
    ///
    /// # Errors
    /// As [`EnsembleMAP::train`].
    pub fn train(
        &mut self,
        training: &mut Training<T, O::State>,
        seed: u64,
        num_steps: usize,
        data: Batch<'_, T>,
        options: RunOptions<'_, T>,
    ) -> Result<EnsembleResult<T>, RunError<T>> {
        self.map.train(training, seed, num_steps, data, options)
    }

    /// Saves `training` to `path`, with where each member's noise stream stands
    /// ([`EnsembleMAP::save`]).
    ///
    /// # Errors
    /// [`CheckpointError::Io`].
    pub fn save(
        &self,
        path: &Path,
        training: &Training<T, O::State>,
    ) -> Result<(), CheckpointError> {
        self.map.save(path, training)
    }

    /// The run saved in `checkpoint`, with every member's noise stream — `seed`'s, as
    /// [`EnsembleVI::start`] with the same seed made it — moved to where the saved run had taken
    /// it; [`EnsembleVI::train`] continues it.
    ///
    /// ```
    /// use flock_autograd::{AutogradError, Batch, Var};
    /// use flock_ensemble::model::{ModelContext, normal};
    /// use flock_optim::{AdamConfig, adam};
    /// use flock_runner::checkpoint::Checkpoint;
    /// use flock_runner::train::RunOptions;
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
    /// let mut training = vi.start(3)?;
    /// vi.train(&mut training, 3, 15, data, RunOptions::default())?;
    /// vi.save(&path, &training)?;
    /// let mut restored = vi.restore(&Checkpoint::read(&path)?, 3)?;
    /// let rest = vi.train(&mut restored, 3, 40, data, RunOptions::default())?;
    /// assert_eq!(rest.params.values(), straight.params.values());
    /// assert_eq!(rest.losses, straight.losses);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`CheckpointError`] for another model or optimizer, or a checkpoint without the noise
    /// streams' positions.
    pub fn restore(
        &mut self,
        checkpoint: &Checkpoint,
        seed: u64,
    ) -> Result<Training<T, O::State>, CheckpointError> {
        if checkpoint.metadata("stream_positions").is_none()
            && checkpoint.metadata("vi_noise_draws").is_none()
        {
            return Err(CheckpointError::Mismatch {
                reason: "no random-stream positions: not the state of a VI run".into(),
            });
        }
        self.reseed(seed);
        self.map.restore(checkpoint)
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
        let elbo = &self.map.log_joint().parts()[0];
        let draws = elbo.guide().draw(
            params,
            elbo.guide_ids(),
            &self.sites,
            &self.positive,
            samples,
            |e| member_rng(seed, e),
        )?;
        let mut out = vec![T::ZERO; members * samples * points];
        let mut tape = Tape::new();
        let mut site_values = Vec::new();
        let mut row = vec![T::ZERO; members * points];
        for s in 0..samples {
            let mut g = tape.graph(params);
            let x = g
                .input(x_new, [points, x_new.len() / points])
                .map_err(EnsembleError::from)?;
            // Each site's draw `s` of every member, as a per-member input.
            let mut values = Vec::with_capacity(self.positive.len());
            for site in self.sites.leaves() {
                site_values.clear();
                for e in 0..members {
                    let draw = draws.member(e * samples + s);
                    site_values.extend_from_slice(&draw[site.offset..site.offset + site.len()]);
                }
                values.push(g.input_per_member(&site_values, site.shape)?);
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

/// The knobs of [`ensemble_vi`], pyrox's: [`EnsembleVI`] with Adam at `learning_rate`.
///
/// ```
/// use flock_runner::vi::VariationalOptions;
/// let options = VariationalOptions { ensemble_size: 4, num_epochs: 2000, ..VariationalOptions::default() };
/// assert_eq!((options.learning_rate, options.kl_weight), (5e-3, 1.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VariationalOptions {
    /// Members `E` (independent guides).
    pub ensemble_size: usize,
    /// Steps.
    pub num_epochs: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// `β` of the tempered ELBO.
    pub kl_weight: f64,
    /// Monte-Carlo particles per member and step.
    pub num_particles: usize,
    /// The guides' initial scale.
    pub init_scale: f64,
    /// The guide family.
    pub guide: Guide,
    /// Examples per step (`None` = full batch).
    pub batch_size: Option<usize>,
    /// Seed of the initial guides, the batches and the guides' noise.
    pub seed: u64,
    /// Threads to split members over (`None` = every core); never changes the results.
    pub threads: Option<usize>,
}

impl Default for VariationalOptions {
    /// pyrox's defaults: 16 mean-field guides, 1,000 steps, Adam 5e-3, `β = 1`, one particle,
    /// initial scale 0.1, full batch, seed 0.
    fn default() -> Self {
        let config = ViConfig::default();
        VariationalOptions {
            ensemble_size: config.ensemble_size,
            num_epochs: 1000,
            learning_rate: 5e-3,
            kl_weight: config.kl_weight,
            num_particles: config.num_particles,
            init_scale: config.init_scale,
            guide: config.guide,
            batch_size: None,
            seed: 0,
            threads: None,
        }
    }
}

/// pyrox's `ensemble_vi`: an ensemble of Gaussian guides over `model`, each member's locations
/// initialised by `loc_init`, trained on the tempered ELBO with Adam as `options` says.
///
/// # Errors
/// As [`EnsembleVI::run`].
pub fn ensemble_vi<T, M>(
    model: M,
    loc_init: impl FnMut(&mut MemberRng) -> Vec<T> + 'static,
    data: Batch<'_, T>,
    options: VariationalOptions,
) -> Result<EnsembleResult<T>, RunError<T>>
where
    T: Element,
    M: Model<T> + Clone + Send,
{
    let optimizer: Adam = adam(options.learning_rate, AdamConfig::default())?;
    let config = ViConfig {
        ensemble_size: options.ensemble_size,
        kl_weight: options.kl_weight,
        num_particles: options.num_particles,
        init_scale: options.init_scale,
        guide: options.guide,
        threads: options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        ..ViConfig::default()
    };
    let mut vi = EnsembleVI::new(model, data, loc_init, optimizer, config)?;
    let run = RunOptions {
        batch_size: options.batch_size,
        ..RunOptions::default()
    };
    vi.run(options.seed, options.num_epochs, data, run)
}
