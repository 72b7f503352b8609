//! The `flock` application (the `cli` feature): what only the command needs, on top of the
//! library.
//!
//! - [`cli`]: the command line (`demo`, `fit`, `predict`, `uci`) and its `main`;
//! - [`uci`]: the UCI regression benchmark protocol, beside the published numbers;
//! - [`seed`] and [`patterns`]: the seed tutorial's problem and its three ways to drive the
//!   Layer 1 primitives (the `demo` command and the examples);
//! - [`progress`]: the progress bars long runs draw on stderr.

mod classify_bench;
pub mod cli;
mod fit;
pub mod patterns;
mod predict;
pub mod progress;
pub mod seed;
pub mod uci;

use std::path::Path;

use flock_metrics::{FigureFormat, encode_figure};

use crate::files::write_atomically;

/// Refuses an output path that is one of the command's own inputs (`inputs`: what each is, and
/// its path), which writing would destroy — `flock predict model data --out model` would replace
/// the model with its predictions. Paths are compared after resolving links and `..`; an output
/// that does not exist yet cannot be an input.
///
/// # Errors
/// A message naming the option, the path and the input it would overwrite.
pub(crate) fn refuse_to_overwrite(
    option: &str,
    out: &Path,
    inputs: &[(&str, &Path)],
) -> Result<(), Box<dyn std::error::Error>> {
    let Ok(target) = out.canonicalize() else {
        return Ok(());
    };
    for (what, input) in inputs {
        if input.canonicalize().is_ok_and(|input| input == target) {
            return Err(format!(
                "{option} {}: that is the {what} this command reads; writing there would destroy it \
                 (choose another path)",
                out.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Creates the folder a command writes its figures to (and its parents), before any long work,
/// so an unwritable `--out` fails at once and by name.
///
/// # Errors
/// The I/O error, naming the folder.
pub(crate) fn create_output_folder(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: cannot create the output folder: {e}", dir.display()).into())
}

/// Writes the figure `svg` to `path` as SVG or PNG (by the extension), atomically.
///
/// # Errors
/// An unknown extension, a rendering or an I/O error.
pub fn write_figure(path: &Path, svg: String) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = encode_figure(svg, FigureFormat::of(path)?)?;
    write_atomically(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}
