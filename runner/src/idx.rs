//! IDX files — the format of MNIST and Fashion-MNIST — raw or gzip-compressed: a magic number
//! (`0x00 0x00 type ndims`), `ndims` big-endian `u32` sizes, then the values. Every size and
//! length is checked against the bytes there are before anything is allocated for them, so a
//! truncated, inconsistent or hostile file is a typed error, never a panic or a huge allocation.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an IDX file could not be read.
#[derive(Debug)]
pub enum IdxError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid IDX file (or its gzip stream is broken).
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An images file and a labels file that do not belong together.
    Mismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// What differs.
        reason: String,
    },
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            IdxError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
            IdxError::Mismatch {
                images,
                labels,
                reason,
            } => write!(
                f,
                "{} and {} do not belong together: {reason}",
                images.display(),
                labels.display()
            ),
        }
    }
}

impl std::error::Error for IdxError {}

/// An array of unsigned bytes read from an IDX file: its sizes and its values, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The sizes, outermost first (`[n, 28, 28]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// The most bytes a gzip stream may expand to (larger is refused as not an IDX file of ours).
const MAX_DECOMPRESSED: u64 = 1 << 32;

/// Parses IDX bytes (gzip-compressed when they start with gzip's magic) of unsigned bytes;
/// `path` names the source in errors.
///
/// ```
/// use flock_runner::idx::parse_idx;
/// // Two 1×3 "images".
/// let bytes = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let a = parse_idx(&bytes, "inline".as_ref())?;
/// assert_eq!((a.dims.clone(), a.data.len()), (vec![2, 1, 3], 6));
/// assert!(parse_idx(&bytes[..20], "inline".as_ref()).is_err()); // truncated
/// # Ok::<(), flock_runner::idx::IdxError>(())
/// ```
///
/// # Errors
/// [`IdxError::Invalid`] naming what is wrong: a bad magic number or type, a truncated or
/// overlong body, sizes that overflow, a broken gzip stream.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, IdxError> {
    let invalid = |reason: String| IdxError::Invalid {
        path: path.to_owned(),
        reason: format!("not an IDX file of bytes: {reason}"),
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut raw)
            .map_err(|e| invalid(format!("gzip: {e}")))?;
        if raw.len() as u64 > MAX_DECOMPRESSED {
            return Err(invalid("the gzip stream expands past 4 GiB".into()));
        }
        return parse_idx(&raw, path);
    }
    let header = bytes.get(..4).ok_or_else(|| {
        invalid(format!(
            "{} bytes, shorter than the magic number",
            bytes.len()
        ))
    })?;
    if header[0] != 0 || header[1] != 0 {
        return Err(invalid(format!(
            "magic number {:02x}{:02x}{:02x}{:02x} does not start with two zero bytes",
            header[0], header[1], header[2], header[3]
        )));
    }
    if header[2] != 0x08 {
        return Err(invalid(format!(
            "value type 0x{:02x}: only unsigned bytes (0x08) are read",
            header[2]
        )));
    }
    let ndims = usize::from(header[3]);
    if ndims == 0 {
        return Err(invalid("no dimensions".into()));
    }
    let sizes_end = 4 + 4 * ndims;
    let sizes = bytes.get(4..sizes_end).ok_or_else(|| {
        invalid(format!(
            "{} bytes, too short for {ndims} dimension sizes",
            bytes.len()
        ))
    })?;
    let dims: Vec<usize> = sizes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| invalid(format!("sizes {dims:?} overflow")))?;
    let body = &bytes[sizes_end..];
    if body.len() != count {
        return Err(invalid(format!(
            "sizes {dims:?} need {count} values, the file holds {}",
            body.len()
        )));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Reads an IDX file (raw or `.gz`).
///
/// # Errors
/// [`IdxError::Io`], and as [`parse_idx`].
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxError> {
    let bytes = std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_idx(&bytes, path)
}

/// Labelled images: pixels scaled to `[0, 1]`, `[n, pixels]` row-major, and a label per image.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImages {
    /// Pixels / 255, `[n, pixels]`.
    pub pixels: Vec<f32>,
    /// Values per image (784 for 28×28).
    pub features: usize,
    /// One label per image.
    pub labels: Vec<usize>,
}

