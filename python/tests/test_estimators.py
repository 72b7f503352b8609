"""flock's Python estimators: scikit-learn conformance, the same bits as `flock fit`, errors,
pickling, threads and Ctrl-C."""

import os
import pickle
import signal
import subprocess
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import flock
from flock._native import native as _flock

ROOT = Path(__file__).resolve().parents[2]


def sine(n=300, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] + noise * rng.standard_normal(n)
    return X, y


# Checks skipped, each with its reason (the closing note lists them too).
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [flock.Regressor(), flock.Classifier()],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}),
)
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls,task", [(flock.Regressor, "regression"), (flock.Classifier, "classification")])
def test_defaults_are_the_rust_recipe(cls, task):
    recipe = _flock.default_spec(task)
    params = cls().get_params()
    for key in ["members", "activation", "epochs", "batch_size", "lr", "schedule",
                "prior_weight", "method", "validation_fraction", "input_scaling", "seed"]:
        assert params[key] == recipe[key], key
    assert list(params["hidden"]) == recipe["hidden"]
    # None means the task's recipe: check what the fitted model says it used.
    X, y = sine(60)
    if task == "classification":
        y = (y > 0).astype(int)
    model = cls(epochs=2).fit(X, y).model_
    assert model.spec["data_order"] == recipe["data_order"]
    assert model.spec["weight_init"] == recipe["weight_init"]


def test_regressor_fits_and_predicts():
    X, y = sine()
    model = flock.Regressor().fit(X, y)
    mean, std = model.predict(X[:50], return_std=True)
    assert mean.shape == std.shape == (50,)
    assert np.sqrt(np.mean((mean - y[:50]) ** 2)) < 0.2
    u = model.predict_uncertainty(X[:50])
    np.testing.assert_allclose(u.std**2, u.epistemic_std**2 + u.aleatoric_std**2, rtol=1e-9)
    q = model.predict_quantiles(X[:50], [0.025, 0.5, 0.975])
    lo, hi = model.predict_interval(X[:50], alpha=0.05)
    np.testing.assert_array_equal(q[:, 0], lo)
    np.testing.assert_array_equal(q[:, 2], hi)
    assert np.all(lo < mean) and np.all(mean < hi)
    assert model.predict_quantiles(X[:5], 0.5).shape == (5,)
    assert model.score(X, y) > 0.9  # R², scikit-learn's convention
    scores = model.scores(X, y)
    assert set(scores) >= {"rmse", "nll", "coverage_95", "width_95", "crps", "calibration_error"}
    assert 0.8 < scores["coverage_95"] <= 1.0
    assert model.loss_curve_.shape[0] == 5
    assert model.n_features_in_ == 2


def test_classifier_with_string_labels():
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(-2, 1, (150, 2)), rng.normal(2, 1, (150, 2)), rng.normal((2, -2), 1, (150, 2))]
    y = np.array(["cat"] * 150 + ["dog"] * 150 + ["emu"] * 150)
    model = flock.Classifier().fit(X, y)
    assert model.classes_.tolist() == ["cat", "dog", "emu"]
    p = model.predict_proba(X)
    assert p.shape == (450, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert model.score(X, y) > 0.9
    entropy, mi = model.predict_uncertainty(X)
    assert np.all(mi >= -1e-12) and np.all(mi <= entropy + 1e-12)
    scores = model.scores(X, y)
    assert scores["accuracy"] == pytest.approx(model.score(X, y))
    with pytest.raises(ValueError, match="'yak' was not seen"):
        model.scores(X[:2], ["cat", "yak"])


def test_errors_are_value_errors_naming_the_problem():
    X, y = sine(40)
    with pytest.raises(NotFittedError):
        flock.Regressor().predict(X)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        flock.Regressor().fit(bad, y)
    with pytest.raises(ValueError):
        flock.Regressor().fit(X, y[:-1])
    model = flock.Regressor(epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="2 features"):
        model.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="members = 0"):
        flock.Regressor(members=0).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        flock.Regressor(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="schedule=.*cosine, constant"):
        flock.Regressor(schedule="linear").fit(X, y)
    with pytest.raises(ValueError, match="dtype"):
        flock.Regressor(dtype="float16").fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        flock.Classifier().fit(X, np.zeros(40, dtype=int))


def test_pickle_clone_joblib_and_files(tmp_path):
    X, y = sine(100)
    model = flock.Regressor(epochs=10).fit(X, y)
    expected = model.predict(X)
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.predict(X), expected)
    joblib.dump(model, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict(X), expected)
    fresh = clone(model)
    assert not hasattr(fresh, "model_") and fresh.get_params() == model.get_params()
    model.save(tmp_path / "m.safetensors")
    loaded = flock.load(tmp_path / "m.safetensors")
    assert isinstance(loaded, flock.Regressor) and loaded.epochs == 10
    np.testing.assert_array_equal(loaded.predict(X), expected)


