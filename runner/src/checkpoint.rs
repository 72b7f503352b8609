//! Checkpoints in the safetensors format: readable by Python's `safetensors` (member axis first),
//! written atomically, and read back bit for bit — or refused with a typed error when truncated,
//! corrupted or made for another model.
//!
//! Layout: an 8-byte little-endian header length, a JSON header mapping each tensor name to its
//! `dtype`, `shape` and `data_offsets` (plus `__metadata__`, string to string), then the raw
//! little-endian data. flock writes one tensor per parameter leaf, stacked over members
//! (`[E, …shape]`, the layout JAX and equinox use), and the loss history as `losses` `[E, T]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use flock_autograd::{ParamLayout, Parameters};
use flock_ensemble::EnsembleState;
use flock_kernels::Element;
use flock_optim::{GradientTransformation, MemberState};
use serde_json::{Map, Value, json};

use crate::files::write_atomically;
use crate::map::{Divergence, EnsembleResult};
use crate::train::{BestParams, Snapshot, Training};

/// Why a checkpoint could not be written or read.
#[derive(Debug)]
pub enum CheckpointError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The bytes are not a safetensors file (truncated, corrupted header, offsets out of range).
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// The file is valid but holds another model (a leaf missing, another shape or dtype).
    Mismatch {
        /// What differs.
        reason: String,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io(e) => write!(f, "checkpoint: {e}"),
            CheckpointError::Corrupt { reason } => write!(f, "checkpoint is corrupt: {reason}"),
            CheckpointError::Mismatch { reason } => {
                write!(f, "checkpoint is for another model: {reason}")
            }
        }
    }
}

impl std::error::Error for CheckpointError {}

fn corrupt(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        reason: reason.into(),
    }
}

fn mismatch(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Mismatch {
        reason: reason.into(),
    }
}

fn dtype<T: Element>() -> &'static str {
    if T::NAME == "f32" { "F32" } else { "F64" }
}

/// One tensor to write: name, shape, values (in the element type or in f64).
struct Tensor<'a, T> {
    name: String,
    shape: Vec<usize>,
    values: Values<'a, T>,
}

