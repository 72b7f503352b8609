//! `flock._flock`: the native half of flock's Python package. It wraps the typed front door
//! (`flock_runner::Regressor` / `Classifier`, `AnyModel`) and does no training of its own; the
//! scikit-learn estimators of `flock/__init__.py` validate their input and call it.
//!
//! Arrays come in as C-contiguous numpy arrays of the model's element type (the Python layer
//! converts anything else) and are read in place; the GIL is released while a fit or a prediction
//! runs, and a fit checks for Ctrl-C (Python's signal handlers) every 50 ms between steps.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flock_kernels::Element;
use flock_metrics::{MixturePredictive, Sigma, exact_scores};
use flock_runner::regressor::{FitHooks, FitOutcome};
use flock_runner::train::{ProgressHook, StepReport};
use flock_runner::{
    AnyClassifier, AnyModel, AnyRegressor, Classifier, DataOrder, Error, FitMethod, FitSpec,
    InputScaling, LearningRateSchedule, Matrix, Regressor, WeightInit,
};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// A flock error as the Python exception scikit-learn's conventions expect: bad values are
/// `ValueError`s with flock's message (which names the argument, row or column).
fn value_error(e: Error) -> PyErr {
    match e {
        Error::Interrupted { step } => {
            PyKeyboardInterrupt::new_err(format!("fit interrupted after step {step}"))
        }
        e => PyValueError::new_err(e.to_string()),
    }
}

/// Checks Python's signal handlers (Ctrl-C) at most every 50 ms; a raised exception stops the
/// fit and is kept to re-raise.
struct SignalCheck<'a> {
    last: Instant,
    raised: &'a Mutex<Option<PyErr>>,
}

impl ProgressHook for SignalCheck<'_> {
    fn update(&mut self, _report: &StepReport) {}

    fn stop_requested(&mut self) -> bool {
        if self.last.elapsed() < Duration::from_millis(50) {
            return false;
        }
        self.last = Instant::now();
        match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(e) => {
                *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                true
            }
        }
    }
}

/// Parses one of a few names, or says which are accepted.
fn choice<V: Copy>(argument: &str, value: &str, choices: &[(&str, V)]) -> PyResult<V> {
    choices
        .iter()
        .find(|(name, _)| *name == value)
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            PyValueError::new_err(format!(
                "{argument}={value:?} is not one of {}",
                names.join(", ")
            ))
        })
}

/// The settings of a fit: flock's recipe for the task, with every keyword that is given
/// replacing its part.
#[allow(clippy::too_many_arguments)]
fn spec_from(
    classification: bool,
    members: Option<usize>,
    hidden: Option<Vec<usize>>,
    activation: Option<&str>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    schedule: Option<&str>,
    prior_weight: Option<f64>,
    method: Option<&str>,
    kl_weight: Option<f64>,
    validation_fraction: Option<f64>,
    input_scaling: Option<&str>,
    data_order: Option<&str>,
    weight_init: Option<&str>,
    seed: Option<u64>,
) -> PyResult<FitSpec> {
    let mut spec = if classification {
        FitSpec::classification()
    } else {
        FitSpec::default()
    };
    if let Some(m) = members {
        spec.members = m;
    }
    if let Some(h) = hidden {
        spec.hidden = h;
    }
    if let Some(a) = activation {
        spec.activation = a
            .parse()
            .map_err(|e| PyValueError::new_err(format!("activation={a:?}: {e}")))?;
    }
    if let Some(e) = epochs {
        spec.epochs = e;
    }
    if let Some(b) = batch_size {
        spec.batch_size = b;
    }
    if let Some(lr) = lr {
        spec.learning_rate = lr;
    }
    if let Some(s) = schedule {
        spec.schedule = choice(
            "schedule",
            s,
            &[
                ("cosine", LearningRateSchedule::CosineDecay),
                ("constant", LearningRateSchedule::Constant),
            ],
        )?;
    }
    if let Some(p) = prior_weight {
        spec.prior_weight = p;
    }
    if let Some(m) = method {
        spec.method = choice(
            "method",
            m,
            &[
                ("map", FitMethod::Map),
                ("vi", FitMethod::Vi(Default::default())),
            ],
        )?;
    }
    if let Some(beta) = kl_weight {
        match &mut spec.method {
            FitMethod::Vi(vi) => vi.kl_weight = beta,
            FitMethod::Map => {
                return Err(PyValueError::new_err(
                    "kl_weight is a setting of method=\"vi\"",
                ));
            }
        }
    }
    if let Some(f) = validation_fraction {
        spec.validation_fraction = f;
    }
    if let Some(s) = input_scaling {
        spec.input_scaling = choice(
            "input_scaling",
            s,
            &[
                ("standardise", InputScaling::Standardise),
                ("as-given", InputScaling::AsGiven),
            ],
        )?;
    }
    if let Some(o) = data_order {
        spec.data_order = DataOrder::from_name(o).ok_or_else(|| {
            let names: Vec<&str> = DataOrder::ALL.iter().map(|d| d.name()).collect();
            PyValueError::new_err(format!(
                "data_order={o:?} is not one of {}",
                names.join(", ")
            ))
        })?;
    }
    if let Some(w) = weight_init {
        spec.weight_init = WeightInit::from_name(w).ok_or_else(|| {
            let names: Vec<&str> = WeightInit::ALL.iter().map(|d| d.name()).collect();
            PyValueError::new_err(format!(
                "weight_init={w:?} is not one of {}",
                names.join(", ")
            ))
        })?;
    }
    if let Some(s) = seed {
        spec.seed = s;
    }
    Ok(spec)
}

