"""scikit-learn estimators over flock's native module.

The estimators validate and convert their input the scikit-learn way and hand it to
``flock._flock.fit``, which runs flock's one training loop (the same code as ``flock fit`` and
the Rust ``Regressor`` / ``Classifier``). Their defaults are flock's recipe for the task;
``tests/test_estimators.py`` checks that they equal the Rust library's.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._native import native as _flock

_DTYPES = {"float64": np.float64, "float32": np.float32}


class Uncertainty(NamedTuple):
    """A regressor's predictive at each row: arrays of shape ``(n_samples,)``."""

    mean: np.ndarray
    """The mixture's mean."""
    std: np.ndarray
    """Its total standard deviation: ``std² = epistemic_std² + aleatoric_std²``."""
    epistemic_std: np.ndarray
    """The members' disagreement (the spread of their means)."""
    aleatoric_std: np.ndarray
    """The noise the members predict (the root of their mean variance)."""


def _check_dtype(dtype: str) -> type:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


class _Ensemble(BaseEstimator):
    """What the regressor and the classifier share: the settings and the native model."""

    # One constructor for both estimators (scikit-learn reads the parameters from its
    # signature); it stores them and nothing else.
    def __init__(
        self,
        members: int = 5,
        hidden: Sequence[int] = (50,),
        activation: str = "relu",
        epochs: int = 80,
        batch_size: int = 100,
        lr: float = 1e-2,
        schedule: str = "cosine",
        prior_weight: float = 0.0,
        method: str = "map",
        kl_weight: Optional[float] = None,
        validation_fraction: float = 0.1,
        input_scaling: str = "standardise",
        data_order: Optional[str] = None,
        weight_init: Optional[str] = None,
        seed: int = 0,
        dtype: str = "float64",
        n_jobs: Optional[int] = None,
    ):
        self.members = members
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.schedule = schedule
        self.prior_weight = prior_weight
        self.method = method
        self.kl_weight = kl_weight
        self.validation_fraction = validation_fraction
        self.input_scaling = input_scaling
        self.data_order = data_order
        self.weight_init = weight_init
        self.seed = seed
        self.dtype = dtype
        self.n_jobs = n_jobs

    def _fit_keywords(self) -> dict:
        return dict(
            members=self.members,
            hidden=list(self.hidden),
            activation=self.activation,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            schedule=self.schedule,
            prior_weight=self.prior_weight,
            method=self.method,
            kl_weight=self.kl_weight,
            validation_fraction=self.validation_fraction,
            input_scaling=self.input_scaling,
            data_order=self.data_order,
            weight_init=self.weight_init,
            seed=self.seed,
            n_jobs=self.n_jobs,
        )

    def _validate_fit(self, X, y, **kwargs):
        dtype = _check_dtype(self.dtype)
        X, y = validate_data(self, X, y, dtype=dtype, order="C", **kwargs)
        if X.shape[0] < 2:
            raise ValueError(
                f"n_samples={X.shape[0]}: flock needs at least 2 rows to fit an ensemble"
            )
        return X, y

    def _prepared(self, X):
        """The fitted model and ``X`` checked and converted to its element type (C order; no
        copy when it already is)."""
        check_is_fitted(self, "model_")
        model = self.model_
        return model, validate_data(self, X, reset=False, dtype=_DTYPES[model.dtype], order="C")

    def _feature_names(self) -> Optional[list]:
        names = getattr(self, "feature_names_in_", None)
        return None if names is None else [str(n) for n in names]

    def _fitted(self, model) -> None:
        self.model_ = model
        self.loss_curve_ = model.losses()

    def save(self, path) -> None:
        """Writes the model file ``flock fit`` writes (safetensors); ``flock.load`` reads it."""
        check_is_fitted(self, "model_")
        self.model_.save(str(path))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class Regressor(RegressorMixin, _Ensemble):
    """A deep ensemble regressor: ``members`` networks fitted at once, whose disagreement is the
    epistemic part of the predictive uncertainty.

    The defaults are flock's recipe (the best measured on the UCI benchmark): 5 members, one
    hidden layer of 50 ReLU units with a heteroscedastic Gaussian head, 80 epochs of batches of
    100, Adam 1e-2 cosine-decayed to 0, 10 % of the rows held out so that each member ends at
    its best held-out epoch.

    Parameters
    ----------
    members : int
        Networks in the ensemble.
    hidden : tuple of int
        Units of each hidden layer, input side first.
    activation : {"relu", "tanh", "sigmoid", "softplus", "identity"}
    epochs : int
        Epochs over the training rows.
    batch_size : int
        Rows per step.
    lr : float
        Adam's (initial) learning rate.
    schedule : {"cosine", "constant"}
        How the rate moves over the fit.
    prior_weight : float
        Weight of a standard-normal prior on the weights (0: maximum likelihood).
    method : {"map", "vi"}
        A point estimate per member, or a mean-field Gaussian guide per member (tempered ELBO).
    kl_weight : float or None
        VI's KL weight β (None: 1).
    validation_fraction : float
        Fraction of the rows held out for per-member early stopping (0: none).
    input_scaling : {"standardise", "as-given"}
    data_order : {"shared", "per-member"} or None
        Whether the members share one order of batches or each draws its own and, with a
        validation_fraction, holds out its own rows (None: the task's recipe).
    weight_init : {"equinox", "he", "glorot"} or None
        How the weights are first drawn (None: the task's recipe; "glorot" is scikit-learn's).
    seed : int
        Seed of everything random; the same seed gives the same bits, whatever ``n_jobs``.
    dtype : {"float64", "float32"}
        The element type the ensemble is fitted in.
    n_jobs : int or None
        Threads (None: every core). Never changes the results.

    Attributes
    ----------
    model_ : flock._flock.Model
        The fitted ensemble.
    loss_curve_ : ndarray of shape (members, steps)
        Each member's training loss after every step.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` had column names.

    Examples
    --------
    >>> import numpy as np, flock
    >>> X = np.linspace(0, 10, 400)[:, None]
    >>> y = np.sin(X[:, 0])
    >>> model = flock.Regressor(epochs=100).fit(X, y)
    >>> mean, std = model.predict([[2.5], [7.0]], return_std=True)
    >>> bool(abs(mean[0] - np.sin(2.5)) < 0.05)
    True
    """

    def fit(self, X, y) -> "Regressor":
        """Fits the ensemble to ``X`` (n_samples, n_features) and ``y`` (n_samples,)."""
        X, y = self._validate_fit(X, y, y_numeric=True)
        y = np.ascontiguousarray(y, dtype=X.dtype)
        model = _flock.fit(X, y, feature_names=self._feature_names(), **self._fit_keywords())
        self._fitted(model)
        return self

    def predict(self, X, return_std: bool = False):
        """The predictive mean at each row; with ``return_std``, ``(mean, std)`` as
        scikit-learn's ``GaussianProcessRegressor`` gives them (std: total, epistemic and
        aleatoric combined)."""
        model, X = self._prepared(X)
        mean, std, _, _ = model.predict(X)
        return (mean, std) if return_std else mean

    def predict_uncertainty(self, X) -> Uncertainty:
        """Mean, total std and its epistemic and aleatoric parts at each row."""
        model, X = self._prepared(X)
        return Uncertainty(*model.predict(X))

    def predict_quantiles(self, X, q) -> np.ndarray:
        """The predictive mixture's quantiles: shape (n_samples, len(q)) for a sequence ``q``,
        (n_samples,) for one level."""
        levels = np.atleast_1d(np.asarray(q, dtype=np.float64))
        model, X = self._prepared(X)
        out = model.quantiles(X, [float(v) for v in levels])
        return out[:, 0] if np.ndim(q) == 0 else out

    def predict_interval(self, X, alpha: float = 0.05) -> Tuple[np.ndarray, np.ndarray]:
        """The central ``1 − alpha`` predictive interval at each row: ``(lower, upper)``."""
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha={alpha}: expected a miscoverage in (0, 1)")
        model, X = self._prepared(X)
        out = model.quantiles(X, [alpha / 2, 1 - alpha / 2])
        return out[:, 0], out[:, 1]

    def scores(self, X, y) -> dict:
        """The exact probabilistic scores of the predictive mixture at ``X`` against ``y``: RMSE,
        NLL (per row), 95 % coverage and width, CRPS, interval score, calibration error."""
        model, X = self._prepared(X)
        y = np.ascontiguousarray(np.asarray(y).ravel(), dtype=X.dtype)
        return model.scores(X, y)