enum Values<'a, T> {
    Element(&'a [T]),
    F64(&'a [f64]),
}

impl<T: Element> Values<'_, T> {
    fn dtype(&self) -> &'static str {
        match self {
            Values::Element(_) => dtype::<T>(),
            Values::F64(_) => "F64",
        }
    }
    fn bytes(&self) -> usize {
        match self {
            Values::Element(v) => std::mem::size_of_val(*v),
            Values::F64(v) => std::mem::size_of_val(*v),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Values::Element(values) => {
                for v in *values {
                    if T::NAME == "f32" {
                        out.extend_from_slice(&(v.to_f64() as f32).to_le_bytes());
                    } else {
                        out.extend_from_slice(&v.to_f64().to_le_bytes());
                    }
                }
            }
            Values::F64(values) => {
                for v in *values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
}

/// Serialises tensors and metadata into safetensors bytes.
fn encode<T: Element>(tensors: &[Tensor<'_, T>], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = Map::new();
    let mut offset = 0usize;
    for t in tensors {
        let bytes = t.values.bytes();
        header.insert(
            t.name.clone(),
            json!({"dtype": t.values.dtype(), "shape": t.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), json!(metadata));
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    // Pad the header with spaces to a multiple of 8 bytes (allowed by the format).
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for t in tensors {
        t.values.write(&mut out);
    }
    out
}

/// A parsed checkpoint: the header and the data section.
#[derive(Debug)]
pub struct Checkpoint {
    header: Map<String, Value>,
    data: Vec<u8>,
}

impl Checkpoint {
    /// Parses safetensors bytes, checking every offset against the data.
    ///
    /// # Errors
    /// [`CheckpointError::Corrupt`] for anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let len_bytes: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("shorter than the 8-byte header length"))?;
        let header_len = u64::from_le_bytes(len_bytes);
        let header_end = 8usize
            .checked_add(
                usize::try_from(header_len).map_err(|_| corrupt("header length overflows"))?,
            )
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| corrupt(format!("header of {header_len} bytes runs past the end")))?;
        let text = std::str::from_utf8(&bytes[8..header_end])
            .map_err(|_| corrupt("header is not UTF-8"))?;
        let header = match serde_json::from_str::<Value>(text.trim_end()) {
            Ok(Value::Object(map)) => map,
            _ => return Err(corrupt("header is not a JSON object")),
        };
        let data = bytes[header_end..].to_vec();
        for (name, entry) in &header {
            if name == "__metadata__" {
                continue;
            }
            let (start, end) = offsets(entry)
                .ok_or_else(|| corrupt(format!("tensor {name}: bad data_offsets")))?;
            if start > end || end > data.len() {
                return Err(corrupt(format!(
                    "tensor {name}: bytes {start}..{end} outside the {} bytes of data",
                    data.len()
                )));
            }
        }
        Ok(Checkpoint { header, data })
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] or [`CheckpointError::Corrupt`].
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::from_bytes(&std::fs::read(path).map_err(CheckpointError::Io)?)
    }

    /// The dtype (`"F32"`, `"F64"`, …) of tensor `name`, if the file holds it.
    pub fn dtype(&self, name: &str) -> Option<&str> {
        self.header.get(name)?.get("dtype")?.as_str()
    }

    /// A metadata value.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.header.get("__metadata__")?.get(key)?.as_str()
    }

    /// Tensor `name` as values of `T`, checking its dtype and shape.
    ///
    /// # Errors
    /// [`CheckpointError::Mismatch`] when it is missing or has another dtype or shape.
    pub fn tensor<T: Element>(
        &self,
        name: &str,
        shape: &[usize],
    ) -> Result<Vec<T>, CheckpointError> {
        let entry = self
            .header
            .get(name)
            .ok_or_else(|| mismatch(format!("no tensor {name:?}")))?;
        let found_dtype = entry.get("dtype").and_then(Value::as_str).unwrap_or("?");
        if found_dtype != dtype::<T>() {
            return Err(mismatch(format!(
                "tensor {name:?} is {found_dtype}, expected {}",
                dtype::<T>()
            )));
        }
        let found_shape: Option<Vec<usize>> =
            entry.get("shape").and_then(Value::as_array).map(|dims| {
                dims.iter()
                    .filter_map(|d| d.as_u64().map(|d| d as usize))
                    .collect()
            });
        if found_shape.as_deref() != Some(shape) {
            return Err(mismatch(format!(
                "tensor {name:?} has shape {found_shape:?}, expected {shape:?}"
            )));
        }
        let (start, end) =
            offsets(entry).ok_or_else(|| corrupt(format!("tensor {name}: bad data_offsets")))?;
        let width = std::mem::size_of::<T>();
        let count = element_count(shape)
            .filter(|c| c.checked_mul(width).is_some())
            .ok_or_else(|| corrupt(format!("tensor {name:?}: shape {shape:?} overflows")))?;
        if end - start != count * width {
            return Err(corrupt(format!(
                "tensor {name:?} holds {} bytes for {count} values",
                end - start
            )));
        }
        Ok(self.data[start..end]
            .chunks_exact(width)
            .map(|b| {
                if width == 4 {
                    T::from_f64(f64::from(f32::from_le_bytes(
                        b.try_into().unwrap_or([0; 4]),
                    )))
                } else {
                    T::from_f64(f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                }
            })
            .collect())
    }

    /// The parameters of `members` members laid out by `layout`.
    ///
    /// # Errors
    /// [`CheckpointError::Mismatch`] when a leaf is missing or shaped differently.
    pub fn params<T: Element>(
        &self,
        layout: &ParamLayout,
        members: usize,
    ) -> Result<Parameters<T>, CheckpointError> {
        // What the layout needs, against what the file holds, before anything is allocated: a
        // file that claims huge shapes or member counts is refused, not trusted.
        let mut needed = 0usize;
        for leaf in layout.leaves() {
            let mut shape = vec![members];
            shape.extend_from_slice(leaf.shape.dims());
            needed = element_count(&shape)
                .and_then(|c| c.checked_mul(std::mem::size_of::<T>()))
                .and_then(|bytes| needed.checked_add(bytes))
                .ok_or_else(|| corrupt(format!("{members} members of this layout overflow")))?;
        }
        if needed > self.data.len() {
            return Err(corrupt(format!(
                "{members} members of this layout need {needed} bytes of parameters; the file \
                 holds {}",
                self.data.len()
            )));
        }
        let mut params = Parameters::zeros(layout.clone(), members);
        for leaf in layout.leaves() {
            let mut shape = vec![members];
            shape.extend_from_slice(leaf.shape.dims());
            let values = self.tensor::<T>(&leaf.name, &shape)?;
            let id = layout
                .find(&leaf.name)
                .ok_or_else(|| mismatch(&leaf.name))?;
            params
                .set_leaf_stacked(id, &values)
                .map_err(|e| mismatch(e.to_string()))?;
        }
        Ok(params)
    }
}

impl Checkpoint {
    /// A result saved by [`save_result`], back as an [`EnsembleResult`] (parameters laid out by
    /// `layout` and the loss curves; divergence reports are not saved, so none come back) —
    /// ready for [`EnsembleResult::select`] and [`EnsembleResult::merge`].
    ///
    /// # Errors
    /// [`CheckpointError::Mismatch`] when the file is not a saved result of this layout.
    pub fn result<T: Element>(
        &self,
        layout: &ParamLayout,
    ) -> Result<EnsembleResult<T>, CheckpointError> {
        let count = |key: &str| -> Result<usize, CheckpointError> {
            self.metadata(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| mismatch(format!("no `{key}` count in the metadata")))
        };
        let (members, steps) = (count("members")?, count("steps")?);
        Ok(EnsembleResult {
            params: self.params(layout, members)?,
            losses: self.tensor::<T>("losses", &[members, steps])?,
            steps,
            stopped_early: false,
            diverged: Vec::new(),
        })
    }
}

/// The number of values of `shape`, if it fits a `usize`.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn offsets(entry: &Value) -> Option<(usize, usize)> {
    let o = entry.get("data_offsets")?.as_array()?;
    Some((o.first()?.as_u64()? as usize, o.get(1)?.as_u64()? as usize))
}

/// Saves a run's parameters (one tensor per leaf, `[E, …]`), its loss history (`losses`,
/// `[E, T]`) and `metadata` (plus the step count) to `path`.
///
/// ```
/// use flock_autograd::{ParamLayout, Parameters};
/// use flock_runner::checkpoint::{Checkpoint, save_result};
/// use flock_runner::map::EnsembleResult;
/// let mut layout = ParamLayout::new();
/// layout.add("w", [2])?;
/// let params = Parameters::from_values(layout.clone(), 2, vec![1.0, 2.0, 3.0, f64::MIN_POSITIVE])?;
/// let result = EnsembleResult { params, losses: vec![0.5; 6], steps: 3, stopped_early: false, diverged: vec![] };
/// let path = std::env::temp_dir().join("flock-doc-checkpoint.safetensors");
/// save_result(&path, &result, &[("model", "example")])?;
/// let back = Checkpoint::read(&path)?;
/// assert_eq!(back.params::<f64>(&layout, 2)?, result.params);
/// assert_eq!(back.metadata("model"), Some("example"));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`CheckpointError::Io`].
pub fn save_result<T: Element>(
    path: &Path,
    result: &EnsembleResult<T>,
    metadata: &[(&str, &str)],
) -> Result<(), CheckpointError> {
    write_atomically(path, &result_bytes(result, metadata)).map_err(CheckpointError::Io)
}

/// The bytes [`save_result`] writes (read back with [`Checkpoint::from_bytes`]).
pub fn result_bytes<T: Element>(result: &EnsembleResult<T>, metadata: &[(&str, &str)]) -> Vec<u8> {
    let params = &result.params;
    let members = params.members();
    let stacked = leaf_tensors(params);
    let mut tensors = element_tensors(&stacked);
    tensors.push(Tensor {
        name: "losses".into(),
        shape: vec![members, result.steps],
        values: Values::Element(&result.losses),
    });
    let mut meta = metadata_map(metadata);
    meta.insert("steps".into(), result.steps.to_string());
    meta.insert("members".into(), members.to_string());
    encode(&tensors, &meta)
}

/// Borrowed tensors of the element type for `(name, shape, values)` triples.
fn element_tensors<T>(stacked: &[(String, Vec<usize>, Vec<T>)]) -> Vec<Tensor<'_, T>> {
    stacked
        .iter()
        .map(|(name, shape, values)| Tensor {
            name: name.clone(),
            shape: shape.clone(),
            values: Values::Element(values),
        })
        .collect()
}