impl LabelledImages {
    /// Images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Reads an images file (`[n, h, w]`) and its labels file (`[n]`).
///
/// # Errors
/// As [`read_idx`]; [`IdxError::Mismatch`] when the counts differ or the files' shapes are
/// not images and labels.
pub fn read_labelled_images(images: &Path, labels: &Path) -> Result<LabelledImages, IdxError> {
    let (x, y) = (read_idx(images)?, read_idx(labels)?);
    let mismatch = |reason: String| IdxError::Mismatch {
        images: images.to_owned(),
        labels: labels.to_owned(),
        reason,
    };
    if x.dims.len() < 2 || y.dims.len() != 1 {
        return Err(mismatch(format!(
            "expected images [n, …] and labels [n], found {:?} and {:?}",
            x.dims, y.dims
        )));
    }
    if x.dims[0] != y.dims[0] {
        return Err(mismatch(format!(
            "{} images but {} labels",
            x.dims[0], y.dims[0]
        )));
    }
    let features = x.dims[1..].iter().product();
    Ok(LabelledImages {
        pixels: x.data.iter().map(|&p| f32::from(p) / 255.0).collect(),
        features,
        labels: y.data.iter().map(|&l| usize::from(l)).collect(),
    })
}

/// Reads the whole of a file that may be gzip-compressed (by its magic bytes) as text.
///
/// # Errors
/// [`IdxError::Io`]; [`IdxError::Invalid`] for a broken gzip stream or text that is not UTF-8.
pub fn read_maybe_gzip(path: &Path) -> Result<String, IdxError> {
    let bytes = std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| IdxError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut raw)
            .map_err(|e| invalid(format!("gzip: {e}")))?;
        raw
    } else {
        bytes
    };
    String::from_utf8(raw).map_err(|_| invalid("not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(values);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn raw_and_gzip_files_read_the_same() {
        let bytes = idx(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        let raw = parse_idx(&bytes, "x".as_ref()).unwrap();
        assert_eq!(raw.dims, [3, 2]);
        assert_eq!(parse_idx(&gzip(&bytes), "x".as_ref()).unwrap(), raw);
    }

    /// Every way a file can be wrong is a typed error naming it — and a file that claims far
    /// more values than it holds is refused before anything is allocated for them.
    #[test]
    fn bad_files_are_refused_by_name() {
        let good = idx(&[2, 2], &[1, 2, 3, 4]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0], "shorter than the magic number"),
            (vec![1, 0, 8, 1, 0, 0, 0, 0], "two zero bytes"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 0], "only unsigned bytes"),
            (vec![0, 0, 8, 0], "no dimensions"),
            (
                vec![0, 0, 8, 3, 0, 0, 0, 1],
                "too short for 3 dimension sizes",
            ),
            (
                good[..good.len() - 1].to_vec(),
                "need 4 values, the file holds 3",
            ),
            (
                [&good[..], &[9]].concat(),
                "need 4 values, the file holds 5",
            ),
            // 10¹² values claimed by a 1 KB file.
            (
                [idx(&[1_000_000, 1_000_000], &[]), vec![0; 1000]].concat(),
                "need 1000000000000 values, the file holds 1000",
            ),
            (idx(&[u32::MAX, u32::MAX, u32::MAX], &[]), "overflow"),
            (vec![0x1f, 0x8b, 1, 2, 3], "gzip"),
        ];
        for (bytes, expected) in cases {
            let err = parse_idx(&bytes, "f.idx".as_ref()).unwrap_err().to_string();
            assert!(
                err.starts_with("f.idx: ") && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn images_and_labels_must_agree() {
        let dir = std::env::temp_dir().join(format!("flock-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (images, labels) = (dir.join("i.gz"), dir.join("l"));
        std::fs::write(&images, gzip(&idx(&[2, 1, 2], &[0, 255, 51, 102]))).unwrap();
        std::fs::write(&labels, idx(&[2], &[7, 3])).unwrap();
        let set = read_labelled_images(&images, &labels).unwrap();
        assert_eq!(set.pixels, [0.0, 1.0, 0.2, 0.4]);
        assert_eq!((set.features, set.labels.clone()), (2, vec![7, 3]));
        std::fs::write(&labels, idx(&[3], &[7, 3, 1])).unwrap();
        let err = read_labelled_images(&images, &labels)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 images but 3 labels"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
