"""Exact scores of Gaussian-mixture predictives, as flock computes them for its ensembles."""

from __future__ import annotations

import numpy as np

from ._native import native as _flock


def mixture_scores(y, means, stds) -> dict:
    """Scores the equal-weight mixture of ``M`` Gaussians at each of ``n`` points against ``y``.

    Parameters
    ----------
    y : array of shape (n,)
        The observed values.
    means, stds : arrays of shape (M, n)
        Each member's predictive mean and standard deviation at each point.

    Returns
    -------
    dict
        ``rmse`` (of the mixture mean), ``nll`` (mean negative log-density per point, exact),
        ``coverage_95`` and ``width_95`` (the central 95 % interval), ``crps`` (closed form),
        ``interval_score_95``, ``calibration_error``, and arrays ``pit`` (n,), ``alphas``,
        ``coverage_curve`` and ``width_curve``.
    """
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).ravel())
    means = np.ascontiguousarray(np.atleast_2d(np.asarray(means, dtype=np.float64)))
    stds = np.ascontiguousarray(np.atleast_2d(np.asarray(stds, dtype=np.float64)))
    return _flock.mixture_scores(y, means, stds)


__all__ = ["mixture_scores"]