def test_float32_and_threads_never_change_the_bits():
    X, y = sine(200)
    one = flock.Regressor(epochs=20, n_jobs=1).fit(X, y).predict(X)
    two = flock.Regressor(epochs=20, n_jobs=2).fit(X, y).predict(X)
    np.testing.assert_array_equal(one, two)
    X32 = X.astype(np.float32)
    model = flock.Regressor(dtype="float32").fit(X32, y)
    assert model.model_.dtype == "float32"
    assert np.sqrt(np.mean((model.predict(X32) - y) ** 2)) < 0.3
    # A Fortran-ordered or integer X is converted, not refused.
    model.predict(np.asfortranarray(X32))
    flock.Regressor(epochs=2).fit(np.arange(40).reshape(20, 2), np.arange(20.0))


def test_cross_validation_and_pipelines():
    X, y = sine(200)
    scores = cross_val_score(flock.Regressor(epochs=40), X, y, cv=5)
    assert scores.shape == (5,) and np.all(scores > 0.8)
    pipe = Pipeline([("scale", StandardScaler()), ("ensemble", flock.Regressor(epochs=40))])
    assert pipe.fit(X, y).score(X, y) > 0.9


def flock_binary():
    path = os.environ.get("FLOCK_BIN")
    if path:
        return path
    for profile in ["release", "debug"]:
        candidate = ROOT / "target" / profile / "flock"
        if candidate.exists():
            return str(candidate)
    pytest.fail("no flock binary: build it (cargo build -p flock-runner) or set FLOCK_BIN")


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_same_bits_as_flock_fit(tmp_path, task):
    X, y = sine(150, seed=3)
    if task == "classification":
        y = np.where(y > 0.3, "high", np.where(y < -0.3, "low", "mid"))
    data = tmp_path / "data.csv"
    with open(data, "w") as f:
        f.write("a,b,target\n")
        for row, t in zip(X, y):
            f.write(f"{float(row[0])!r},{float(row[1])!r},{t}\n")
    out = tmp_path / "cli.safetensors"
    task_args = ["--task", "classify"] if task == "classification" else []
    subprocess.run(
        [flock_binary(), "fit", str(data), "--target", "target", "--test", str(data),
         "--epochs", "15", "--seed", "7", "--out", str(out), "--quiet", *task_args],
        check=True, capture_output=True,
    )
    cli = flock.load(out)
    ours = (flock.Classifier if task == "classification" else flock.Regressor)(epochs=15, seed=7).fit(X, y)
    if task == "classification":
        assert cli.classes_.tolist() == ours.classes_.tolist()
        np.testing.assert_array_equal(cli.predict_proba(X), ours.predict_proba(X))
    else:
        a = cli.predict_uncertainty(X)
        b = ours.predict_uncertainty(X)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(cli.loss_curve_, ours.loss_curve_)


def test_ctrl_c_stops_a_long_fit_and_leaves_python_usable():
    X, y = sine(2000)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        flock.Regressor(epochs=100_000, hidden=(64, 64)).fit(X, y)
    assert time.monotonic() - start < 5.0
    assert flock.Regressor(epochs=2).fit(X[:50], y[:50]).predict(X[:3]).shape == (3,)


def test_mixture_scores_match_a_naive_reference():
    rng = np.random.default_rng(0)
    M, n = 4, 200
    means = rng.normal(size=(M, n))
    stds = rng.uniform(0.5, 2.0, size=(M, n))
    y = rng.normal(size=n)
    s = flock.metrics.mixture_scores(y, means, stds)
    dens = np.exp(-0.5 * ((y - means) / stds) ** 2) / (stds * np.sqrt(2 * np.pi))
    assert s["nll"] == pytest.approx(-np.mean(np.log(dens.mean(axis=0))), rel=1e-12)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((means.mean(axis=0) - y) ** 2)), rel=1e-12)
    from math import erf

    cdf = np.vectorize(lambda z: 0.5 * (1 + erf(z / np.sqrt(2))))
    pit = cdf((y - means) / stds).mean(axis=0)
    np.testing.assert_allclose(s["pit"], pit, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        flock.metrics.mixture_scores(y, means, stds[:, :10])


def test_simd_level_names_the_build():
    # Built for the machine it runs on (the workspace builds with target-cpu=native).
    flags = open("/proc/cpuinfo").read().split()
    expected = "avx512f+fma" if "avx512f" in flags else "avx2+fma" if "avx2" in flags and "fma" in flags else None
    if expected:
        assert flock.simd_level() == expected
    else:
        assert flock.simd_level() in {"avx2", "avx", "sse2", "scalar"}


def test_readme_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it from Python", 1)[1]
    assert "pip install ./python" in section.split("```python", 1)[0]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    assert "[" in capsys.readouterr().out
