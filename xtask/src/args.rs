//! The command line: the usage text, the tasks it names, and their parsing.

use std::path::PathBuf;

use crate::{ab, history_file};

pub(crate) const USAGE: &str = "\
usage: cargo xtask bench [--compare] [--vs-jax] [--history FILE]
       cargo xtask compare OLD NEW [--simd LEVEL] [--history FILE]
       cargo xtask ab OLD NEW [--bench NAME]... [--filter TEXT] [--pairs N]
       cargo xtask vs-jax ID [--pairs N]
       cargo xtask standings [--check]
       cargo xtask fashion [--epochs N] [--train-images N] [--skip-sklearn]
       cargo xtask wheel
       cargo xtask fuzz [--seconds N]
       cargo xtask optax-fixtures

  bench            run the benchmark suite, print one table, append a record to
                   bench/history.jsonl and rewrite the README's standings table from it (about
                   nine minutes; with --history FILE, the README is left alone). A record
                   names its commit: with changed tracked files (Markdown and bench/ aside),
                   or a tree that changes during the run, the table is printed and nothing
                   recorded
  --compare        show each figure's change against the last record of this CPU and SIMD level,
                   as measured and at equal peak (the two runs' FMA peaks taken out)
  --vs-jax         also run the same workloads in JAX (pinned in xtask/jax/requirements.txt,
                   installed into target/jax-venv) and print JAX / flock ratios
  --history FILE   the history file (default bench/history.jsonl)

  compare          the last record of commit NEW against the last of commit OLD on the same
                   CPU and SIMD level, as bench --compare prints them, without running anything
  --simd LEVEL     NEW's record at this SIMD level (avx512f+fma, avx2+fma, ...; default: its
                   last record's)

  ab               build the benchmarks at commits OLD and NEW (git worktrees and builds under
                   <CARGO_TARGET_DIR or target>/ab, with the environment's RUSTFLAGS) and run
                   them in N pairs, alternating which goes first; print each figure's B / A
                   ratio over the pairs (median and quartiles of the fastest samples' ratios,
                   median of the medians' ratios) and whether B is faster, slower or within
                   the noise (a two-sided sign test over the pairs, at 5 %)
  --bench NAME     seed_step, workloads, kernels, log_joint or gflops (repeatable; default
                   seed_step and workloads; a rate's ratio is A / B, so below 1 B is faster)
  --filter TEXT    passed to the bench binaries (a divan filter, a workloads figure id such
                   as wide_step.f64, or a gflops shape such as 128→128)
  --pairs N        pairs to run (default 10; six is the fewest a sign test can call)

  vs-jax           one step figure (ID, e.g. wide_step.f64.t2) in flock and the same workload
                   in JAX, in N alternated pairs (default 6): each pair's JAX / flock, their
                   median and quartiles, and how many pairs reach 2×
  --pairs N        pairs to run

  standings        rewrite the README's table of where flock stands on each machine and build
                   from bench/history.jsonl
  --check          only check that the README's table is the history file's

  fashion          Fashion-MNIST side by side in one run: flock classify-bench (5 members,
                   f32), the same ensemble in JAX + equinox + optax, and scikit-learn's
                   MLPClassifier ×5 (xtask/jax/fashion.py); appends to bench/fashion.jsonl
                   (from a committed tree only, as bench)
  --epochs N       epochs for all three (default 20)
  --train-images N train on the first N images (a quick run)
  --skip-sklearn   leave scikit-learn out (its ensemble takes the longest)

  wheel            build the portable Python wheel (python/build_wheel.py: the native module
                   for x86-64, x86-64-v3 and x86-64-v4, chosen at import) into target/portable-wheel,
                   with maturin from python/requirements-test.txt in target/py-venv

  fuzz             run every fuzz target of fuzz/ (cargo-fuzz, the nightly toolchain) for
                   N seconds each (default 60) on its corpus; a crash stops with its input
  optax-fixtures   regenerate optim/tests/optax_args/ with the pinned optax of target/jax-venv
                   (xtask/jax/optax_args.py: every optional argument of every schedule and
                   transformation flock implements, each exercised by a case)
  -h, --help       print this help";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Task {
    Help,
    Bench {
        compare: bool,
        vs_jax: bool,
        history: PathBuf,
    },
    Fashion {
        epochs: usize,
        train_images: Option<usize>,
        skip_sklearn: bool,
    },
    Compare {
        old: String,
        new: String,
        simd: Option<String>,
        history: PathBuf,
    },
    VsJax {
        id: String,
        pairs: usize,
    },
    Standings {
        check: bool,
    },
    Ab {
        old: String,
        new: String,
        benches: Vec<ab::Bench>,
        filter: Option<String>,
        pairs: usize,
    },
    Wheel,
    OptaxFixtures,
    Fuzz {
        seconds: u64,
    },
}

/// Parses the arguments after `cargo xtask`.
///
/// The two positional commits `OLD NEW` of `task` (`compare`, `ab`) among its `args`; every
/// argument that starts with `-` goes to `flag` with the rest of the arguments (to take its
/// value from), which answers whether it knew the flag.
///
/// # Errors
/// An unknown flag, a flag's own error, or other than two commits.
pub(crate) fn two_commits<'a>(
    task: &str,
    args: &'a [String],
    mut flag: impl FnMut(&str, &mut std::slice::Iter<'a, String>) -> Result<bool, String>,
) -> Result<(String, String), String> {
    let mut commits = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') {
            commits.push(arg.clone());
        } else if !flag(arg, &mut rest)? {
            return Err(format!("unknown argument {arg:?} for {task}"));
        }
    }
    let [old, new]: [String; 2] = commits
        .try_into()
        .map_err(|_| format!("{task} needs two commits: OLD NEW"))?;
    Ok((old, new))
}

/// The value of `--pairs` (`ab`, `vs-jax`).
///
/// # Errors
/// A missing value, or one that is not a whole number above 0.
fn pairs_value(value: Option<&String>) -> Result<usize, String> {
    value
        .and_then(|n| n.parse().ok())
        .filter(|&n: &usize| n > 0)
        .ok_or_else(|| "--pairs needs a whole number above 0".to_owned())
}

/// # Errors
/// A message naming the argument that is not understood.
pub(crate) fn parse_args(args: &[String]) -> Result<Task, String> {
    if args.is_empty()
        || args
            .iter()
            .any(|a| a == "-h" || a == "--help" || a == "help")
    {
        return Ok(Task::Help);
    }
    match args[0].as_str() {
        "bench" => {
            let (mut compare, mut vs_jax, mut history) = (false, false, None);
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--compare" => compare = true,
                    "--vs-jax" => vs_jax = true,
                    "--history" => {
                        let file = rest.next().ok_or("--history needs a file")?;
                        history = Some(PathBuf::from(file));
                    }
                    other => return Err(format!("unknown argument {other:?} for bench")),
                }
            }
            Ok(Task::Bench {
                compare,
                vs_jax,
                history: history.unwrap_or_else(history_file),
            })
        }
        "compare" => {
            let (mut simd, mut history) = (None, None);
            let (old, new) = two_commits("compare", &args[1..], |flag, rest| {
                match flag {
                    "--simd" => simd = Some(rest.next().ok_or("--simd needs a level")?.clone()),
                    "--history" => {
                        let file = rest.next().ok_or("--history needs a file")?;
                        history = Some(PathBuf::from(file));
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Ok(Task::Compare {
                old,
                new,
                simd,
                history: history.unwrap_or_else(history_file),
            })
        }
        "ab" => {
            let (mut benches, mut filter, mut pairs) = (Vec::new(), None, 10);
            let (old, new) = two_commits("ab", &args[1..], |flag, rest| {
                match flag {
                    "--bench" => {
                        benches.push(ab::bench_named(rest.next().ok_or("--bench needs a name")?)?);
                    }
                    "--filter" => {
                        filter = Some(rest.next().ok_or("--filter needs a text")?.clone())
                    }
                    "--pairs" => {
                        pairs = pairs_value(rest.next())?;
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            if benches.is_empty() {
                benches = vec![ab::bench_named("seed_step")?, ab::bench_named("workloads")?];
            }
            Ok(Task::Ab {
                old,
                new,
                benches,
                filter,
                pairs,
            })
        }
        "vs-jax" => {
            let (mut id, mut pairs) = (None, 6);
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--pairs" => pairs = pairs_value(rest.next())?,
                    flag if flag.starts_with('-') => {
                        return Err(format!("unknown argument {flag:?} for vs-jax"));
                    }
                    figure if id.is_none() => id = Some(figure.to_owned()),
                    extra => return Err(format!("vs-jax takes one figure id, not also {extra:?}")),
                }
            }
            let id = id.ok_or("vs-jax needs a figure id such as wide_step.f64.t2")?;
            crate::vs_jax::jax_id(&id)?;
            Ok(Task::VsJax { id, pairs })
        }
        "standings" => match &args[1..] {
            [] => Ok(Task::Standings { check: false }),
            [flag] if flag == "--check" => Ok(Task::Standings { check: true }),
            [other, ..] => Err(format!("unknown argument {other:?} for standings")),
        },
        "fashion" => {
            let (mut epochs, mut train_images, mut skip_sklearn) = (20, None, false);
            let mut rest = args[1..].iter();
            let number = |flag: &str, value: Option<&String>| -> Result<usize, String> {
                value
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{flag} needs a whole number"))
            };
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--epochs" => epochs = number("--epochs", rest.next())?,
                    "--train-images" => {
                        train_images = Some(number("--train-images", rest.next())?);
                    }
                    "--skip-sklearn" => skip_sklearn = true,
                    other => return Err(format!("unknown argument {other:?} for fashion")),
                }
            }
            Ok(Task::Fashion {
                epochs,
                train_images,
                skip_sklearn,
            })
        }
        "fuzz" => match (args.get(1).map(String::as_str), args.get(2)) {
            (None, _) => Ok(Task::Fuzz { seconds: 60 }),
            (Some("--seconds"), Some(n)) => n
                .parse()
                .map(|seconds| Task::Fuzz { seconds })
                .map_err(|_| "--seconds needs a whole number".to_owned()),
            (Some(other), _) => Err(format!("unknown argument {other:?} for fuzz")),
        },
        "wheel" => match args.get(1) {
            None => Ok(Task::Wheel),
            Some(other) => Err(format!("unknown argument {other:?} for wheel")),
        },
        "optax-fixtures" => match args.get(1) {
            None => Ok(Task::OptaxFixtures),
            Some(other) => Err(format!("unknown argument {other:?} for optax-fixtures")),
        },
        other => Err(format!("unknown task {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_bad_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for help in [
            &[][..],
            &["--help"],
            &["bench", "--help"],
            &["bench", "-h"],
            &["help"],
        ] {
            assert_eq!(parse_args(&args(help)), Ok(Task::Help), "{help:?}");
        }
        let Ok(Task::Bench {
            compare,
            vs_jax,
            history,
        }) = parse_args(&args(&["bench", "--vs-jax", "--history", "h.jsonl"]))
        else {
            panic!("a bench");
        };
        assert_eq!(
            (compare, vs_jax, history),
            (false, true, PathBuf::from("h.jsonl"))
        );
        assert!(
            parse_args(&args(&["bench", "--compar"]))
                .unwrap_err()
                .contains("--compar")
        );
        assert!(parse_args(&args(&["bench", "--history"])).is_err());
        assert!(parse_args(&args(&["bnech"])).unwrap_err().contains("bnech"));
        assert_eq!(
            parse_args(&args(&[
                "compare", "6330b95", "168fa30", "--simd", "avx2+fma"
            ])),
            Ok(Task::Compare {
                old: "6330b95".into(),
                new: "168fa30".into(),
                simd: Some("avx2+fma".into()),
                history: history_file(),
            })
        );
        assert!(
            parse_args(&args(&["compare", "6330b95"]))
                .unwrap_err()
                .contains("two commits")
        );
        assert_eq!(
            parse_args(&args(&["compare", "a", "b", "--smid"])),
            Err(r#"unknown argument "--smid" for compare"#.to_owned())
        );
        assert_eq!(
            parse_args(&args(&["vs-jax", "wide_step.f64.t2", "--pairs", "4"])),
            Ok(Task::VsJax {
                id: "wide_step.f64.t2".into(),
                pairs: 4
            })
        );
        assert!(
            parse_args(&args(&["vs-jax", "wide"]))
                .unwrap_err()
                .contains("wide_step.f64.t2")
        );
        assert!(parse_args(&args(&["vs-jax"])).is_err());
        assert!(parse_args(&args(&["vs-jax", "seed_step.f32.t1", "x"])).is_err());
        assert_eq!(
            parse_args(&args(&["ab", "a", "--pair", "b"])),
            Err(r#"unknown argument "--pair" for ab"#.to_owned())
        );
        let Ok(Task::Ab {
            old,
            new,
            benches,
            filter,
            pairs,
        }) = parse_args(&args(&["ab", "HEAD~1", "HEAD", "--filter", "f64"]))
        else {
            panic!("an ab");
        };
        let names: Vec<&str> = benches.iter().map(|b| b.name).collect();
        assert_eq!(
            (old.as_str(), new.as_str(), names, filter, pairs),
            (
                "HEAD~1",
                "HEAD",
                vec!["seed_step", "workloads"],
                Some("f64".into()),
                10
            )
        );
        let Ok(Task::Ab { benches, pairs, .. }) = parse_args(&args(&[
            "ab", "a", "b", "--bench", "kernels", "--pairs", "3",
        ])) else {
            panic!("an ab");
        };
        assert_eq!((benches[0].name, benches.len(), pairs), ("kernels", 1, 3));
        assert!(
            parse_args(&args(&["ab", "a"]))
                .unwrap_err()
                .contains("two commits")
        );
        assert!(parse_args(&args(&["ab", "a", "b", "--pairs", "0"])).is_err());
        assert!(
            parse_args(&args(&["ab", "a", "b", "--bench", "gflop"]))
                .unwrap_err()
                .contains("unknown bench")
        );
    }
}
