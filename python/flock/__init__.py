"""flock: deep ensembles on a CPU, with scikit-learn's estimator API.

>>> import numpy as np, flock
>>> X = np.linspace(0, 10, 400)[:, None]
>>> model = flock.Regressor(epochs=100).fit(X, np.sin(X[:, 0]))
>>> mean, std = model.predict([[2.5]], return_std=True)

:class:`Regressor` and :class:`Classifier` are scikit-learn estimators (pipelines,
cross-validation, ``clone``, pickling and joblib work); :func:`load` reads a model file written
by ``flock fit`` or an estimator's ``save``; :mod:`flock.metrics` scores Gaussian-mixture
predictives exactly; :func:`simd_level` names the instructions the native module was built for.
"""

from . import metrics
from ._estimators import Classifier, Regressor, Uncertainty, load
from ._native import native as _native_module

simd_level = _native_module.simd_level
Model = _native_module.Model  # a fitted ensemble (``estimator.model_``); pickles by this name

__all__ = ["Classifier", "Model", "Regressor", "Uncertainty", "load", "metrics", "simd_level"]
__version__ = "0.1.0"
