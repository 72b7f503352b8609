//! `ensemble_predict`: every member's prediction on new inputs.

use flock_autograd::{AutogradError, Graph, Parameters, Tape, Var};
use flock_kernels::Element;

use crate::EnsembleError;

/// Per-member predictions: `values[(e·points + i)·outputs + k]`, shape `[E, N]` or `[E, N, K]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions<T> {
    /// The values, member-major.
    pub values: Vec<T>,
    /// `E`.
    pub members: usize,
    /// `N`, the number of inputs.
    pub points: usize,
    /// `K`, outputs per input (1 for a `[E, N]` prediction).
    pub outputs: usize,
}

impl<T: Copy> Predictions<T> {
    /// Member `e`'s `N·K` values.
    pub fn member(&self, e: usize) -> &[T] {
        let len = self.points * self.outputs;
        &self.values[e * len..(e + 1) * len]
    }
}

/// Runs `predict_fn(graph, x)` for every member on `x_new` (`N` rows of `x_new.len()/N`
/// features) and collects the outputs (`[N]` or `[N, K]` per member).
///
/// ```
/// use flock_autograd::*;
/// use flock_ensemble::ensemble_predict;
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 4, 1, Activation::Tanh))?;
/// let params = Parameters::<f64>::zeros(layout, 3);
/// let x_new = [0.0, 0.5, 1.0];
/// let preds = ensemble_predict(&params, |g, x| {
///     let f = mlp.forward(g, x)?;
///     g.squeeze_last(f)
/// }, &x_new, 3)?;
/// assert_eq!((preds.members, preds.points, preds.outputs), (3, 3, 1));
/// assert_eq!(preds.member(2).len(), 3);
/// # Ok::<(), flock_ensemble::EnsembleError>(())
/// ```
///
/// # Errors
/// [`EnsembleError::BatchShape`] if `x_new` is not `points` whole rows;
/// [`EnsembleError::NonFiniteData`] for NaN inputs; errors of `predict_fn`.
pub fn ensemble_predict<T, F>(
    params: &Parameters<T>,
    predict_fn: F,
    x_new: &[T],
    points: usize,
) -> Result<Predictions<T>, EnsembleError>
where
    T: Element,
    F: for<'g> FnMut(&mut Graph<'g, T>, Var) -> Result<Var, AutogradError>,
{
    ensemble_predict_in(&mut Tape::new(), params, predict_fn, x_new, points)
}

/// [`ensemble_predict`] on a tape the caller keeps: its storage, grown to the largest call so
/// far, is reused, so repeated predictions (every epoch's held-out score, chunks of many rows)
/// neither reallocate nor zero-fill it again.
///
/// # Errors
/// As [`ensemble_predict`].
pub fn ensemble_predict_in<T, F>(
    tape: &mut Tape<T>,
    params: &Parameters<T>,
    mut predict_fn: F,
    x_new: &[T],
    points: usize,
) -> Result<Predictions<T>, EnsembleError>
where
    T: Element,
    F: for<'g> FnMut(&mut Graph<'g, T>, Var) -> Result<Var, AutogradError>,
{
    if points == 0 || x_new.is_empty() || !x_new.len().is_multiple_of(points) {
        return Err(EnsembleError::BatchShape {
            what: "x",
            len: x_new.len(),
            rows: points,
        });
    }
    if let Some(index) = x_new.iter().position(|v| !v.is_finite()) {
        return Err(EnsembleError::NonFiniteData { what: "x", index });
    }
    let mut g = tape.graph(params);
    let x = g.input(x_new, [points, x_new.len() / points])?;
    let out = predict_fn(&mut g, x)?;
    let shape = g.shape(out);
    let outputs = match *shape.dims() {
        [n] if n == points => 1,
        [n, k] if n == points => k,
        _ => {
            return Err(AutogradError::InvalidShape {
                op: "ensemble_predict",
                shape,
                expected: "[N] or [N, K] per member",
            }
            .into());
        }
    };
    let mut values = vec![T::ZERO; params.members() * points * outputs];
    g.copy_values(out, &mut values)?;
    Ok(Predictions {
        values,
        members: params.members(),
        points,
        outputs,
    })
}