class Classifier(ClassifierMixin, _Ensemble):
    """A deep ensemble classifier: ``members`` networks with a categorical head, whose mixture
    gives the class probabilities and whose disagreement (mutual information) flags inputs unlike
    the training data.

    The defaults are flock's classification recipe: the regressor's, with He-initialised weights
    and an order of batches of each member's own. Parameters as :class:`Regressor`'s.

    Attributes
    ----------
    classes_ : ndarray
        The labels, sorted; ``predict_proba``'s columns follow them.
    model_, loss_curve_, n_features_in_, feature_names_in_ : as :class:`Regressor`'s.

    Examples
    --------
    >>> import numpy as np, flock
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-2, 1, (100, 2)), rng.normal(2, 1, (100, 2))]
    >>> y = np.r_[["a"] * 100, ["b"] * 100]
    >>> model = flock.Classifier().fit(X, y)
    >>> model.predict([[-2.0, -2.0], [2.0, 2.0]]).tolist()
    ['a', 'b']
    """

    def fit(self, X, y) -> "Classifier":
        """Fits the ensemble to ``X`` (n_samples, n_features) and labels ``y`` (n_samples,) of
        any type numpy can sort (integers, strings, …)."""
        X, y = self._validate_fit(X, y)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "Classifier can't train when only one class is present: "
                f"every label is {self.classes_[0]!r}"
            )
        model = _flock.fit(
            X,
            np.ascontiguousarray(labels, dtype=np.int64),
            classes=len(self.classes_),
            class_names=[str(c) for c in self.classes_],
            feature_names=self._feature_names(),
            **self._fit_keywords(),
        )
        self._fitted(model)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes): the mean of the members' softmaxes."""
        model, X = self._prepared(X)
        probs, _, _ = model.predict_proba(X)
        return probs

    def predict_log_proba(self, X) -> np.ndarray:
        """The log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        probs = self.predict_proba(X)
        return self.classes_[np.argmax(probs, axis=1)]

    def predict_uncertainty(self, X) -> Tuple[np.ndarray, np.ndarray]:
        """``(entropy, mutual_information)`` of each row's predictive, in nats: the total
        uncertainty and its epistemic part (the members' disagreement) — the usual scores for
        out-of-distribution detection."""
        model, X = self._prepared(X)
        _, entropy, mutual_information = model.predict_proba(X)
        return entropy, mutual_information

    def scores(self, X, y) -> dict:
        """Accuracy, NLL, Brier score, ECE (15 bins), adaptive and classwise ECE at ``X``."""
        model, X = self._prepared(X)
        index = {c: k for k, c in enumerate(self.classes_.tolist())}
        unseen = [c for c in np.asarray(y).ravel().tolist() if c not in index]
        if unseen:
            raise ValueError(f"label {unseen[0]!r} was not seen in training")
        return model.scores(X, [index[c] for c in np.asarray(y).ravel().tolist()])


def load(path):
    """Reads a model file (``flock fit``'s, or an estimator's ``save``) as a fitted
    :class:`Regressor` or :class:`Classifier` whose parameters are the ones it was fitted
    with."""
    model = _flock.load(str(path))
    spec = model.spec
    cls = Classifier if model.task == "classification" else Regressor
    keywords = {k: v for k, v in spec.items() if k in cls._get_param_names()}
    keywords["hidden"] = tuple(keywords["hidden"])
    estimator = cls(dtype=model.dtype, **keywords)
    estimator._fitted(model)
    estimator.n_features_in_ = model.n_features
    if model.feature_names is not None:
        estimator.feature_names_in_ = np.asarray(model.feature_names, dtype=object)
    if model.task == "classification":
        names = model.class_names
        estimator.classes_ = (
            np.asarray(names) if names is not None else np.arange(model.n_classes)
        )
    return estimator
