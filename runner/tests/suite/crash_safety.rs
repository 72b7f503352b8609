//! A `flock fit` killed with SIGKILL at any moment — mid-epoch, mid-checkpoint, mid-model-write —
//! leaves its model and state files absent or complete (the previous version or the new one,
//! never a part), and `--resume` then finishes with the bytes of an uninterrupted fit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use flock_runner::AnyModel;
use flock_runner::checkpoint::Checkpoint;

/// Kills to make (runs that finish before their kill moment do not count).
const KILLS: usize = 50;

fn data(dir: &Path) -> PathBuf {
    let path = dir.join("data.csv");
    let mut text = String::from("a,b,c,y\n");
    for i in 0..3000 {
        let (a, b, c) = (
            i as f64 * 0.01,
            ((i * 7) % 13) as f64,
            (i as f64 * 0.3).sin(),
        );
        text.push_str(&format!("{a},{b},{c},{}\n", a.sin() + 0.1 * b - c));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn fit(data: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flock"))
        .args([
            "fit",
            data.to_str().unwrap(),
            "--target",
            "y",
            "--epochs",
            "15",
        ])
        .args(["--hidden", "64,64", "--resume", "--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The model and state files are each absent or complete.
fn check_files(out: &Path, reference: &[u8], kill: usize) {
    if out.exists() {
        let bytes = std::fs::read(out).unwrap();
        assert_eq!(
            bytes, reference,
            "kill {kill}: the model file is not the complete model"
        );
        AnyModel::load(out).unwrap();
    }
    let mut state = out.as_os_str().to_owned();
    state.push(".state");
    let state = PathBuf::from(state);
    if state.exists() {
        Checkpoint::read(&state)
            .unwrap_or_else(|e| panic!("kill {kill}: a partial state file: {e}"));
    }
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_file() {
    let dir = std::env::temp_dir().join(format!("flock-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = data(&dir);

    let reference_out = dir.join("reference.safetensors");
    let start = Instant::now();
    assert!(fit(&data, &reference_out).wait().unwrap().success());
    let mut duration = start.elapsed();
    let reference = std::fs::read(&reference_out).unwrap();

    // Kill moments spread over a whole fit (a seeded sequence: the test is repeatable).
    let out = dir.join("model.safetensors");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let (mut killed, mut completed) = (0, 0);
    while killed < KILLS {
        assert!(
            killed + completed < 4 * KILLS,
            "{completed} runs finished, {killed} killed"
        );
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let fraction = (state % 1000) as f64 / 1000.0;
        let mut child = fit(&data, &out);
        std::thread::sleep(duration.mul_f64(fraction));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(
                    status.success(),
                    "run {}: the fit failed on its own",
                    killed + completed
                );
                completed += 1;
                // Finished before its kill moment: fits run faster than the reference did (a
                // machine less loaded now); aim the kills earlier.
                duration = duration.mul_f64(0.8);
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        check_files(&out, &reference, killed + completed);
    }
    // Resumed from wherever the last kill left it, the fit ends with the reference's bytes.
    assert!(fit(&data, &out).wait().unwrap().success());
    assert_eq!(std::fs::read(&out).unwrap(), reference);
    eprintln!("{killed} kills; {completed} runs resumed (or restarted) to the end between them");
    // Some runs resumed to the end between kills: their models were checked above.
    assert!(completed > 0, "no run resumed to the end between the kills");
    let _ = std::fs::remove_dir_all(&dir);
}
