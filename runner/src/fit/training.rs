//! A fit's training: one epoch loop ([`train_epochs`]) over either runner — [`EnsembleMAP`] for
//! point estimates, [`ViRunner`] around [`EnsembleVI`] for guides — with the training state
//! saved after every epoch and each member kept at its best held-out epoch.

use std::path::Path;

use flock_autograd::{Batch, LogJoint, ParamLayout, Parameters, Tape};
use flock_ensemble::model::Model;
use flock_ensemble::{EnsembleState, MemberRng, Sampling};
use flock_optim::{Adam, GradientTransformation};

use super::variational::{guide_draws, member_mixture_nll};
use super::{BoxError, FitProgress, FitSpec, Likelihood, Network, Readout, component_moments};
use crate::checkpoint::{Checkpoint, CheckpointError, save_state_with};
use crate::map::{BestParams, EnsembleMAP, EnsembleResult, RunOptions, split_seed};
use crate::progress::ProgressBar;
use crate::vi::{EnsembleVI, Guide};

/// How a fit's steps fall into epochs.
pub(super) struct Epochs {
    pub(super) steps_per_epoch: usize,
    pub(super) batch_size: usize,
    pub(super) rows: usize,
}

/// A fit's runner as its epoch loop drives it: [`EnsembleMAP`] or [`ViRunner`].
pub(super) trait FitRunner {
    /// Fresh parameters and optimizer state for a run seeded `seed`.
    fn start(&mut self, seed: u64) -> Result<FitState, BoxError>;
    /// The training state a checkpoint holds, and its step.
    fn resume(&mut self, checkpoint: &Checkpoint, seed: u64)
    -> Result<(FitState, usize), BoxError>;
    /// The steps `options.start_step..end`, with the batches of `seed`.
    fn train_until(
        &mut self,
        state: &mut FitState,
        seed: u64,
        end: usize,
        data: Batch<'_, f64>,
        options: RunOptions<'_, f64>,
    ) -> Result<EnsembleResult<f64>, BoxError>;
    /// Each member's held-out NLL per row.
    fn held_out_nll(
        &mut self,
        params: &Parameters<f64>,
        held_out: Batch<'_, f64>,
    ) -> Result<Vec<f64>, BoxError>;
    /// Saves the training state with extra tensors.
    fn save(
        &self,
        path: &Path,
        state: &FitState,
        step: usize,
        extra: &[(&str, &[f64], &[usize])],
    ) -> Result<(), CheckpointError>;
}

type FitState = EnsembleState<f64, <Adam as GradientTransformation<f64>>::State>;

impl<L, F> FitRunner for EnsembleMAP<f64, L, F, Adam>
where
    L: LogJoint<f64>,
    F: FnMut(&mut MemberRng) -> Vec<f64>,
{
    fn start(&mut self, seed: u64) -> Result<FitState, BoxError> {
        Ok(self.init(split_seed(seed).0).map_err(|e| e.to_string())?)
    }

    fn resume(
        &mut self,
        checkpoint: &Checkpoint,
        _seed: u64,
    ) -> Result<(FitState, usize), BoxError> {
        let layout = self.log_joint().layout().clone();
        let members = self.ensemble_size();
        Ok(checkpoint.training_state(self.optimizer(), &layout, members)?)
    }

    fn train_until(
        &mut self,
        state: &mut FitState,
        seed: u64,
        end: usize,
        data: Batch<'_, f64>,
        options: RunOptions<'_, f64>,
    ) -> Result<EnsembleResult<f64>, BoxError> {
        Ok(self
            .train(state, split_seed(seed).1, end, data, options)
            .map_err(|e| e.to_string())?)
    }

    fn held_out_nll(
        &mut self,
        params: &Parameters<f64>,
        held_out: Batch<'_, f64>,
    ) -> Result<Vec<f64>, BoxError> {
        Ok(EnsembleMAP::held_out_nll(self, params, held_out).map_err(|e| e.to_string())?)
    }

    fn save(
        &self,
        path: &Path,
        state: &FitState,
        step: usize,
        extra: &[(&str, &[f64], &[usize])],
    ) -> Result<(), CheckpointError> {
        save_state_with(path, state, step, &[], extra)
    }
}

/// A VI fit's runner: the guides, and what scoring them on held-out rows needs.
pub(super) struct ViRunner<'n, M> {
    pub(super) vi: EnsembleVI<f64, M, Adam>,
    pub(super) network: &'n Network,
    pub(super) layout: &'n ParamLayout,
    pub(super) likelihood: Likelihood,
    pub(super) sigma_std: f64,
    pub(super) guide: Guide,
    pub(super) samples: usize,
    pub(super) seed: u64,
    /// The held-out score's tape, kept from epoch to epoch.
    pub(super) tape: Tape<f64>,
}

