//! The same bits on every FMA machine, end to end: short fits of each kind (regression with the
//! default recipe in f64 and f32, VI, a fixed-σ tanh network on one thread and on two, a
//! classifier), hashed as the model files they save and the predictions they make, against
//! `tests/same_bits.golden`. An AVX-512 build and an AVX2 + FMA build
//! (`RUSTFLAGS="-C target-cpu=x86-64-v3"`, which `.ci/run` also runs) must both pass; the SSE2
//! baseline, without FMA, rounds differently and is not compared.
//!
//! `FLOCK_BLESS=1 cargo test -p flock-runner --test suite same_bits::` rewrites the file (only
//! after a deliberate change of the arithmetic; then check the other width's build against it).

use std::fmt::Write as _;

use flock_autograd::Activation;
use flock_fixtures::Golden;
use flock_runner::{Classifier, FitMethod, Likelihood, Regressor, ViFit};

/// FNV-1a.
fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hash_values(values: &[f64]) -> u64 {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect();
    hash_bytes(&bytes)
}

/// 240 rows of 3 features (a fixed pattern) and a noisy nonlinear target.
fn regression_data() -> (Vec<[f64; 3]>, Vec<f64>) {
    let x: Vec<[f64; 3]> = (0..240)
        .map(|i| {
            let t = i as f64;
            [
                (t * 0.37).sin() * 2.0,
                (t * 0.11).cos(),
                ((i * 7) % 13) as f64 / 6.0 - 1.0,
            ]
        })
        .collect();
    let y = x
        .iter()
        .enumerate()
        .map(|(i, [a, b, c])| (2.0 * a).sin() + b * c + 0.1 * ((i * 17 % 11) as f64 / 5.0 - 1.0))
        .collect();
    (x, y)
}

fn all_hashes() -> String {
    let mut out = String::new();
    let mut line = |name: &str, model: &[u8], prediction: &[f64]| {
        writeln!(
            out,
            "{name} model {:016x} prediction {:016x}",
            hash_bytes(model),
            hash_values(prediction)
        )
        .unwrap();
    };
    let (x, y) = regression_data();

    // The default recipe (5 members, ReLU 50, heteroscedastic, cosine Adam, early stopping).
    let model = Regressor::new().epochs(15).fit(&x, &y).unwrap();
    let p = model.predict(&x).unwrap();
    line(
        "regressor-f64",
        &model.to_bytes(),
        &[p.mean(), p.std()].concat(),
    );

    let x32: Vec<[f32; 3]> = x.iter().map(|r| r.map(|v| v as f32)).collect();
    let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let model = Regressor::new().epochs(15).fit(&x32, &y32).unwrap();
    let p = model.predict(&x32).unwrap();
    line(
        "regressor-f32",
        &model.to_bytes(),
        &[p.mean(), p.std()].concat(),
    );

    // tanh, two hidden layers, a fixed σ: the same bits on one thread and on two.
    for threads in [1, 2] {
        let model = Regressor::new()
            .hidden(&[32, 32])
            .activation(Activation::Tanh)
            .likelihood(Likelihood::Fixed { sigma: 0.1 })
            .members(8)
            .epochs(10)
            .threads(threads)
            .fit(&x, &y)
            .unwrap();
        let p = model.predict(&x).unwrap();
        line(
            "regressor-tanh-fixed",
            &model.to_bytes(),
            &[p.mean(), p.std()].concat(),
        );
    }

    let model = Regressor::new()
        .method(FitMethod::Vi(ViFit {
            samples: 3,
            ..ViFit::default()
        }))
        .epochs(10)
        .fit(&x, &y)
        .unwrap();
    let p = model.predict(&x).unwrap();
    line(
        "regressor-vi",
        &model.to_bytes(),
        &[p.mean(), p.std()].concat(),
    );

    let labels: Vec<usize> = y
        .iter()
        .map(|&v| usize::from(v > 0.0) + usize::from(v > 1.0))
        .collect();
    let model = Classifier::new().epochs(10).fit(&x32, &labels).unwrap();
    let p = model.predict_proba(&x32).unwrap();
    line("classifier-f32", &model.to_bytes(), p.probs());
    out
}

#[test]
fn short_fits_give_the_committed_bits() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/same_bits.golden");
    let got = all_hashes();
    let lines: Vec<&str> = got.lines().collect();
    // The thread count never changes a bit.
    assert_eq!(lines[2], lines[3], "one thread and two differ");
    if !cfg!(target_feature = "fma") {
        println!(
            "{}: no FMA in this build; its roundings differ from the FMA builds' and are not \
             compared",
            path.display()
        );
        return;
    }
    match flock_fixtures::check_golden(&path, &got) {
        Ok(Golden::Matches) => {}
        Ok(Golden::Blessed) => println!("wrote {}", path.display()),
        Err(e) => panic!(
            "short fits in this build ({}): {e}",
            flock_kernels::SIMD_LEVEL
        ),
    }
}

/// `flock demo --fixture`'s table (its runtime column left out) is the committed
/// `tests/same_bits_demo.golden` in every FMA build: the README's `--fixture` numbers.
#[cfg(feature = "cli")]
#[test]
fn the_fixture_demo_prints_the_committed_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/same_bits_demo.golden");
    let out_dir = std::env::temp_dir().join(format!("flock-same-bits-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flock"))
        .args(["demo", "--fixture", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The rows from the header to the note under the table, each without its runtime (a token
    // like `0.52s`), spaces collapsed.
    let table: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Pattern"))
        .take_while(|l| !l.is_empty() && !l.starts_with("figure:"))
        .map(|l| {
            let kept: Vec<&str> = l
                .split_whitespace()
                .filter(|t| !(t.ends_with('s') && t[..t.len() - 1].parse::<f64>().is_ok()))
                .filter(|&t| t != "Runtime")
                .collect();
            kept.join(" ") + "\n"
        })
        .collect();
    assert!(table.lines().count() >= 4, "no table in:\n{stdout}");
    if !cfg!(target_feature = "fma") {
        println!("no FMA in this build: the table is not compared");
        return;
    }
    match flock_fixtures::check_golden(&path, &table) {
        Ok(Golden::Matches) => {}
        Ok(Golden::Blessed) => println!("wrote {}", path.display()),
        Err(e) => panic!(
            "demo --fixture's table in this build ({}): {e}",
            flock_kernels::SIMD_LEVEL
        ),
    }
}