/// Which of a regressor and a classifier to fit, with the classifier's classes.
enum Task {
    Regression,
    Classification {
        classes: usize,
        names: Option<Vec<String>>,
    },
}

/// What a fit is asked for besides its data.
struct FitSettings {
    spec: FitSpec,
    task: Task,
    threads: Option<usize>,
    feature_names: Option<Vec<String>>,
}

/// Fits to the C-contiguous `x` of element type `T` and `y` (targets of `T`, read here, or the
/// already checked class indices `labels`), with the GIL released.
fn fit_arrays<T: Element + numpy::Element + Sync>(
    py: Python<'_>,
    x: &PyReadonlyArray2<'_, T>,
    y: &Bound<'_, PyAny>,
    labels: Option<&[usize]>,
    settings: FitSettings,
    raised: &Mutex<Option<PyErr>>,
) -> PyResult<Result<AnyModel, Error>>
where
    AnyModel: From<Fitted<T>>,
{
    let (xs, features) = rows(x)?;
    let targets: Option<PyReadonlyArray1<'_, T>> = match labels {
        None => Some(y.extract()?),
        Some(_) => None,
    };
    let y = match (labels, &targets) {
        (Some(l), _) => YValues::Labels(l),
        (None, Some(t)) => YValues::Targets(
            t.as_slice()
                .map_err(|_| PyTypeError::new_err("y must be contiguous"))?,
        ),
        (None, None) => unreachable!("targets are read when there are no labels"),
    };
    Ok(py.detach(|| fit_typed((xs, features), y, settings, raised)))
}

/// Fits in element type `T`: `x` `[rows, features]` row-major (with its width), `y` `[rows]` (targets, or class
/// indices as `T` values checked to be whole).
fn fit_typed<T: Element>(
    (x, features): (&[T], usize),
    y: YValues<'_, T>,
    settings: FitSettings,
    raised: &Mutex<Option<PyErr>>,
) -> Result<AnyModel, Error>
where
    AnyModel: From<Fitted<T>>,
{
    let FitSettings {
        spec,
        task,
        threads,
        feature_names,
    } = settings;
    let x = Matrix::new(x, features)?;
    let hooks = || FitHooks {
        progress: Some(Box::new(SignalCheck {
            last: Instant::now(),
            raised,
        })),
        ..FitHooks::default()
    };
    match (task, y) {
        (Task::Regression, YValues::Targets(y)) => {
            let mut r = Regressor::<T>::from_spec(spec);
            if let Some(t) = threads {
                r = r.threads(t);
            }
            if let Some(names) = feature_names {
                r = r.feature_names(names);
            }
            match r.fit_with(&x, y, hooks())? {
                FitOutcome::Fitted(m) => Ok(Fitted::Regressor(*m).into()),
                FitOutcome::Paused { steps, .. } => Err(Error::Interrupted { step: steps }),
            }
        }
        (Task::Classification { classes, names }, YValues::Labels(labels)) => {
            let mut c = Classifier::<T>::from_spec(spec).classes(classes);
            if let Some(t) = threads {
                c = c.threads(t);
            }
            if let Some(names) = feature_names {
                c = c.feature_names(names);
            }
            if let Some(names) = names {
                c = c.class_names(names);
            }
            match c.fit_with(&x, labels, hooks())? {
                FitOutcome::Fitted(m) => Ok(Fitted::Classifier(*m).into()),
                FitOutcome::Paused { steps, .. } => Err(Error::Interrupted { step: steps }),
            }
        }
        _ => unreachable!("fit pairs each task with its kind of y"),
    }
}

