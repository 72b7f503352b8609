//! Which code a measurement is of: the commit checked out, and whether the working tree still
//! is that commit. A record names its commit, so one taken from changed files — or from a tree
//! that changed while the benchmarks were being built one after another — would misname its
//! code; `bench` and `fashion` then print what they measured and do not record it.

use crate::run;

/// The commit checked out and the tracked files that differ from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub commit: String,
    /// Paths whose changes could reach a build: everything tracked but Markdown and the
    /// `bench/` record files, which `bench` itself writes.
    pub changed: Vec<String>,
}

/// The working tree's [`Source`] now.
pub(crate) fn source() -> Result<Source, String> {
    let commit = run("git", &["rev-parse", "HEAD"])?.trim().to_owned();
    let status = run("git", &["status", "--porcelain", "--untracked-files=no"])?;
    Ok(Source {
        commit,
        changed: changed_files(&status),
    })
}

/// The paths of `git status --porcelain` lines (`XY path`, or `XY old -> new` for a rename: the
/// new path) whose changes could reach a build.
fn changed_files(porcelain: &str) -> Vec<String> {
    porcelain
        .lines()
        .filter_map(|line| line.get(3..))
        .map(|path| path.rsplit(" -> ").next().unwrap_or(path).trim_matches('"'))
        .filter(|path| !path.ends_with(".md") && !path.starts_with("bench/"))
        .map(str::to_owned)
        .collect()
}

/// Why a run that started at `start` and ended at `end` cannot be recorded as `start.commit`,
/// if it cannot.
pub(crate) fn unrecordable(start: &Source, end: &Source) -> Option<String> {
    let changed = |s: &Source| {
        let shown: Vec<&str> = s.changed.iter().take(5).map(String::as_str).collect();
        let more = s.changed.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    if !start.changed.is_empty() {
        Some(format!(
            "the working tree differs from commit {} in {} (commit the change to record it)",
            short(&start.commit),
            changed(start)
        ))
    } else if end.commit != start.commit {
        Some(format!(
            "the commit checked out changed during the run ({} → {})",
            short(&start.commit),
            short(&end.commit)
        ))
    } else if !end.changed.is_empty() {
        Some(format!(
            "the working tree changed during the run, in {}: later benchmarks may have been \
             built from it",
            changed(end)
        ))
    } else {
        None
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(7)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(commit: &str, changed: &[&str]) -> Source {
        Source {
            commit: commit.to_owned(),
            changed: changed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn markdown_and_records_are_not_changes_to_the_code() {
        let status = " M README.md\n M bench/history.jsonl\n M kernels/src/tanh.rs\n\
                      R  old.rs -> xtask/src/new.rs\nM  docs/performance.md\n";
        assert_eq!(
            changed_files(status),
            vec!["kernels/src/tanh.rs", "xtask/src/new.rs"]
        );
        assert!(changed_files("").is_empty());
    }

    #[test]
    fn only_an_unchanged_tree_at_one_commit_is_recordable() {
        let clean = at("84d62fe0123", &[]);
        assert_eq!(unrecordable(&clean, &clean), None);
        let dirty = at("84d62fe0123", &["kernels/src/simd.rs"]);
        let why = unrecordable(&dirty, &dirty).unwrap();
        assert!(
            why.contains("kernels/src/simd.rs") && why.contains("84d62fe"),
            "{why}"
        );
        let why = unrecordable(&clean, &dirty).unwrap();
        assert!(why.contains("changed during the run"), "{why}");
        let why = unrecordable(&clean, &at("aaaaaaa", &[])).unwrap();
        assert!(why.contains("84d62fe → aaaaaaa"), "{why}");
        let many = at("b", &["1", "2", "3", "4", "5", "6", "7"]);
        assert!(unrecordable(&many, &many).unwrap().contains("5 and 2 more"));
    }
}
