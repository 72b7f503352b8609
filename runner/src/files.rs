//! The one way flock writes a file: to a temporary name beside it, flushed to disk, then renamed
//! over the old one, so a reader (or a run killed mid-write) sees the old file or the new one,
//! never a part.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name `path` is written under first: `path` with `.partial` appended.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    PathBuf::from(temporary)
}

/// Writes `bytes` to `path` atomically: to [`partial_path`], `fsync`ed, renamed over `path`, and
/// the directory `fsync`ed so the rename itself survives a crash.
///
/// ```
/// let path = std::env::temp_dir().join(format!("flock-doc-files-{}.txt", std::process::id()));
/// flock_runner::files::write_atomically(&path, b"first")?;
/// flock_runner::files::write_atomically(&path, b"second")?;
/// assert_eq!(std::fs::read(&path)?, b"second");
/// assert!(!flock_runner::files::partial_path(&path).exists());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The I/O error of the first step that failed (the old file, if any, is then untouched).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = partial_path(path);
    {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Directories cannot be opened for syncing on every platform; the rename is done either way.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
