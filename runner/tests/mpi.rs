//! `flock uci --distributed` and `flock fit --distributed` under `mpirun` with 1, 2 and 3 ranks
//! (the `mpi` feature, Open MPI) — splits, members, rows, and 2-D layouts of them: the same
//! scores and model bytes as one process, printed once;
//! a failing split on one rank stops every rank with the split named.
//! Run: `cargo test -p flock-runner --features mpi --test mpi`.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A dataset folder in the UCI layout: y = 2·x₀ − x₁ + noise, 60 rows, 5 splits (uneven blocks
/// over 2 and 3 ranks); `bad_split` trains on one row repeated (a constant target: its fit
/// fails, on the rank that runs it only).
fn write_dataset(dir: &Path, bad_split: Option<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    let data: String = (0..60)
        .map(|i| {
            let (a, b) = ((i % 7) as f64 / 3.0, (i % 5) as f64 / 2.0);
            let noise = ((i * 37 % 11) as f64 - 5.0) / 50.0;
            format!("{a} {b} {}\n", 2.0 * a - b + noise)
        })
        .collect();
    std::fs::write(dir.join("data.txt"), data).unwrap();
    std::fs::write(dir.join("index_features.txt"), "0\n1\n").unwrap();
    std::fs::write(dir.join("index_target.txt"), "2\n").unwrap();
    std::fs::write(dir.join("n_splits.txt"), "5\n").unwrap();
    std::fs::write(dir.join("n_hidden.txt"), "10\n").unwrap();
    for k in 0..5 {
        let test: Vec<usize> = (0..60).filter(|i| i % 5 == k).collect();
        let mut train: Vec<usize> = (0..60).filter(|i| i % 5 != k).collect();
        if bad_split == Some(k) {
            train = vec![0; 8];
        }
        let lines = |v: &[usize]| v.iter().map(|i| format!("{i}\n")).collect::<String>();
        std::fs::write(dir.join(format!("index_train_{k}.txt")), lines(&train)).unwrap();
        std::fs::write(dir.join(format!("index_test_{k}.txt")), lines(&test)).unwrap();
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const UCI: [&str; 6] = ["--epochs", "4", "--batch-size", "16", "--quiet", "--json"];

/// `mpirun -n ranks flock` with a session directory of its own: Open MPI's default,
/// `/tmp/ompi.<host>.<uid>`, is shared by every job of the user, and this binary's tests run
/// their jobs at once — two `orte_init`s creating it together have failed with "File exists".
fn mpirun_command(ranks: usize) -> Command {
    static JOBS: AtomicUsize = AtomicUsize::new(0);
    let job = JOBS.fetch_add(1, Ordering::Relaxed);
    let session = std::env::temp_dir()
        .join(format!("flock-mpi-{}-sessions", std::process::id()))
        .join(job.to_string());
    std::fs::create_dir_all(&session).unwrap();
    let mut command = Command::new("mpirun");
    command
        .env("OMPI_MCA_orte_tmpdir_base", session)
        .args(["--allow-run-as-root", "--oversubscribe", "-n"])
        .arg(ranks.to_string())
        .arg(env!("CARGO_BIN_EXE_flock"));
    command
}

fn mpirun(ranks: usize, args: &[&str]) -> Output {
    mpirun_command(ranks)
        .args(args)
        .output()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev)")
}

/// The JSON report without its timings.
fn scores(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    assert_eq!(text.lines().count(), 1, "one report, printed once:\n{text}");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for d in v["datasets"].as_array_mut().unwrap() {
        d.as_object_mut().unwrap().remove("seconds");
    }
    v
}

#[test]
fn splits_over_ranks_give_one_process_scores() {
    let dir = temp("good").join("toy");
    write_dataset(&dir, None);
    let d = dir.to_str().unwrap();
    let one = Command::new(env!("CARGO_BIN_EXE_flock"))
        .args(["uci", d])
        .args(UCI)
        .output()
        .unwrap();
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let want = scores(&one.stdout);
    for ranks in [1, 2, 3] {
        let out = mpirun(
            ranks,
            &[&["uci", d, "--distributed"][..], &UCI[..]].concat(),
        );
        assert!(
            out.status.success(),
            "{ranks} ranks: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(scores(&out.stdout), want, "{ranks} ranks");
    }
    // Splits × members: 2 ranks sharing every split's members; 4 ranks as 2 groups of 2.
    for (ranks, member_ranks) in [(2, "2"), (4, "2")] {
        let out = mpirun(
            ranks,
            &[
                &["uci", d, "--distributed", "--member-ranks", member_ranks][..],
                &UCI[..],
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "{ranks} ranks, {member_ranks} per split: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            scores(&out.stdout),
            want,
            "{ranks} ranks, {member_ranks} per split"
        );
    }
}

#[test]
fn a_failing_split_stops_every_rank_and_is_named() {
    let dir = temp("bad").join("toy");
    write_dataset(&dir, Some(4));
    let started = Instant::now();
    let out = mpirun(
        3,
        &[
            &["uci", dir.to_str().unwrap(), "--distributed"][..],
            &UCI[..],
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    // Split 4 is rank 2's (blocks 0–1, 2–3, 4).
    assert!(
        stderr.contains("rank 2") && stderr.contains("split 4"),
        "{stderr}"
    );
}

/// A regression table (`a,b,y`) and a classification table (`a,b,label`, words): 120 rows.
fn write_tables(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut reg, mut cls) = ("a,b,y\n".to_owned(), "a,b,label\n".to_owned());
    for i in 0..120 {
        let (a, b) = ((i % 13) as f64 / 4.0 - 1.5, (i % 7) as f64 / 3.0 - 1.0);
        let y = 2.0 * a - b + ((i * 37 % 11) as f64 - 5.0) / 40.0;
        reg.push_str(&format!("{a},{b},{y}\n"));
        let label = if y > 0.3 { "up" } else { "down" };
        cls.push_str(&format!("{a},{b},{label}\n"));
    }
    let (r, c) = (dir.join("reg.csv"), dir.join("cls.csv"));
    std::fs::write(&r, reg).unwrap();
    std::fs::write(&c, cls).unwrap();
    (r, c)
}

/// `flock fit --distributed` on 1, 2 and 3 ranks writes the model bytes of one process: MAP
/// (f64, and f32 with per-member batches), VI guides, a classifier; 5 members in uneven blocks.
/// `flock fit ARGS… COMMON… --out OUT` in one process (no MPI): the model file's bytes.
fn one_process_model(args: &[&str], common: &[&str], out: &Path) -> Vec<u8> {
    let one = Command::new(env!("CARGO_BIN_EXE_flock"))
        .arg("fit")
        .args(args)
        .args(common)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    std::fs::read(out).unwrap()
}

#[test]
fn members_over_ranks_give_one_process_model_bytes() {
    let dir = temp("fit");
    let (reg, cls) = write_tables(&dir);
    let (reg, cls) = (reg.to_str().unwrap(), cls.to_str().unwrap());
    let fits: [&[&str]; 4] = [
        &[reg, "--target", "y"],
        &[
            reg,
            "--target",
            "y",
            "--dtype",
            "f32",
            "--data-order",
            "per-member",
        ],
        &[reg, "--target", "y", "--method", "vi"],
        &[cls, "--target", "label", "--task", "classify"],
    ];
    let common = [
        "--members",
        "5",
        "--epochs",
        "5",
        "--batch-size",
        "16",
        "--quiet",
    ];
    for (k, fit) in fits.iter().enumerate() {
        let want = one_process_model(fit, &common, &dir.join(format!("one-{k}.safetensors")));
        for ranks in [1, 2, 3] {
            let out_path = dir.join(format!("ranks{ranks}-{k}.safetensors"));
            let out = mpirun(
                ranks,
                &[
                    &["fit"][..],
                    fit,
                    &common[..],
                    &["--distributed", "--out", out_path.to_str().unwrap()][..],
                ]
                .concat(),
            );
            assert!(
                out.status.success(),
                "{fit:?} on {ranks} ranks: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Rank 0 prints the report once: the training line, the test line, the model.
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.lines().count(), 3, "{fit:?} on {ranks} ranks:\n{text}");
            assert!(
                std::fs::read(&out_path).unwrap() == want,
                "{fit:?} on {ranks} ranks: other model bytes than one process"
            );
        }
    }
}

#[test]
fn a_fit_needs_a_member_per_rank_and_a_grid_of_ranks() {
    let dir = temp("fit-errors");
    let (reg, _) = write_tables(&dir);
    let reg = reg.to_str().unwrap();
    let out = mpirun(
        3,
        &[
            "fit",
            reg,
            "--target",
            "y",
            "--members",
            "2",
            "--distributed",
            "--quiet",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("member per rank"), "{stderr}");
    let out = mpirun(
        3,
        &[
            "fit",
            reg,
            "--target",
            "y",
            "--shard-rows",
            "--row-ranks",
            "2",
            "--distributed",
            "--quiet",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("row_ranks") && stderr.contains("divisor"),
        "{stderr}"
    );
}

/// A fit paused on one rank count resumes on another to the bytes of an uninterrupted
/// one-process fit; the state rank 0 gathers is the one-process fit's state file, byte for byte.
#[test]
fn a_sharded_fit_resumes_on_any_rank_count() {
    let dir = temp("resume");
    let (reg, _) = write_tables(&dir);
    let reg = reg.to_str().unwrap();
    for method in ["map", "vi"] {
        let fit = [
            "fit",
            reg,
            "--target",
            "y",
            "--method",
            method,
            "--members",
            "5",
            "--epochs",
            "6",
            "--batch-size",
            "16",
            "--quiet",
        ];
        let path = |name: &str| dir.join(format!("{method}-{name}.safetensors"));
        let state = |name: &str| dir.join(format!("{method}-{name}.safetensors.state"));
        let one = |extra: &[&str], out: &Path| {
            let o = Command::new(env!("CARGO_BIN_EXE_flock"))
                .args(fit)
                .args(extra)
                .arg("--out")
                .arg(out)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        let ranks = |n: usize, extra: &[&str], out: &Path| {
            let o = mpirun(
                n,
                &[
                    &fit[..],
                    &["--distributed", "--out", out.to_str().unwrap()],
                    extra,
                ]
                .concat(),
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        one(&[], &path("whole"));
        let want = std::fs::read(path("whole")).unwrap();
        one(&["--max-epochs-this-run", "2"], &path("paused-one"));
        ranks(2, &["--max-epochs-this-run", "2"], &path("two"));
        assert!(
            std::fs::read(state("two")).unwrap() == std::fs::read(state("paused-one")).unwrap(),
            "{method}: 2 ranks' gathered state differs from one process's"
        );
        // 2 ranks → 1 process; 2 → 3 ranks → 2; 1 process → 3 ranks.
        std::fs::copy(state("two"), state("to-one")).unwrap();
        one(&["--resume"], &path("to-one"));
        std::fs::copy(state("two"), state("to-three")).unwrap();
        ranks(
            3,
            &["--resume", "--max-epochs-this-run", "1"],
            &path("to-three"),
        );
        ranks(2, &["--resume"], &path("to-three"));
        ranks(3, &["--resume"], &path("paused-one"));
        for name in ["to-one", "to-three", "paused-one"] {
            assert!(
                std::fs::read(path(name)).unwrap() == want,
                "{method}: {name} differs from the uninterrupted fit"
            );
            assert!(!state(name).exists(), "{method}: {name}'s state file stays");
        }
    }
}

/// Rank `rank`'s process among `mpirun`'s children (Open MPI tells each its rank in
/// `OMPI_COMM_WORLD_RANK`).
fn rank_pid(rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let is_flock = String::from_utf8_lossy(&cmdline).contains("flock-kill-test");
            let has_rank = environ.split(|&b| b == 0).any(|v| v == want.as_bytes());
            (is_flock && has_rank).then_some(pid)
        })
}

/// One rank killed mid-fit: the job ends non-zero within seconds naming the rank, and
/// `--resume` from the last checkpoint — on 2 ranks, and on 1 — writes the uninterrupted fit's
/// model bytes.
#[test]
fn a_killed_rank_stops_the_job_and_the_fit_resumes() {
    let dir = temp("kill");
    let (reg, _) = write_tables(&dir);
    let reg = reg.to_str().unwrap();
    // Long enough to be killed mid-fit: 1,200 epochs of 8 steps.
    let fit = [
        "fit",
        reg,
        "--target",
        "y",
        "--members",
        "4",
        "--epochs",
        "1200",
        "--batch-size",
        "16",
        "--quiet",
    ];
    let out = dir.join("flock-kill-test.safetensors");
    let state = dir.join("flock-kill-test.safetensors.state");
    let whole = dir.join("whole.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_flock"))
        .args(fit)
        .arg("--out")
        .arg(&whole)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = std::fs::read(&whole).unwrap();

    let mut job = mpirun_command(2)
        .args(fit)
        .args(["--distributed", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !state.exists() {
        // A job that ended, or hangs, before its first checkpoint is reported with its output.
        let ended = job.try_wait().unwrap();
        if ended.is_none() && started.elapsed() >= Duration::from_secs(60) {
            job.kill().unwrap();
        }
        if ended.is_some() || started.elapsed() >= Duration::from_secs(60) {
            let o = job.wait_with_output().unwrap();
            panic!(
                "no checkpoint after {:?} ({}): {}{}",
                started.elapsed(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = rank_pid(1).expect("rank 1's process");
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let result = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "the job went on without rank 1");
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "took {:?} to stop",
        killed.elapsed()
    );
    assert!(stderr.contains("rank 1"), "{stderr}");
    assert!(!out.exists(), "no model from a broken job");

    let saved = std::fs::read(&state).unwrap();
    for ranks in [2, 1] {
        std::fs::write(&state, &saved).unwrap();
        let o = mpirun(
            ranks,
            &[
                &fit[..],
                &["--distributed", "--resume", "--out", out.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            std::fs::read(&out).unwrap() == want,
            "resumed on {ranks} ranks: other bytes than the uninterrupted fit"
        );
        std::fs::remove_file(&out).unwrap();
    }
}

/// `flock fit --distributed --shard-rows 16` on 1, 2 and 3 ranks writes the model bytes of one
/// process with `--shard-rows 16` (4 chunks of a 50-row batch: uneven blocks over 3 ranks) — and
/// so do 2-D layouts: 4 ranks as 2 member groups × 2 row ranks, 2 ranks as 2 groups of 1.
#[test]
fn rows_over_ranks_give_one_process_model_bytes() {
    let dir = temp("rows");
    let (reg, cls) = write_tables(&dir);
    let (reg, cls) = (reg.to_str().unwrap(), cls.to_str().unwrap());
    let fits: [&[&str]; 2] = [
        &[reg, "--target", "y", "--data-order", "per-member"],
        &[cls, "--target", "label", "--task", "classify"],
    ];
    let common = [
        "--members",
        "3",
        "--epochs",
        "4",
        "--batch-size",
        "50",
        "--quiet",
        "--shard-rows",
        "16",
    ];
    for (k, fit) in fits.iter().enumerate() {
        let want = one_process_model(fit, &common, &dir.join(format!("one-{k}.safetensors")));
        for (ranks, row_ranks) in [(1, "1"), (2, "2"), (3, "3"), (4, "2"), (2, "1")] {
            let out_path = dir.join(format!("rows{ranks}x{row_ranks}-{k}.safetensors"));
            let out = mpirun(
                ranks,
                &[
                    &["fit"][..],
                    fit,
                    &common[..],
                    &["--distributed", "--row-ranks", row_ranks],
                    &["--out", out_path.to_str().unwrap()][..],
                ]
                .concat(),
            );
            assert!(
                out.status.success(),
                "{fit:?} on {ranks} ranks: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                std::fs::read(&out_path).unwrap() == want,
                "{fit:?}, rows over {ranks} ranks ({row_ranks} per member group): other model \
                 bytes than one process"
            );
        }
        // Paused on 2 × 2 ranks, resumed with rows over 3 ranks.
        let out_path = dir.join(format!("resumed-{k}.safetensors"));
        let run = |ranks: usize, extra: &[&str]| {
            let out = mpirun(
                ranks,
                &[
                    &["fit"][..],
                    fit,
                    &common[..],
                    &["--distributed", "--out", out_path.to_str().unwrap()][..],
                    extra,
                ]
                .concat(),
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(4, &["--row-ranks", "2", "--max-epochs-this-run", "2"]);
        run(3, &["--resume"]);
        assert!(
            std::fs::read(&out_path).unwrap() == want,
            "{fit:?}: paused on 2 × 2 ranks, resumed on 3: other bytes than one process"
        );
    }
}