/// What a fit of element type `T` gives.
enum Fitted<T> {
    Regressor(flock_runner::FittedRegressor<T>),
    Classifier(flock_runner::FittedClassifier<T>),
}

impl From<Fitted<f64>> for AnyModel {
    fn from(f: Fitted<f64>) -> AnyModel {
        match f {
            Fitted::Regressor(m) => AnyModel::Regressor(AnyRegressor::F64(m)),
            Fitted::Classifier(m) => AnyModel::Classifier(AnyClassifier::F64(m)),
        }
    }
}

impl From<Fitted<f32>> for AnyModel {
    fn from(f: Fitted<f32>) -> AnyModel {
        match f {
            Fitted::Regressor(m) => AnyModel::Regressor(AnyRegressor::F32(m)),
            Fitted::Classifier(m) => AnyModel::Classifier(AnyClassifier::F32(m)),
        }
    }
}

/// `y` of a fit: targets for a regressor, class indices for a classifier.
enum YValues<'a, T> {
    Targets(&'a [T]),
    Labels(&'a [usize]),
}

/// The rows of a C-contiguous 2-D array, with their width.
fn rows<'a, T: numpy::Element>(x: &'a PyReadonlyArray2<'_, T>) -> PyResult<(&'a [T], usize)> {
    let features = x.shape()[1];
    let values = x
        .as_slice()
        .map_err(|_| PyTypeError::new_err("x must be a C-contiguous array"))?;
    Ok((values, features))
}

/// Fits a regressor (`classes=None`) or a classifier (`classes=K`: `y` holds class indices
/// `0..K`) to `x` `[rows, features]`, float32 or float64 (the model's element type); every
/// keyword left `None` takes flock's recipe for the task. The GIL is released while it trains;
/// Ctrl-C stops it within 50 ms of a step with `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(signature = (
    x, y, *, classes=None, class_names=None, members=None, hidden=None, activation=None,
    epochs=None, batch_size=None, lr=None, schedule=None, prior_weight=None, method=None,
    kl_weight=None, validation_fraction=None, input_scaling=None, data_order=None,
    weight_init=None, seed=None, n_jobs=None, feature_names=None
))]
#[allow(clippy::too_many_arguments)]
fn fit(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    classes: Option<usize>,
    class_names: Option<Vec<String>>,
    members: Option<usize>,
    hidden: Option<Vec<usize>>,
    activation: Option<&str>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    schedule: Option<&str>,
    prior_weight: Option<f64>,
    method: Option<&str>,
    kl_weight: Option<f64>,
    validation_fraction: Option<f64>,
    input_scaling: Option<&str>,
    data_order: Option<&str>,
    weight_init: Option<&str>,
    seed: Option<u64>,
    n_jobs: Option<usize>,
    feature_names: Option<Vec<String>>,
) -> PyResult<Model> {
    let spec = spec_from(
        classes.is_some(),
        members,
        hidden,
        activation,
        epochs,
        batch_size,
        lr,
        schedule,
        prior_weight,
        method,
        kl_weight,
        validation_fraction,
        input_scaling,
        data_order,
        weight_init,
        seed,
    )?;
    let task = match classes {
        None => Task::Regression,
        Some(classes) => Task::Classification {
            classes,
            names: class_names,
        },
    };
    let raised = Mutex::new(None);
    let labels: Option<Vec<usize>> = match &task {
        Task::Regression => None,
        Task::Classification { .. } => {
            let y: PyReadonlyArray1<'_, i64> = y.extract()?;
            let y = y
                .as_slice()
                .map_err(|_| PyTypeError::new_err("y must be contiguous"))?;
            let mut labels = Vec::with_capacity(y.len());
            for (row, &v) in y.iter().enumerate() {
                labels.push(usize::try_from(v).map_err(|_| {
                    PyValueError::new_err(format!("y[{row}] = {v}: expected a class index ≥ 0"))
                })?);
            }
            Some(labels)
        }
    };
    let settings = FitSettings {
        spec,
        task,
        threads: n_jobs,
        feature_names,
    };
    let labels = labels.as_deref();
    let result = if let Ok(x64) = x.extract::<PyReadonlyArray2<'_, f64>>() {
        fit_arrays(py, &x64, y, labels, settings, &raised)?
    } else {
        let x32: PyReadonlyArray2<'_, f32> = x
            .extract()
            .map_err(|_| PyTypeError::new_err("x must be a 2-D float64 or float32 array"))?;
        fit_arrays(py, &x32, y, labels, settings, &raised)?
    };
    if let Some(e) = raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result.map(|inner| Model { inner }).map_err(value_error)
}