/// The caller's metadata as the header's string map.
fn metadata_map(metadata: &[(&str, &str)]) -> BTreeMap<String, String> {
    metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One tensor per leaf (`[E, …]`), stacked from member-major parameters.
fn leaf_tensors<T: Element>(params: &Parameters<T>) -> Vec<(String, Vec<usize>, Vec<T>)> {
    let members = params.members();
    params
        .layout()
        .leaves()
        .iter()
        .map(|leaf| {
            let mut shape = vec![members];
            shape.extend_from_slice(leaf.shape.dims());
            let id = params.layout().find(&leaf.name).expect("own leaf");
            (
                leaf.name.clone(),
                shape,
                params.leaf_stacked(id).expect("own leaf"),
            )
        })
        .collect()
}

/// The version of the optimizer-state tag a training state records (`{version}:{tag}`, with
/// [`MemberState::tag`]); bump it when a state's saved values change meaning.
pub const OPTIMIZER_STATE_VERSION: &str = "flock-optim-state/1";

/// Writes a training state — parameters, the optimizer's state (tensor `optimizer_state`, f64,
/// with its tag in the metadata), the losses so far (`losses_so_far`, `[E, step]`), each
/// member's best score and parameters when kept (`best_scores`, `best_params`), the frozen and
/// diverged members and the random streams' positions — to `path`, atomically. This is the one
/// writer of training states: [`Checkpointing`](crate::train::Checkpointing) hooks and
/// [`EnsembleMAP::save`](crate::map::EnsembleMAP::save) both come here, and
/// [`Checkpoint::training`] reads it back.
///
/// # Errors
/// [`CheckpointError::Io`].
pub fn write_training<T: Element>(
    path: &Path,
    snapshot: &Snapshot<'_, T>,
) -> Result<(), CheckpointError> {
    write_atomically(path, &training_bytes(snapshot)).map_err(CheckpointError::Io)
}

/// The bytes [`write_training`] writes (read back with [`Checkpoint::from_bytes`] and
/// [`Checkpoint::training`]).
pub fn training_bytes<T: Element>(snapshot: &Snapshot<'_, T>) -> Vec<u8> {
    let params = snapshot.params;
    let members = params.members();
    let step = snapshot.step;
    let stacked = leaf_tensors(params);
    let mut tensors = element_tensors(&stacked);
    tensors.push(Tensor {
        name: "optimizer_state".into(),
        shape: vec![snapshot.optimizer_state.len()],
        values: Values::F64(snapshot.optimizer_state),
    });
    // The loop keeps losses step-major; the file holds them member-major like `losses`.
    let mut losses = Vec::with_capacity(members * step);
    for e in 0..members {
        losses.extend(snapshot.losses.iter().skip(e).step_by(members.max(1)));
    }
    tensors.push(Tensor {
        name: "losses_so_far".into(),
        shape: vec![members, step],
        values: Values::Element(&losses),
    });
    if let Some(best) = snapshot.best {
        tensors.push(Tensor {
            name: "best_scores".into(),
            shape: vec![members],
            values: Values::Element(best.scores()),
        });
        tensors.push(Tensor {
            name: "best_params".into(),
            shape: vec![members, params.layout().member_size()],
            values: Values::Element(best.params().values()),
        });
    }
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(",");
    let mut meta = BTreeMap::new();
    meta.insert("step".into(), step.to_string());
    meta.insert("members".into(), members.to_string());
    meta.insert(
        "optimizer_state_tag".into(),
        format!("{OPTIMIZER_STATE_VERSION}:{}", snapshot.optimizer_tag),
    );
    meta.insert(
        "stale".into(),
        list(&mut snapshot.stale.iter().map(usize::to_string)),
    );
    meta.insert(
        "frozen".into(),
        list(
            &mut snapshot
                .frozen
                .iter()
                .enumerate()
                .filter(|(_, f)| **f)
                .map(|(e, _)| e.to_string()),
        ),
    );
    meta.insert("diverged".into(), divergence_list(snapshot.diverged));
    if let Some(streams) = snapshot.streams {
        meta.insert(
            "stream_positions".into(),
            list(&mut streams.iter().map(u64::to_string)),
        );
    }
    encode(&tensors, &meta)
}

impl Checkpoint {
    /// A comma-separated list in the metadata (`None` when the entry is missing).
    fn metadata_list<V: std::str::FromStr>(
        &self,
        key: &str,
    ) -> Result<Option<Vec<V>>, CheckpointError>
    where
        V::Err: fmt::Display,
    {
        let Some(text) = self.metadata(key) else {
            return Ok(None);
        };
        text.split(',')
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse()
                    .map_err(|e| corrupt(format!("metadata {key:?}: {item:?}: {e}")))
            })
            .collect::<Result<Vec<V>, _>>()
            .map(Some)
    }

    /// The run a training state written by [`write_training`] holds, restored for `optimizer`
    /// over `members` members laid out by `layout`, and its random streams' positions (when it
    /// recorded them). Files written before the optimizer-state tag (with only a Rust type name)
    /// are accepted when their optimizer state has exactly the length this optimizer's has.
    ///
    /// # Errors
    /// [`CheckpointError::Mismatch`] when the parameters or the optimizer state do not fit (the
    /// tag names another optimizer), [`CheckpointError::Corrupt`] for malformed entries.
    #[allow(clippy::type_complexity)]
    pub fn training<T: Element, O: GradientTransformation<T>>(
        &self,
        optimizer: &O,
        layout: &ParamLayout,
        members: usize,
    ) -> Result<(Training<T, O::State>, Option<Vec<u64>>), CheckpointError> {
        let params = self.params::<T>(layout, members)?;
        let step: usize = self
            .metadata("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| mismatch("no step count: not a training state"))?;
        let mut state = EnsembleState::from_params(params.clone(), optimizer)
            .map_err(|e| mismatch(e.to_string()))?;
        let expected_tag = format!("{OPTIMIZER_STATE_VERSION}:{}", state.opt_state().tag());
        match (
            self.metadata("optimizer_state_tag"),
            self.metadata("optimizer_state_type"),
        ) {
            (Some(found), _) if found == expected_tag => {}
            (Some(found), _) => {
                return Err(mismatch(format!(
                    "the optimizer state is {found:?}, this optimizer's is {expected_tag:?} (another optimizer)"
                )));
            }
            // Written before the tag: the exact length check below is what is left.
            (None, Some(_)) => {}
            (None, None) => return Err(mismatch("no optimizer state tag: not a training state")),
        }
        let entry_len = self
            .header
            .get("optimizer_state")
            .and_then(|e| e.get("shape"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| mismatch("no optimizer_state tensor"))? as usize;
        let saved = self.tensor::<f64>("optimizer_state", &[entry_len])?;
        let mut src: &[f64] = &saved;
        state
            .opt_state_mut()
            .load(&mut src)
            .map_err(|e| mismatch(e.to_string()))?;
        if !src.is_empty() {
            return Err(mismatch(format!(
                "{} optimizer-state values left over (another optimizer?)",
                src.len()
            )));
        }
        let mut training = Training::new(state);
        training.step = step;
        // Member-major in the file, step-major in the loop; a state saved without its losses
        // (before they were kept) has NaN for them.
        training.losses = vec![T::NAN; members * step];
        if self.header.contains_key("losses_so_far") {
            let losses = self.tensor::<T>("losses_so_far", &[members, step])?;
            for (e, curve) in losses.chunks_exact(step.max(1)).enumerate() {
                for (t, &loss) in curve.iter().enumerate() {
                    training.losses[t * members + e] = loss;
                }
            }
        }
        let scores_name = ["best_scores", "best_held_out_nll"]
            .into_iter()
            .find(|name| self.header.contains_key(*name));
        if let Some(name) = scores_name {
            let scores = self.tensor::<T>(name, &[members])?;
            let values = self.tensor::<T>("best_params", &[members, layout.member_size()])?;
            let best = Parameters::from_values(layout.clone(), members, values)
                .map_err(|e| mismatch(e.to_string()))?;
            training.best =
                Some(BestParams::from_parts(scores, best).map_err(|e| mismatch(e.to_string()))?);
        }
        if let Some(stale) = self.metadata_list::<usize>("stale")? {
            if stale.len() != members {
                return Err(corrupt(format!(
                    "metadata \"stale\" has {} members, the state {members}",
                    stale.len()
                )));
            }
            training.stale = stale;
        }
        for e in self.metadata_list::<usize>("frozen")?.unwrap_or_default() {
            *training
                .frozen
                .get_mut(e)
                .ok_or_else(|| corrupt(format!("frozen member {e} of {members}")))? = true;
        }
        if let Some(text) = self.metadata("diverged") {
            training.diverged = parse_divergences(text)?;
        }
        // Written by EnsembleVI before the positions became part of every training state.
        let streams = match self.metadata_list::<u64>("stream_positions")? {
            Some(streams) => Some(streams),
            None => self.metadata_list::<u64>("vi_noise_draws")?,
        };
        if let Some(streams) = &streams
            && streams.len() != members
        {
            return Err(mismatch(format!(
                "the random streams of {} members are saved, this ensemble has {members}",
                streams.len()
            )));
        }
        Ok((training, streams))
    }
}

/// Divergence reports as a checkpoint's `diverged` metadata holds them: `member@step,…`.
pub(crate) fn divergence_list(diverged: &[Divergence]) -> String {
    diverged
        .iter()
        .map(|d| format!("{}@{}", d.member, d.step))
        .collect::<Vec<_>>()
        .join(",")
}

/// The reports of [`divergence_list`]'s text.
///
/// # Errors
/// [`CheckpointError::Corrupt`] naming an item that is not `member@step`.
pub(crate) fn parse_divergences(text: &str) -> Result<Vec<Divergence>, CheckpointError> {
    text.split(',')
        .filter(|i| !i.is_empty())
        .map(|item| {
            item.split_once('@')
                .and_then(|(m, s)| {
                    Some(Divergence {
                        member: m.parse().ok()?,
                        step: s.parse().ok()?,
                    })
                })
                .ok_or_else(|| corrupt(format!("metadata \"diverged\": {item:?}")))
        })
        .collect()
}