impl<M: Model<f64> + Clone + Send> FitRunner for ViRunner<'_, M> {
    fn start(&mut self, seed: u64) -> Result<FitState, BoxError> {
        Ok(self.vi.start(seed).map_err(|e| e.to_string())?)
    }

    fn resume(
        &mut self,
        checkpoint: &Checkpoint,
        seed: u64,
    ) -> Result<(FitState, usize), BoxError> {
        Ok(self.vi.restore_from(checkpoint, seed)?)
    }

    fn train_until(
        &mut self,
        state: &mut FitState,
        seed: u64,
        end: usize,
        data: Batch<'_, f64>,
        options: RunOptions<'_, f64>,
    ) -> Result<EnsembleResult<f64>, BoxError> {
        Ok(self
            .vi
            .train(state, seed, end, data, options)
            .map_err(|e| e.to_string())?)
    }

    /// Each member's predictive — the mixture of `samples` networks drawn from its guide, the
    /// same noise at every call — scored on the held-out rows.
    fn held_out_nll(
        &mut self,
        params: &Parameters<f64>,
        held_out: Batch<'_, f64>,
    ) -> Result<Vec<f64>, BoxError> {
        let draws = guide_draws(params, self.layout, self.guide, self.samples, self.seed)?;
        let (means, sigmas) = component_moments(
            &mut self.tape,
            &draws,
            self.network,
            self.likelihood,
            held_out.x,
            held_out.rows,
            Readout::new(0.0, 1.0, self.sigma_std),
        )?;
        Ok(member_mixture_nll(
            &means,
            &sigmas,
            held_out.y,
            self.samples,
        ))
    }

    fn save(
        &self,
        path: &Path,
        state: &FitState,
        step: usize,
        extra: &[(&str, &[f64], &[usize])],
    ) -> Result<(), CheckpointError> {
        self.vi.save_state_with(path, state, step, extra)
    }
}

/// The epoch loop of a fit: `spec.epochs` epochs of mini-batches without replacement, the
/// training state saved after each (when `progress` asks) and resumed from it, each member kept
/// at its best held-out epoch when `held_out` is given.
pub(super) fn train_epochs(
    runner: &mut impl FitRunner,
    spec: &FitSpec,
    epochs: &Epochs,
    data: Batch<'_, f64>,
    held_out: Option<Batch<'_, f64>>,
    progress: Option<&FitProgress>,
) -> Result<EnsembleResult<f64>, BoxError> {
    let members = spec.members;
    let steps = spec.epochs * epochs.steps_per_epoch;
    // Start fresh, or from the training state an interrupted run left.
    let (mut state, mut step, mut history, mut best) =
        match progress.filter(|p| p.resume && p.state_file.exists()) {
            Some(p) => {
                let checkpoint = Checkpoint::read(&p.state_file)?;
                let (state, step) = runner.resume(&checkpoint, spec.seed)?;
                let history = checkpoint.tensor::<f64>("losses_so_far", &[members, step])?;
                let best = match held_out {
                    Some(_) => {
                        let layout = state.params.layout();
                        let scores = checkpoint.tensor::<f64>("best_held_out_nll", &[members])?;
                        let values = checkpoint
                            .tensor::<f64>("best_params", &[members, layout.member_size()])?;
                        let params = Parameters::from_values(layout.clone(), members, values)?;
                        Some(BestParams::from_parts(scores, params)?)
                    }
                    None => None,
                };
                (state, step, history, best)
            }
            None => {
                let state = runner.start(spec.seed)?;
                let best = held_out.map(|_| BestParams::new(&state.params));
                (state, 0, Vec::new(), best)
            }
        };
    let mut diverged = Vec::new();
    let stop_at = progress
        .and_then(|p| p.max_epochs_this_run)
        .map_or(steps, |e| (step + e * epochs.steps_per_epoch).min(steps));
    let mut bar = progress
        .filter(|p| p.show)
        .map(|_| ProgressBar::new("fit", "steps", steps));
    // One epoch at a time, saving the training state after each (when asked to).
    while step < stop_at {
        let end = (step + epochs.steps_per_epoch).min(stop_at);
        let part = runner.train_until(
            &mut state,
            spec.seed,
            end,
            data,
            RunOptions {
                batch_size: Some(epochs.batch_size),
                sampling: Sampling::WithoutReplacement,
                start_step: step,
                ..RunOptions::default()
            },
        )?;
        history = append_losses(&history, step, &part.losses, part.steps, members);
        diverged.extend(part.diverged.iter().map(|d| crate::map::Divergence {
            member: d.member,
            step: d.step + step,
        }));
        step = end;
        // Early stopping: each member keeps the parameters of its best held-out epoch.
        if let (Some(held), Some(best)) = (held_out, best.as_mut()) {
            let now = runner.held_out_nll(&state.params, held)?;
            for (e, &score) in now.iter().enumerate() {
                best.offer(e, score, state.params.member(e));
            }
        }
        if let Some(bar) = bar.as_mut() {
            let latest: Vec<f64> = (0..members)
                .map(|e| history[e * step + step - 1])
                .filter(|v| v.is_finite())
                .collect();
            // Per training row, so the figure reads as a (standardised-scale) NLL.
            let per_row = latest.iter().sum::<f64>() / (latest.len().max(1) * epochs.rows) as f64;
            bar.update(step, Some(per_row));
        }
        if let Some(p) = progress {
            let losses_shape = [members, step];
            let best_shape = [members, state.params.layout().member_size()];
            let mut tensors: Vec<(&str, &[f64], &[usize])> =
                vec![("losses_so_far", &history, &losses_shape)];
            if let Some(best) = &best {
                tensors.push(("best_held_out_nll", best.scores(), &best_shape[..1]));
                tensors.push(("best_params", best.params().values(), &best_shape));
            }
            runner.save(&p.state_file, &state, step, &tensors)?;
        }
    }
    let params = match best {
        Some(best) => best.into_params(&state.params),
        None => state.params.clone(),
    };
    Ok(EnsembleResult {
        params,
        losses: history,
        steps: step,
        stopped_early: step < steps,
        diverged,
    })
}

/// `[E, t]` losses followed by `[E, t2]` more, as `[E, t + t2]`.
fn append_losses(
    history: &[f64],
    steps: usize,
    more: &[f64],
    more_steps: usize,
    members: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(members * (steps + more_steps));
    for e in 0..members {
        out.extend_from_slice(&history[e * steps..(e + 1) * steps]);
        out.extend_from_slice(&more[e * more_steps..(e + 1) * more_steps]);
    }
    out
}