/// A fitted flock model — regressor or classifier, float32 or float64 — as its model file holds
/// it. Picklable (through the model file's bytes).
#[pyclass(module = "flock", name = "Model", frozen)]
struct Model {
    inner: AnyModel,
}

/// Runs `f` on the rows of `x` (a C-contiguous `[rows, features]` array of `T`) with the GIL
/// released.
fn on_rows<T: numpy::Element + Sync, R: Send>(
    x: &Bound<'_, PyAny>,
    f: impl FnOnce(Matrix<'_, T>) -> Result<R, Error> + Send,
) -> PyResult<R> {
    let a: PyReadonlyArray2<'_, T> = x.extract()?;
    let (values, features) = rows(&a)?;
    let matrix = Matrix::new(values, features).map_err(value_error)?;
    x.py().detach(|| f(matrix)).map_err(value_error)
}

fn not_a(task: &str) -> Error {
    Error::InvalidArgument {
        name: "model",
        value: task.into(),
        expected: "the other task's model (a regressor predicts means, a classifier probabilities)",
    }
}

/// A `[rows, columns]` numpy array of `values` (row-major).
fn matrix<'py>(
    py: Python<'py>,
    values: Vec<f64>,
    columns: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let rows = values.len().checked_div(columns).unwrap_or(0);
    PyArray1::from_vec(py, values).reshape([rows, columns])
}

