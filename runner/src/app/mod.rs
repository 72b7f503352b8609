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

/// Writes the figure `svg` to `path` as SVG or PNG (by the extension), atomically.
///
/// # Errors
/// An unknown extension, a rendering or an I/O error.
pub fn write_figure(path: &Path, svg: String) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = encode_figure(svg, FigureFormat::of(path)?)?;
    write_atomically(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}