#[pymethods]
impl Model {
    /// `"regression"` or `"classification"`.
    #[getter]
    fn task(&self) -> &'static str {
        match self.inner {
            AnyModel::Regressor(_) => "regression",
            AnyModel::Classifier(_) => "classification",
        }
    }

    /// `"float64"` or `"float32"`: the element type it was fitted in (inputs are converted).
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.inner {
            AnyModel::Regressor(AnyRegressor::F64(_))
            | AnyModel::Classifier(AnyClassifier::F64(_)) => "float64",
            _ => "float32",
        }
    }

    /// Features each row has.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.features()
    }

    /// The features' names, when the fit was given them.
    #[getter]
    fn feature_names(&self) -> Option<Vec<String>> {
        self.inner.feature_names().map(<[String]>::to_vec)
    }

    /// Classes (a classifier's), else `None`.
    #[getter]
    fn n_classes(&self) -> Option<usize> {
        match &self.inner {
            AnyModel::Classifier(c) => Some(c.classes()),
            AnyModel::Regressor(_) => None,
        }
    }

    /// The classes' names (a classifier's, when the fit was given them).
    #[getter]
    fn class_names(&self) -> Option<Vec<String>> {
        match &self.inner {
            AnyModel::Classifier(c) => c.class_names().map(<[String]>::to_vec),
            AnyModel::Regressor(_) => None,
        }
    }

    /// The members' training losses, `[members, steps]`.
    fn losses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        fn curves<T: Element>(r: &flock_runner::map::EnsembleResult<T>) -> (Vec<f64>, usize) {
            (r.losses.iter().map(|v| v.to_f64()).collect(), r.steps)
        }
        let (values, steps) = match &self.inner {
            AnyModel::Regressor(AnyRegressor::F64(m)) => curves(m.result()),
            AnyModel::Regressor(AnyRegressor::F32(m)) => curves(m.result()),
            AnyModel::Classifier(AnyClassifier::F64(m)) => curves(m.result()),
            AnyModel::Classifier(AnyClassifier::F32(m)) => curves(m.result()),
        };
        matrix(py, values, steps.max(1))
    }

    /// A regressor's predictive at each row of `x`: `(mean, std, epistemic_std, aleatoric_std)`,
    /// each `[rows]`, on the target's scale.
    #[allow(clippy::type_complexity)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<f64>>,
    )> {
        let p = self.regression_at(x)?;
        Ok((
            PyArray1::from_slice(py, p.mean()),
            PyArray1::from_slice(py, p.std()),
            PyArray1::from_vec(py, p.epistemic_std()),
            PyArray1::from_vec(py, p.aleatoric_std()),
        ))
    }

    /// A regressor's predictive quantiles: `[rows, len(q)]`, column `j` the `q[j]`-quantile of
    /// the mixture.
    fn quantiles<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        q: Vec<f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let p = self.regression_at(x)?;
        let n = p.len();
        let mut out = vec![0.0; n * q.len()];
        for (j, &qj) in q.iter().enumerate() {
            let column = p.quantile(qj).map_err(value_error)?;
            for (i, v) in column.into_iter().enumerate() {
                out[i * q.len() + j] = v;
            }
        }
        matrix(py, out, q.len().max(1))
    }

    /// A classifier's predictive at each row of `x`: `(probs [rows, classes], entropy [rows],
    /// mutual_information [rows])` — the mixture of the members' categoricals, its entropy and
    /// the members' disagreement.
    #[allow(clippy::type_complexity)]
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(
        Bound<'py, PyArray2<f64>>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<f64>>,
    )> {
        let p = match self.classifier()? {
            AnyClassifier::F64(m) => on_rows::<f64, _>(x, |xs| m.predict_proba(&xs))?,
            AnyClassifier::F32(m) => on_rows::<f32, _>(x, |xs| m.predict_proba(&xs))?,
        };
        Ok((
            matrix(py, p.probs().to_vec(), p.classes())?,
            PyArray1::from_vec(py, p.entropy()),
            PyArray1::from_vec(py, p.mutual_information()),
        ))
    }

    /// Exact scores of the predictive at `x` against `y`: a regressor's mixture scores (RMSE,
    /// NLL, 95 % coverage and width, CRPS, interval score, calibration error), a classifier's
    /// accuracy, NLL, Brier and ECEs (`y` class indices).
    fn scores<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        match &self.inner {
            AnyModel::Regressor(r) => {
                let s = match r {
                    AnyRegressor::F64(m) => {
                        let (a, t): (PyReadonlyArray2<'_, f64>, PyReadonlyArray1<'_, f64>) =
                            (x.extract()?, y.extract()?);
                        let (v, f) = rows(&a)?;
                        let t = t.as_slice().map_err(|_| PyTypeError::new_err("y"))?;
                        py.detach(|| m.score(&Matrix::new(v, f)?, t))
                    }
                    AnyRegressor::F32(m) => {
                        let (a, t): (PyReadonlyArray2<'_, f32>, PyReadonlyArray1<'_, f32>) =
                            (x.extract()?, y.extract()?);
                        let (v, f) = rows(&a)?;
                        let t = t.as_slice().map_err(|_| PyTypeError::new_err("y"))?;
                        py.detach(|| m.score(&Matrix::new(v, f)?, t))
                    }
                }
                .map_err(value_error)?;
                d.set_item("rmse", s.rmse_obs)?;
                d.set_item("nll", s.nll)?;
                d.set_item("coverage_95", s.coverage_95)?;
                d.set_item("width_95", s.sharpness_95)?;
                d.set_item("crps", s.crps)?;
                d.set_item("interval_score_95", s.interval_score_95)?;
                d.set_item("calibration_error", s.calibration_error)?;
            }
            AnyModel::Classifier(_) => {
                let labels: Vec<usize> = y.extract()?;
                let s = match self.classifier()? {
                    AnyClassifier::F64(m) => on_rows::<f64, _>(x, |xs| m.score(&xs, &labels))?,
                    AnyClassifier::F32(m) => on_rows::<f32, _>(x, |xs| m.score(&xs, &labels))?,
                };
                d.set_item("accuracy", s.accuracy)?;
                d.set_item("nll", s.nll)?;
                d.set_item("brier", s.brier)?;
                d.set_item("ece", s.ece)?;
                d.set_item("adaptive_ece", s.adaptive_ece)?;
                d.set_item("classwise_ece", s.classwise_ece)?;
            }
        }
        Ok(d)
    }

    /// Writes the model file `flock fit` writes (safetensors; atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let bytes = self.inner.to_bytes();
        py.detach(|| flock_runner::files::write_atomically(&path, &bytes))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", path.display())))
    }

    /// The model file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// A model from a model file's bytes.
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<Model> {
        AnyModel::from_bytes(bytes)
            .map(|inner| Model { inner })
            .map_err(value_error)
    }

    /// Pickling: the model file's bytes, read back by `Model.from_bytes`.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        Ok((from_bytes, (slf.get().to_bytes(py),)))
    }

    /// The settings it was fitted with, as the estimators' keywords.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        spec_dict(py, self.fit_spec())
    }

    fn __repr__(&self) -> String {
        let spec = self.fit_spec();
        format!(
            "Model(task={:?}, dtype={:?}, members={}, hidden={:?}, n_features={})",
            self.task(),
            self.dtype(),
            spec.members,
            spec.hidden,
            self.n_features()
        )
    }
}

impl Model {
    fn regressor(&self) -> PyResult<&AnyRegressor> {
        match &self.inner {
            AnyModel::Regressor(r) => Ok(r),
            AnyModel::Classifier(_) => Err(value_error(not_a("a classifier"))),
        }
    }

    fn classifier(&self) -> PyResult<&AnyClassifier> {
        match &self.inner {
            AnyModel::Classifier(c) => Ok(c),
            AnyModel::Regressor(_) => Err(value_error(not_a("a regressor"))),
        }
    }

    /// A regressor's predictive at the rows of `x`.
    fn regression_at(&self, x: &Bound<'_, PyAny>) -> PyResult<flock_runner::Prediction> {
        match self.regressor()? {
            AnyRegressor::F64(m) => on_rows::<f64, _>(x, |xs| m.predict(&xs)),
            AnyRegressor::F32(m) => on_rows::<f32, _>(x, |xs| m.predict(&xs)),
        }
    }

    fn fit_spec(&self) -> &FitSpec {
        match &self.inner {
            AnyModel::Regressor(r) => r.spec(),
            AnyModel::Classifier(AnyClassifier::F64(m)) => m.spec(),
            AnyModel::Classifier(AnyClassifier::F32(m)) => m.spec(),
        }
    }
}

/// Reads a model file (written by `flock fit`, `Model.save` or the Rust library).
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    py.detach(|| AnyModel::load(&path))
        .map(|inner| Model { inner })
        .map_err(value_error)
}

/// The SIMD instructions this build of the module was compiled for (e.g. `"avx512f+fma"`).
#[pyfunction]
fn simd_level() -> &'static str {
    flock_kernels::SIMD_LEVEL
}

/// flock's recipe for a task (`"regression"` or `"classification"`) as a dict of the
/// estimators' keywords — the defaults the Python estimators state.
#[pyfunction]
fn default_spec<'py>(py: Python<'py>, task: &str) -> PyResult<Bound<'py, PyDict>> {
    let spec = match task {
        "regression" => FitSpec::default(),
        "classification" => FitSpec::classification(),
        other => {
            return Err(PyValueError::new_err(format!(
                "task={other:?} is not one of regression, classification"
            )));
        }
    };
    spec_dict(py, &spec)
}

/// A spec as the estimators' keywords.
fn spec_dict<'py>(py: Python<'py>, spec: &FitSpec) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("members", spec.members)?;
    d.set_item("hidden", spec.hidden.clone())?;
    d.set_item("activation", spec.activation.name())?;
    d.set_item("epochs", spec.epochs)?;
    d.set_item("batch_size", spec.batch_size)?;
    d.set_item("lr", spec.learning_rate)?;
    d.set_item(
        "schedule",
        match spec.schedule {
            LearningRateSchedule::Constant => "constant",
            LearningRateSchedule::CosineDecay => "cosine",
        },
    )?;
    d.set_item("prior_weight", spec.prior_weight)?;
    d.set_item(
        "method",
        match spec.method {
            FitMethod::Map => "map",
            FitMethod::Vi(_) => "vi",
        },
    )?;
    if let FitMethod::Vi(vi) = spec.method {
        d.set_item("kl_weight", vi.kl_weight)?;
    }
    d.set_item("validation_fraction", spec.validation_fraction)?;
    d.set_item(
        "input_scaling",
        match spec.input_scaling {
            InputScaling::Standardise => "standardise",
            InputScaling::AsGiven => "as-given",
        },
    )?;
    d.set_item("data_order", spec.data_order.name())?;
    d.set_item("weight_init", spec.weight_init.name())?;
    d.set_item("seed", spec.seed)?;
    Ok(d)
}

/// Exact scores of an equal-weight Gaussian mixture predictive against `y` `[n]`: `means` and
/// `stds` are `[members, n]` (each member's predictive mean and standard deviation per point).
/// Returns the dict of `Model.scores` for a regressor plus the PIT values and the coverage and
/// width curves over their `alphas`.
#[pyfunction]
fn mixture_scores<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f64>,
    means: PyReadonlyArray2<'py, f64>,
    stds: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let shape = means.shape().to_vec();
    if stds.shape() != shape.as_slice() {
        return Err(PyValueError::new_err(format!(
            "stds has shape {:?}, means {:?}: expected the same",
            stds.shape(),
            shape
        )));
    }
    let (members, n) = (shape[0], shape[1]);
    let means = means
        .as_slice()
        .map_err(|_| PyTypeError::new_err("means"))?;
    let stds = stds
        .as_slice()
        .map_err(|_| PyTypeError::new_err("stds"))?
        .to_vec();
    let y = y.as_slice().map_err(|_| PyTypeError::new_err("y"))?;
    let s = py
        .detach(|| {
            let p = MixturePredictive::new(means, members, n, Sigma::PerComponent(stds))?;
            exact_scores(&p, y, None)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let d = PyDict::new(py);
    d.set_item("rmse", s.rmse_obs)?;
    d.set_item("nll", s.nll)?;
    d.set_item("coverage_95", s.coverage_95)?;
    d.set_item("width_95", s.sharpness_95)?;
    d.set_item("crps", s.crps)?;
    d.set_item("interval_score_95", s.interval_score_95)?;
    d.set_item("calibration_error", s.calibration_error)?;
    d.set_item("pit", PyArray1::from_vec(py, s.pit))?;
    d.set_item("alphas", PyArray1::from_vec(py, s.alphas))?;
    d.set_item("coverage_curve", PyArray1::from_vec(py, s.coverage_curve))?;
    d.set_item("width_curve", PyArray1::from_vec(py, s.width_curve))?;
    Ok(d)
}

/// The module (`_flock`; `_flock_v3` / `_flock_v4` for the portable wheel's other
/// instruction-set levels).
#[pymodule]
#[cfg_attr(feature = "module-v3", pyo3(name = "_flock_v3"))]
#[cfg_attr(feature = "module-v4", pyo3(name = "_flock_v4"))]
fn _flock(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(default_spec, m)?)?;
    m.add_function(wrap_pyfunction!(mixture_scores, m)?)?;
    Ok(())
}
