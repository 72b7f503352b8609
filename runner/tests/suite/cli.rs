//! The `flock` binary end to end: `uci` on a small dataset folder, and bad inputs that must give
//! a clear message naming the file, line and column, a non-zero exit and no panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn flock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flock"))
}

/// `flock fit DATA --target TARGET --out OUT` followed by `options`.
fn fit_command(data: &Path, target: &str, out: &Path, options: &[&str]) -> Command {
    let mut cmd = flock();
    cmd.arg("fit")
        .arg(data)
        .args(["--target", target])
        .arg("--out")
        .arg(out)
        .args(options);
    cmd
}

/// `flock predict MODEL INPUTS --out OUT`.
fn predict_command(model: &Path, inputs: &Path, out: &Path) -> Command {
    let mut cmd = flock();
    cmd.arg("predict")
        .arg(model)
        .arg(inputs)
        .arg("--out")
        .arg(out);
    cmd
}

/// Runs `cmd`, asserts it succeeded (showing its stderr if not) and returns its stdout.
fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd`, asserts it exited with `code` (1: a clear error, 2: a usage error) and did not
/// panic, showing `context` and its stderr if not; returns its stderr.
fn fail(cmd: &mut Command, code: i32, context: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{context}: {stderr}");
    assert!(!stderr.contains("panicked"), "{context}: {stderr}");
    stderr
}

/// A dataset folder in the UCI layout: y = 2·x₀ − x₁ + noise, 60 rows, 2 splits.
fn write_dataset(dir: &Path, data: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("data.txt"), data).unwrap();
    std::fs::write(dir.join("index_features.txt"), "0\n1\n").unwrap();
    std::fs::write(dir.join("index_target.txt"), "2\n").unwrap();
    std::fs::write(dir.join("n_splits.txt"), "2\n").unwrap();
    std::fs::write(dir.join("n_hidden.txt"), "10\n").unwrap();
    for k in 0..2 {
        let test: Vec<usize> = (0..60).filter(|i| i % 10 == k).collect();
        let train: Vec<usize> = (0..60).filter(|i| i % 10 != k).collect();
        let lines = |v: &[usize]| v.iter().map(|i| format!("{i}\n")).collect::<String>();
        std::fs::write(dir.join(format!("index_train_{k}.txt")), lines(&train)).unwrap();
        std::fs::write(dir.join(format!("index_test_{k}.txt")), lines(&test)).unwrap();
    }
}

fn good_data() -> String {
    (0..60)
        .map(|i| {
            let (a, b) = ((i % 7) as f64 / 3.0, (i % 5) as f64 / 2.0);
            let noise = ((i * 37 % 11) as f64 - 5.0) / 50.0;
            format!("{a} {b}\t{}\n", 2.0 * a - b + noise)
        })
        .collect()
}

/// `DIR/d.csv`: `a,y` with y = sin(2a) + noise of σ = 0.1 (a deterministic ±0.1 pattern), 200
/// rows.
fn write_sine_csv(dir: &Path) -> PathBuf {
    let csv: String = std::iter::once("a,y\n".to_owned())
        .chain((0..200).map(|i| {
            let a = i as f64 / 50.0;
            let noise = if i % 2 == 0 { 0.1 } else { -0.1 };
            format!("{a},{}\n", (2.0 * a).sin() + noise)
        }))
        .collect();
    let data = dir.join("d.csv");
    std::fs::write(&data, csv).unwrap();
    data
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn uci_runs_on_a_dataset_folder() {
    let dir = temp("good").join("toy");
    write_dataset(&dir, &good_data());
    let out = flock()
        .args([
            "uci",
            dir.to_str().unwrap(),
            "--epochs",
            "20",
            "--batch-size",
            "16",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("toy"))
        .expect("a row for the dataset");
    assert!(row.contains(" 2 "), "two splits: {row}");
    // Same seed, same output.
    let again = flock()
        .args([
            "uci",
            dir.to_str().unwrap(),
            "--epochs",
            "20",
            "--batch-size",
            "16",
        ])
        .output()
        .unwrap();
    let strip_time = |s: &str| {
        s.lines()
            .map(|l| l.split('s').next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip_time(&stdout),
        strip_time(&String::from_utf8_lossy(&again.stdout))
    );
    // flock's recipe runs too; an unknown protocol is refused by name.
    let recipe = flock()
        .args([
            "uci",
            dir.to_str().unwrap(),
            "--protocol",
            "flock",
            "--epochs",
            "10",
        ])
        .args(["--batch-size", "16", "--quiet"])
        .output()
        .unwrap();
    assert!(
        recipe.status.success(),
        "{}",
        String::from_utf8_lossy(&recipe.stderr)
    );
    assert_ne!(
        strip_time(&stdout),
        strip_time(&String::from_utf8_lossy(&recipe.stdout))
    );
    let stderr = fail(
        flock().args(["uci", dir.to_str().unwrap(), "--protocol", "paper"]),
        2,
        "a usage error",
    );
    assert!(
        stderr.contains("invalid value 'paper'")
            && stderr.contains("[possible values: deep-ensembles, flock]"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn bad_inputs_name_the_problem_and_fail_cleanly() {
    let good = good_data();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "ragged",
            {
                lines[4] = "1.0 2.0".into();
                lines.join("\n")
            },
            "data.txt:5: 2 columns, but the first row has 3",
        ),
        (
            "text",
            good.replacen('\t', "\tabc\t", 1),
            "data.txt:1: column 3 is \"abc\", not a number",
        ),
        (
            "nan",
            good.replacen("\n", "\nNaN 1 2\n", 1),
            "data.txt:2: column 1 is not finite",
        ),
        ("empty", String::new(), "no data rows"),
    ];
    for (name, data, expected) in cases {
        let dir = temp(name).join("bad");
        write_dataset(&dir, &data);
        let stderr = fail(flock().args(["uci", dir.to_str().unwrap()]), 1, name);
        assert!(stderr.contains(expected), "{name}: {stderr}");
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
    // An index file pointing past the data.
    let dir = temp("index").join("bad");
    write_dataset(&dir, &good);
    std::fs::write(dir.join("index_test_1.txt"), "3\n999\n").unwrap();
    let stderr = fail(
        flock().args(["uci", dir.to_str().unwrap()]),
        1,
        "an index past the data",
    );
    assert!(
        stderr.contains("index_test_1.txt:2: index 999 is out of range"),
        "{stderr}"
    );
    // A folder without data.
    let empty = temp("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    let stderr = fail(
        flock().args(["uci", empty.to_str().unwrap()]),
        1,
        "a folder without data",
    );
    assert!(stderr.contains("no dataset folder"), "{stderr}");
    let _ = std::fs::remove_dir_all(&empty);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn fit_then_predict_round_trip_and_refuse_bad_input() {
    let dir = temp("fit");
    std::fs::create_dir_all(&dir).unwrap();
    let csv: String = std::iter::once("a,b,target\n".to_owned())
        .chain((0..120).map(|i| {
            let (a, b) = ((i % 9) as f64 / 4.0, (i % 7) as f64 / 3.0);
            format!(
                "{a},{b},{}\n",
                a * a - b + ((i * 13 % 5) as f64 - 2.0) / 20.0
            )
        }))
        .collect();
    let data = dir.join("train.csv");
    std::fs::write(&data, csv).unwrap();
    let model = dir.join("model.safetensors");
    let fit = |extra: &[&str]| {
        let options = [&["--epochs", "30", "--batch-size", "32"][..], extra].concat();
        fit_command(&data, "target", &model, &options)
    };
    let stdout = succeed(&mut fit(&[]));
    assert!(
        stdout.contains("test (12 rows, original scale): RMSE"),
        "{stdout}"
    );
    let first = std::fs::read(&model).unwrap();
    // On request, the held-out calibration curve as a PNG.
    let figure = dir.join("calibration.png");
    succeed(&mut fit(&["--figure", figure.to_str().unwrap(), "--quiet"]));
    assert_eq!(&std::fs::read(&figure).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    // Same seed, any --threads: the same model file.
    // (The default uses every core; one and three threads must write the same bytes.)
    for threads in ["1", "3"] {
        succeed(&mut fit(&["--threads", threads]));
        assert_eq!(std::fs::read(&model).unwrap(), first);
    }

    let inputs = dir.join("new.csv");
    std::fs::write(&inputs, "a,b\n0.5,1\n2,0\n").unwrap();
    let preds = dir.join("preds.csv");
    succeed(&mut predict_command(&model, &inputs, &preds));
    let text = std::fs::read_to_string(&preds).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "mean,total_std,epistemic_std,aleatoric_std,q0.025,q0.975"
    );
    assert_eq!(lines.len(), 3);
    let row: Vec<f64> = lines[2].split(',').map(|v| v.parse().unwrap()).collect();
    assert!((row[0] - 4.0).abs() < 1.0, "f(2, 0) ≈ 4: {row:?}");
    assert!(row[4] < row[0] && row[0] < row[5]);
    // An output over an input is refused, and the input is left as it was: predictions over
    // the model (or the inputs), a model over the training data.
    let model_bytes = std::fs::read(&model).unwrap();
    let data_bytes = std::fs::read(&data).unwrap();
    for (out_over, what) in [(&model, "model"), (&inputs, "data file")] {
        let stderr = fail(&mut predict_command(&model, &inputs, out_over), 1, what);
        assert!(
            stderr.contains(&format!("that is the {what} this command reads")),
            "{stderr}"
        );
    }
    let stderr = fail(
        &mut fit_command(&data, "target", &data, &[]),
        1,
        "a model over its data",
    );
    assert!(
        stderr.contains("that is the data file this command reads"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert_eq!(std::fs::read(&data).unwrap(), data_bytes);
    // A column named in a file without a header: said so, for both tasks.
    let headerless = dir.join("headerless.csv");
    std::fs::write(&headerless, "1,2,3\n4,5,6\n").unwrap();
    for task in ["regress", "classify"] {
        let stderr = fail(
            flock()
                .args(["fit", headerless.to_str().unwrap(), "--target", "y"])
                .args(["--task", task]),
            1,
            task,
        );
        assert!(
            stderr.contains("no column \"y\": the file has no header line"),
            "{task}: {stderr}"
        );
    }
    // An --out in a folder that does not exist: the state file that cannot be written is named.
    let nowhere = dir.join("no-such-folder").join("m.safetensors");
    let stderr = fail(
        &mut fit_command(&data, "target", &nowhere, &["--epochs", "2"]),
        1,
        "an --out in a missing folder",
    );
    assert!(
        stderr.contains("no-such-folder/m.safetensors.state: "),
        "{stderr}"
    );

    // Bad inputs: a missing column, a corrupt model, the wrong number of features.
    let stderr = fail(
        flock().args(["fit", data.to_str().unwrap(), "--target", "nope"]),
        1,
        "--target nope",
    );
    assert!(stderr.contains("no column \"nope\""), "{stderr}");
    // The target as a feature, a feature twice, a negative rate: each named, no fit.
    for (options, message) in [
        (
            &["--features", "a,target"][..],
            "feature column \"target\" is the target",
        ),
        (
            &["--features", "b,1"][..],
            "feature column \"1\" is asked for twice",
        ),
        (
            &["--lr", "-1"][..],
            "--lr -1: expected a positive, finite rate",
        ),
    ] {
        let stderr = fail(
            flock()
                .args(["fit", data.to_str().unwrap(), "--target", "target"])
                .args(options),
            1,
            &format!("{options:?}"),
        );
        assert!(stderr.contains(message), "{options:?}: {stderr}");
    }
    // A short row is named against the header (not against the first data row).
    let short = dir.join("short.csv");
    std::fs::write(&short, "a,b,target\n1,2\n3,4\n").unwrap();
    let stderr = fail(
        flock().args(["fit", short.to_str().unwrap(), "--target", "target"]),
        1,
        "a short row",
    );
    assert!(
        stderr.contains("short.csv:2: 2 columns, but the header has 3"),
        "{stderr}"
    );
    let stderr = fail(
        flock().args(["predict", data.to_str().unwrap(), inputs.to_str().unwrap()]),
        1,
        "a CSV as the model",
    );
    assert!(stderr.contains("checkpoint is corrupt"), "{stderr}");
    // The model knows its features' names: the training file itself (target and all) predicts,
    // with the columns in any order, and a missing feature is named.
    let same = dir.join("same.csv");
    succeed(&mut predict_command(&model, &data, &same));
    assert_eq!(std::fs::read_to_string(&same).unwrap().lines().count(), 121);
    std::fs::write(&inputs, "b,target,a\n0,7,2\n").unwrap();
    succeed(&mut predict_command(&model, &inputs, &preds));
    let swapped = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(swapped.lines().nth(1), Some(lines[2]), "picked by name");
    std::fs::write(&inputs, "a\n0.5\n").unwrap();
    let stderr = fail(
        flock().args(["predict", model.to_str().unwrap(), inputs.to_str().unwrap()]),
        1,
        "a missing feature column",
    );
    assert!(
        stderr.contains("the model's feature column \"b\" is missing (columns: a)"),
        "{stderr}"
    );
    // A headerless file is read by position.
    std::fs::write(&inputs, "0.5,1\n2,0\n").unwrap();
    succeed(&mut predict_command(&model, &inputs, &preds));
    assert_eq!(std::fs::read_to_string(&preds).unwrap(), text);
    // In f32: the model file holds F32 tensors and predicts close to the f64 fit.
    let model32 = dir.join("model32.safetensors");
    succeed(&mut fit_command(
        &data,
        "target",
        &model32,
        &[
            "--epochs",
            "30",
            "--batch-size",
            "32",
            "--dtype",
            "f32",
            "--quiet",
        ],
    ));
    let header = std::fs::read(&model32).unwrap();
    assert!(String::from_utf8_lossy(&header[..2048.min(header.len())]).contains("F32"));
    std::fs::write(&inputs, "a,b\n0.5,1\n2,0\n").unwrap();
    succeed(&mut predict_command(&model32, &inputs, &preds));
    let row32: Vec<f64> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        (row32[0] - 4.0).abs() < 1.0,
        "f(2, 0) ≈ 4 in f32: {row32:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An interrupted fit resumed with --resume writes the same model file, byte for byte, as an
/// uninterrupted fit.
#[test]
fn an_interrupted_fit_resumes_to_the_same_bytes() {
    let dir = temp("resume");
    std::fs::create_dir_all(&dir).unwrap();
    let csv: String = std::iter::once("a,y\n".to_owned())
        .chain((0..90).map(|i| format!("{},{}\n", i as f64 / 30.0, ((i * 7) % 13) as f64 / 5.0)))
        .collect();
    let data = dir.join("d.csv");
    std::fs::write(&data, csv).unwrap();
    let fit = |out: &Path, extra: &[&str]| {
        let options = [&["--epochs", "12", "--batch-size", "16"][..], extra].concat();
        succeed(&mut fit_command(&data, "y", out, &options))
    };
    let (straight, resumed) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    fit(&straight, &[]);
    let first = fit(&resumed, &["--max-epochs-this-run", "5"]);
    assert!(first.contains("continue with --resume"), "{first}");
    assert!(!resumed.exists());
    fit(&resumed, &["--resume"]);
    assert_eq!(
        std::fs::read(&straight).unwrap(),
        std::fs::read(&resumed).unwrap()
    );
    let mut state = resumed.as_os_str().to_owned();
    state.push(".state");
    assert!(
        !Path::new(&state).exists(),
        "the state file is removed at the end"
    );
    // With held-out early stopping the best epochs travel in the state file: the same bytes.
    let held = ["--validation-fraction", "0.2"];
    let (straight_held, resumed_held) = (dir.join("c.safetensors"), dir.join("d.safetensors"));
    fit(&straight_held, &held);
    fit(
        &resumed_held,
        &[&held[..], &["--max-epochs-this-run", "5"]].concat(),
    );
    fit(&resumed_held, &[&held[..], &["--resume"]].concat());
    let held_bytes = std::fs::read(&straight_held).unwrap();
    assert_eq!(held_bytes, std::fs::read(&resumed_held).unwrap());
    assert_ne!(held_bytes, std::fs::read(&straight).unwrap());
    // VI with the members apart on two threads: the noise streams' positions travel in the
    // state file (each member's, wherever it last ran), so the resumed fit draws the noise the
    // straight one drew: the same bytes — and those of the members stepped together.
    let vi = ["--method", "vi", "--threads", "2", "--members", "3"];
    let vi_fit = |out: &Path, order: &str, extra: &[&str]| {
        fit(out, &[&vi[..], &["--step-order", order], extra].concat())
    };
    let (vi_straight, vi_resumed) = (dir.join("e.safetensors"), dir.join("f.safetensors"));
    vi_fit(&vi_straight, "apart", &[]);
    vi_fit(&vi_resumed, "apart", &["--max-epochs-this-run", "5"]);
    vi_fit(&vi_resumed, "apart", &["--resume"]);
    let vi_bytes = std::fs::read(&vi_straight).unwrap();
    assert_eq!(vi_bytes, std::fs::read(&vi_resumed).unwrap());
    vi_fit(&vi_resumed, "together", &[]);
    assert_eq!(vi_bytes, std::fs::read(&vi_resumed).unwrap());
    // Fractions that leave nothing to train on or to score are refused by name.
    for bad in ["1", "-0.1", "0.001", "NaN"] {
        let err = fail(
            flock()
                .args(["fit", data.to_str().unwrap(), "--target", "y"])
                .arg(format!("--validation-fraction={bad}"))
                .arg("--out")
                .arg(dir.join("bad.safetensors")),
            1,
            bad,
        );
        assert!(
            err.contains("--validation-fraction") || err.contains("validation_fraction"),
            "{bad}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--likelihood learned` fits one σ per member (the aleatoric std is the same for every row and
/// near the data's noise), a cosine schedule resumes to the same bytes, and contradictory or
/// unknown choices are refused by name.
#[test]
fn learned_sigma_and_schedules() {
    let dir = temp("learned");
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_sine_csv(&dir);
    let run = |out: &Path, extra: &[&str]| {
        let options = [
            &[
                "--epochs",
                "60",
                "--batch-size",
                "20",
                "--likelihood",
                "learned",
                "--schedule",
                "cosine",
                "--hidden",
                "32",
                "--quiet",
            ][..],
            extra,
        ]
        .concat();
        succeed(&mut fit_command(&data, "y", out, &options))
    };
    let model = dir.join("m.safetensors");
    run(&model, &[]);
    let inputs = dir.join("x.csv");
    std::fs::write(&inputs, "a\n0.5\n1.5\n3\n").unwrap();
    let preds = dir.join("p.csv");
    succeed(&mut predict_command(&model, &inputs, &preds));
    let text = std::fs::read_to_string(&preds).unwrap();
    let aleatoric: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(aleatoric.len(), 3);
    for a in &aleatoric {
        assert!(
            (a - aleatoric[0]).abs() < 1e-12,
            "homoscedastic: {aleatoric:?}"
        );
    }
    assert!(
        (0.05..0.2).contains(&aleatoric[0]),
        "σ learned near the noise's 0.1: {aleatoric:?}"
    );
    // A cosine-scheduled, learned-σ fit interrupted and resumed: the same bytes.
    let resumed = dir.join("r.safetensors");
    run(&resumed, &["--max-epochs-this-run", "25"]);
    run(&resumed, &["--resume"]);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&resumed).unwrap()
    );
    // Contradictions (exit 1) and unknown names (a usage error, exit 2, listing the choices).
    for (args, code, message) in [
        (
            &["--likelihood", "learned", "--sigma", "0.1"][..],
            1,
            "--sigma fixes σ",
        ),
        (
            &["--schedule", "linear"][..],
            2,
            "invalid value 'linear' for '--schedule <SCHEDULE>'\n  [possible values: constant, cosine]",
        ),
        (
            &["--likelihood", "fixed"][..],
            1,
            "--likelihood fixed needs --sigma",
        ),
        (
            &["--likelihood", "student"][..],
            2,
            "[possible values: heteroscedastic, learned, fixed]",
        ),
        (
            &["--activation", "gelu"][..],
            2,
            "[possible values: relu, tanh, sigmoid, softplus, identity]",
        ),
    ] {
        let stderr = fail(
            flock()
                .args(["fit", data.to_str().unwrap(), "--target", "y"])
                .args(args),
            code,
            &format!("{args:?}"),
        );
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--method vi` fits a mean-field guide per member: the saved model holds each weight's
/// `loc` and `rho`, predictions spread across the guides' draws and follow the data, the
/// thread count never changes the bytes, an interrupted fit — with or without held-out early
/// stopping — resumes to the same bytes, and bad settings are refused by name.
#[test]
fn vi_fits() {
    let dir = temp("vi");
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_sine_csv(&dir);
    let run = |out: &Path, extra: &[&str]| {
        let options = [
            &[
                "--method",
                "vi",
                "--epochs",
                "60",
                "--batch-size",
                "20",
                "--hidden",
                "32",
                "--activation",
                "tanh",
                "--schedule",
                "cosine",
                "--samples",
                "8",
                "--members",
                "8",
                "--quiet",
            ][..],
            extra,
        ]
        .concat();
        succeed(&mut fit_command(&data, "y", out, &options))
    };
    let model = dir.join("m.safetensors");
    run(&model, &["--threads", "1"]);
    let bytes = std::fs::read(&model).unwrap();
    let header = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    for name in [
        "layers.0.weight.loc",
        "layers.0.weight.rho",
        r#"\"kind\":\"vi\""#,
    ] {
        assert!(header.contains(name), "{name} missing from {header}");
    }
    let inputs = dir.join("x.csv");
    std::fs::write(&inputs, "a\n0.5\n1.5\n3\n").unwrap();
    let preds = dir.join("p.csv");
    succeed(&mut predict_command(&model, &inputs, &preds));
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    for (row, a) in rows.iter().zip([0.5f64, 1.5, 3.0]) {
        let (mean, epistemic) = (row[0], row[2]);
        assert!((mean - (2.0 * a).sin()).abs() < 0.25, "{a}: {row:?}");
        assert!(epistemic > 1e-4 && epistemic.is_finite(), "{a}: {row:?}");
    }
    // Two threads: the same bytes.
    let two = dir.join("t.safetensors");
    run(&two, &["--threads", "2"]);
    assert_eq!(bytes, std::fs::read(&two).unwrap());
    // Interrupted and resumed (the guides' noise streams travel in the state file).
    let resumed = dir.join("r.safetensors");
    run(&resumed, &["--threads", "1", "--max-epochs-this-run", "25"]);
    run(&resumed, &["--threads", "1", "--resume"]);
    assert_eq!(bytes, std::fs::read(&resumed).unwrap());
    // Held-out early stopping keeps each member's best guide, and resumes to the same bytes too.
    let held = ["--threads", "1", "--validation-fraction", "0.2"];
    let (straight_held, resumed_held) = (dir.join("h.safetensors"), dir.join("i.safetensors"));
    run(&straight_held, &held);
    run(
        &resumed_held,
        &[&held[..], &["--max-epochs-this-run", "25"]].concat(),
    );
    run(&resumed_held, &[&held[..], &["--resume"]].concat());
    let held_bytes = std::fs::read(&straight_held).unwrap();
    assert_eq!(held_bytes, std::fs::read(&resumed_held).unwrap());
    assert_ne!(held_bytes, bytes);
    // A low-rank guide: its factor is saved, predictions load from it, and it resumes too.
    let rank = ["--threads", "1", "--rank", "2"];
    let (straight_rank, resumed_rank) = (dir.join("k.safetensors"), dir.join("l.safetensors"));
    let said = run(&straight_rank, &rank);
    assert!(said.contains("rank-2 plus diagonal guides"), "{said}");
    run(
        &resumed_rank,
        &[&rank[..], &["--max-epochs-this-run", "25"]].concat(),
    );
    run(&resumed_rank, &[&rank[..], &["--resume"]].concat());
    let rank_bytes = std::fs::read(&straight_rank).unwrap();
    assert_eq!(rank_bytes, std::fs::read(&resumed_rank).unwrap());
    let header = String::from_utf8_lossy(&rank_bytes[..rank_bytes.len().min(4096)]);
    assert!(header.contains("layers.0.weight.cov_factor"), "{header}");
    let rank_preds = dir.join("q.csv");
    succeed(&mut predict_command(&straight_rank, &inputs, &rank_preds));
    let rank_rows = std::fs::read_to_string(&rank_preds).unwrap();
    assert_eq!(rank_rows.lines().count(), 4, "{rank_rows}");
    for (args, code, message) in [
        (&["--method", "bayes"][..], 2, "[possible values: map, vi]"),
        (
            &["--kl-weight", "0.1"][..],
            1,
            "--kl-weight is a VI setting",
        ),
        (&["--rank", "2"][..], 1, "--rank is a VI setting"),
        (
            &["--method", "vi", "--prior-weight", "1"][..],
            1,
            "--prior-weight 1: expected 0 for a VI fit",
        ),
        (&["--method", "vi", "--samples", "0"][..], 1, "--samples 0"),
        (
            &["--method", "vi", "--init-scale", "0"][..],
            1,
            "--init-scale 0",
        ),
    ] {
        let stderr = fail(
            flock()
                .args(["fit", data.to_str().unwrap(), "--target", "y", "--quiet"])
                .args(args)
                .arg("--out")
                .arg(dir.join("bad.safetensors")),
            code,
            &format!("{args:?}"),
        );
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A training state written by an earlier flock (`tests/data/legacy`: optimizer state named by
/// a Rust type, VI noise positions and best held-out scores under their old names) resumes to
/// what a fit run straight through today predicts, for a point-estimate and a VI fit.
#[test]
fn an_old_training_state_resumes_to_todays_fit() {
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/legacy");
    let dir = temp("legacy");
    std::fs::create_dir_all(&dir).unwrap();
    let base = [
        "--test",
        legacy.join("test.csv").to_str().unwrap(),
        "--protocol",
        "deep-ensembles",
        "--members",
        "3",
        "--hidden",
        "8",
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--seed",
        "3",
        "--quiet",
    ]
    .map(str::to_owned);
    let vi = [
        "--method",
        "vi",
        "--rank",
        "1",
        "--samples",
        "2",
        "--validation-fraction",
        "0.2",
    ];
    for (state, extra) in [("map_epoch2.state", &[][..]), ("vi_epoch2.state", &vi[..])] {
        let args: Vec<&str> = base
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        let straight = dir.join(format!("{state}.straight.safetensors"));
        succeed(&mut fit_command(
            &legacy.join("sine.csv"),
            "y",
            &straight,
            &args,
        ));
        let resumed = dir.join(format!("{state}.resumed.safetensors"));
        let mut state_file = resumed.as_os_str().to_owned();
        state_file.push(".state");
        std::fs::copy(legacy.join(state), &state_file).unwrap();
        let args: Vec<&str> = args.into_iter().chain(["--resume"]).collect();
        succeed(&mut fit_command(
            &legacy.join("sine.csv"),
            "y",
            &resumed,
            &args,
        ));
        // The legacy state's first two epochs ran before every reduction had one order
        // whatever the vector width (issue 26), so their last bits differ from today's: the
        // resumed fit must predict what today's straight fit predicts to 1e-9 (a misread state
        // — moments, step count, noise draws, best scores — moves them by far more). Bit-exact
        // resumption of today's states is `an_interrupted_fit_resumes_to_the_same_bytes`.
        let predict = |model: &Path| -> Vec<f64> {
            let out = dir.join("predictions.csv");
            succeed(&mut predict_command(
                model,
                &legacy.join("inputs.csv"),
                &out,
            ));
            let text = std::fs::read_to_string(&out).unwrap();
            text.lines()
                .skip(1)
                .flat_map(|l| {
                    l.split(',')
                        .map(|v| v.parse::<f64>().unwrap())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (want, got) = (predict(&straight), predict(&resumed));
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert!(
                (w - g).abs() <= 1e-9 * w.abs().max(1.0),
                "{state}: {g} vs {w}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three labelled blobs as CSV rows `a,b,label` with the labels written by `name(k)`.
fn blob_csv(rows: usize, seed: usize, name: impl Fn(usize) -> String) -> String {
    let centres = [(0.0, 0.0), (2.0, 1.0), (1.0, 2.5)];
    std::iter::once("a,b,label\n".to_owned())
        .chain((0..rows).map(|i| {
            let k = i % 3;
            let jitter = |j: usize| (((i + seed) * 7919 + j * 104_729) % 1000) as f64 / 700.0 - 0.7;
            format!(
                "{},{},{}\n",
                centres[k].0 + jitter(1),
                centres[k].1 + jitter(2),
                name(k)
            )
        }))
        .collect()
}

/// `--task classify` on word labels and on number labels: test scores, conformal sets, the JSON
/// report, a model that predicts class probabilities from the training file itself; bad labels
/// named with their row.
#[test]
fn classification_from_the_command_line() {
    let dir = temp("classify");
    std::fs::create_dir_all(&dir).unwrap();
    let words = dir.join("words.csv");
    let names = ["cat", "dog", "eel"];
    std::fs::write(&words, blob_csv(450, 0, |k| names[k].to_owned())).unwrap();
    let model = dir.join("m.safetensors");
    let quick = ["--task", "classify", "--epochs", "15", "--quiet"];
    let out = succeed(&mut fit_command(
        &words,
        "label",
        &model,
        &[&quick[..], &["--conformal", "0.1"]].concat(),
    ));
    assert!(out.contains("3 classes: cat, dog, eel"), "{out}");
    assert!(out.contains("test (45 rows): accuracy"), "{out}");
    assert!(
        out.contains("conformal 90 % prediction sets on the test rows"),
        "{out}"
    );
    // The JSON report is one object with the scores.
    let json_out = succeed(&mut fit_command(
        &words,
        "label",
        &dir.join("j.safetensors"),
        &[&quick[..], &["--json"]].concat(),
    ));
    let report: serde_json::Value = serde_json::from_str(json_out.trim()).unwrap();
    assert_eq!(report["task"], "classify");
    assert_eq!(report["classes"][2], "eel");
    assert!(
        report["test"]["accuracy"].as_f64().unwrap() > 0.7,
        "{report}"
    );
    // Predict from the training file itself (its label column is ignored): probabilities,
    // entropy, mutual information, and the conformal set.
    let preds = dir.join("p.csv");
    let mut predict = predict_command(&model, &words, &preds);
    succeed(predict.args(["--conformal", "0.1"]));
    // Quantiles are a regressor's: asked of a classifier, refused by name.
    let stderr = fail(
        predict_command(&model, &words, &dir.join("q.csv")).args(["--quantiles", "0.5"]),
        1,
        "--quantiles of a classifier",
    );
    assert!(stderr.contains("--quantiles: "), "{stderr}");
    assert!(stderr.contains("is a classifier"), "{stderr}");
    let text = std::fs::read_to_string(&preds).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "predicted,p_cat,p_dog,p_eel,entropy,expected_entropy,mutual_information,conformal_set"
    );
    assert_eq!(text.lines().count(), 451);
    let first: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first[0], "cat");
    let p: f64 = (1..4).map(|i| first[i].parse::<f64>().unwrap()).sum();
    assert!((p - 1.0).abs() < 1e-9);
    assert!(first[7].split('|').all(|c| names.contains(&c)), "{first:?}");
    // Number labels: classes named by the numbers, sorted numerically.
    let numbers = dir.join("numbers.csv");
    std::fs::write(
        &numbers,
        blob_csv(450, 1, |k| ["10", "2", "7"][k].to_owned()),
    )
    .unwrap();
    let out = succeed(&mut fit_command(&numbers, "label", &model, &quick));
    assert!(out.contains("3 classes: 2, 7, 10"), "{out}");
    // Bad labels, named by file and line.
    let one_class = dir.join("one.csv");
    std::fs::write(&one_class, blob_csv(60, 0, |_| "cat".to_owned())).unwrap();
    let empty = dir.join("empty.csv");
    let mut rows = blob_csv(60, 0, |k| names[k].to_owned());
    rows = rows.replacen(",dog\n", ",\n", 1);
    std::fs::write(&empty, rows).unwrap();
    let unseen = dir.join("unseen.csv");
    std::fs::write(&unseen, "a,b,label\n0,0,cat\n1,1,yak\n").unwrap();
    // A row without its label cell: named as a short row, against the header.
    let short = dir.join("short.csv");
    let mut rows = blob_csv(60, 0, |k| names[k].to_owned());
    rows = rows.replacen(",dog\n", "\n", 1);
    std::fs::write(&short, rows).unwrap();
    for (data, extra, message) in [
        (
            &one_class,
            &[][..],
            "every training row is labelled \"cat\"",
        ),
        (&empty, &[][..], "empty.csv:3: the label is empty"),
        (
            &short,
            &[][..],
            "short.csv:3: 2 columns, but the header has 3",
        ),
        (
            &words,
            &["--test", unseen.to_str().unwrap()][..],
            "unseen.csv:3: label \"yak\" was never seen in training (classes: cat, dog, eel)",
        ),
        (
            &words,
            &["--sigma", "0.1"][..],
            "--likelihood and --sigma are regression settings",
        ),
    ] {
        let stderr = fail(
            &mut fit_command(
                data,
                "label",
                &dir.join("bad.safetensors"),
                &[&quick[..], extra].concat(),
            ),
            1,
            &format!("{extra:?}"),
        );
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression with `--conformal`: intervals reported on the test rows and written by predict;
/// `--json` for fit, predict and uci.
#[test]
fn conformal_regression_and_json_reports() {
    let dir = temp("conformal");
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_sine_csv(&dir);
    let model = dir.join("m.safetensors");
    let out = succeed(&mut fit_command(
        &data,
        "y",
        &model,
        &["--epochs", "20", "--quiet", "--conformal", "0.2", "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["task"], "regress");
    assert!(
        report["test"]["conformal"]["coverage"].as_f64().is_some(),
        "{report}"
    );
    let preds = dir.join("p.csv");
    let mut predict = predict_command(&model, &data, &preds);
    let out = succeed(predict.args(["--conformal", "0.2", "--json"]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["predictions"], 200);
    let text = std::fs::read_to_string(&preds).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with(",conformal_lower,conformal_upper")
    );
    let uci_dir = temp("uci-json").join("blobs");
    write_dataset(&uci_dir, &good_data());
    let out = succeed(flock().args([
        "uci",
        uci_dir.to_str().unwrap(),
        "--epochs",
        "5",
        "--json",
        "--quiet",
    ]));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["protocol"], "deep-ensembles");
    assert_eq!(report["datasets"][0]["splits"], 2);
    let _ = std::fs::remove_dir_all(uci_dir.parent().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flock classify-bench` end to end on a tiny synthetic Fashion-MNIST folder (4×4 images, ten
/// classes told apart by which pixel is bright) with an out-of-distribution CSV: the JSON report
/// has the ensembles' scores and the OOD scores; a truncated IDX file is refused by name.
#[test]
fn classify_bench_on_a_tiny_image_set() {
    let dir = temp("fashion");
    std::fs::create_dir_all(&dir).unwrap();
    let idx = |dims: &[u32], values: &[u8]| {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(values);
        out
    };
    let images = |n: usize| -> (Vec<u8>, Vec<u8>) {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let k = (i * 7) % 10;
            pixels.extend((0..16).map(|p| {
                if p == k {
                    250
                } else {
                    ((i * 31 + p * 17) % 40) as u8
                }
            }));
            labels.push(k as u8);
        }
        (pixels, labels)
    };
    for (prefix, n) in [("train", 400u32), ("t10k", 100)] {
        let (pixels, labels) = images(n as usize);
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            idx(&[n, 4, 4], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            idx(&[n], &labels),
        )
        .unwrap();
    }
    let ood = dir.join("ood.csv");
    let rows: String = (0..50)
        .map(|i| {
            let cells: Vec<String> = (0..16)
                .map(|p| ((i * 13 + p * 29) % 256).to_string())
                .collect();
            format!("{},0\n", cells.join(","))
        })
        .collect();
    std::fs::write(&ood, rows).unwrap();
    let out = succeed(flock().args([
        "classify-bench",
        dir.to_str().unwrap(),
        "--members",
        "2",
        "--epochs",
        "3",
        "--ood",
        ood.to_str().unwrap(),
        "--out",
        dir.join("figures").to_str().unwrap(),
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["train_images"], 400);
    assert_eq!(
        report["ensembles"].as_array().unwrap().len(),
        2,
        "M = 1 and 2"
    );
    assert!(
        report["ensembles"][1]["accuracy"].as_f64().unwrap() > 0.5,
        "{report}"
    );
    assert_eq!(report["ood"]["images"], 50);
    assert!(
        report["ood"]["mutual_information"]["auroc"]
            .as_f64()
            .is_some()
    );
    assert!(dir.join("figures/fashion_ood_entropy.png").exists());
    // A truncated images file.
    let path = dir.join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let stderr = fail(
        flock().args([
            "classify-bench",
            dir.to_str().unwrap(),
            "--epochs",
            "1",
            "--quiet",
        ]),
        1,
        "a truncated images file",
    );
    assert!(stderr.contains("t10k-images-idx3-ubyte.gz: not an IDX file of bytes: sizes [100, 4, 4] need 1600 values, the file holds 1597"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--splits` naming only splits a dataset lacks is an error naming them and the count; a
/// split it lacks beside ones it has is skipped with a note.
#[test]
fn uci_splits_a_dataset_lacks_are_named() {
    let dir = temp("splits").join("toy");
    write_dataset(&dir, &good_data());
    let stderr = fail(
        flock().args(["uci", dir.to_str().unwrap(), "--splits", "5,7"]),
        1,
        "--splits 5,7",
    );
    assert!(
        stderr.contains("--splits 5,7") && stderr.contains("toy has 2 splits (0 to 1)"),
        "{stderr}"
    );
    let out = flock()
        .args([
            "uci",
            dir.to_str().unwrap(),
            "--splits",
            "1,5",
            "--epochs",
            "2",
            "--quiet",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("toy: has 2 splits; skipping split(s) 5"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.starts_with("toy")).unwrap();
    assert!(row.contains(" 1 "), "one split run: {row}");
}

/// Without the `mpi` feature, `--distributed` says how to get it instead of running alone.
#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_mpi_says_how_to_build_it() {
    let dir = temp("no-mpi").join("toy");
    write_dataset(&dir, &good_data());
    let stderr = fail(
        flock().args(["uci", dir.to_str().unwrap(), "--distributed"]),
        1,
        "--distributed",
    );
    assert!(
        stderr.contains("without MPI") && stderr.contains("--features mpi"),
        "{stderr}"
    );
}

/// A regression table may hold text columns the fit does not use: with `--features` naming
/// the numeric ones only those and the target are read; a name the file lacks is named.
#[test]
fn a_fit_reads_only_the_columns_it_uses() {
    let dir = temp("text-columns");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("mixed.csv");
    let rows: String = (0..80)
        .map(|i| {
            let (a, b) = ((i % 9) as f64 / 3.0, (i % 5) as f64 / 2.0);
            let kind = if i % 2 == 0 { "even" } else { "odd" };
            format!("{kind},{a},{b},{}\n", a - 0.5 * b)
        })
        .collect();
    std::fs::write(&data, format!("kind,a,b,y\n{rows}")).unwrap();
    let out = dir.join("m.safetensors");
    let small = ["--members", "2", "--epochs", "2", "--quiet"];
    let text = succeed(&mut fit_command(
        &data,
        "y",
        &out,
        &[&["--features", "a,b"][..], &small].concat(),
    ));
    assert!(text.contains("2 features"), "{text}");
    // Every other column (the text one included) without --features: the cell is named.
    let stderr = fail(
        &mut fit_command(&data, "y", &out, &small),
        1,
        "a text column",
    );
    assert!(
        stderr.contains("\"kind\"") && stderr.contains(":2:"),
        "{stderr}"
    );
    let stderr = fail(
        &mut fit_command(
            &data,
            "y",
            &out,
            &[&["--features", "a,zz"][..], &small].concat(),
        ),
        1,
        "--features a,zz",
    );
    assert!(stderr.contains("no column \"zz\""), "{stderr}");
}

/// `flock … | head` ends quietly when its reader goes away (no panic on the closed pipe).
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_flock_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = temp("closed-pipe");
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_sine_csv(&dir);
    let mut child = fit_command(
        &data,
        "y",
        &dir.join("m.safetensors"),
        &["--members", "2", "--epochs", "1", "--quiet"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Close the reading end at once: the report's lines meet a closed pipe.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Quoted cells, as R's `write.csv` and pandas write them: a quoted header (with R's unnamed
/// row-name column), quoted text and numbers, a label holding a comma and one holding a quote;
/// `predict` quotes those class names in what it writes; a quote left open is named by line.
#[test]
fn quoted_csv_cells_read_as_r_and_pandas_write_them() {
    let dir = temp("quoted");
    std::fs::create_dir_all(&dir).unwrap();
    // R: write.csv(data.frame(a, kind, y)) — every text cell and the header quoted.
    let r_csv: String = std::iter::once("\"\",\"a\",\"kind\",\"y\"\n".to_owned())
        .chain((0..80).map(|i| {
            let a = i as f64 / 20.0;
            format!("\"{}\",{a},\"k{}\",{}\n", i + 1, i % 3, (2.0 * a).sin())
        }))
        .collect();
    let data = dir.join("r.csv");
    std::fs::write(&data, r_csv).unwrap();
    let quick = ["--members", "2", "--epochs", "2", "--quiet"];
    let out = dir.join("r.safetensors");
    let text = succeed(&mut fit_command(
        &data,
        "y",
        &out,
        &[&["--features", "a"][..], &quick].concat(),
    ));
    assert!(text.contains("1 features"), "{text}");
    // pandas: to_csv quotes only cells that need it.
    let labels = ["cat, big", "dog", "say \"hi\""];
    let pandas_csv: String = std::iter::once("x,\"petal length\",label\n".to_owned())
        .chain((0..90).map(|i| {
            let label = labels[i % 3];
            let field = if label == "dog" {
                label.to_owned()
            } else {
                format!("\"{}\"", label.replace('"', "\"\""))
            };
            format!("{},{},{field}\n", (i % 3) as f64 + 0.01 * i as f64, i % 5)
        }))
        .collect();
    let data = dir.join("p.csv");
    std::fs::write(&data, pandas_csv).unwrap();
    let model = dir.join("p.safetensors");
    let text = succeed(&mut fit_command(
        &data,
        "label",
        &model,
        &[&["--task", "classify"][..], &quick].concat(),
    ));
    assert!(
        text.contains("3 classes: \"cat, big\", dog, \"say \"\"hi\"\"\""),
        "{text}"
    );
    let preds = dir.join("preds.csv");
    succeed(&mut predict_command(&model, &data, &preds));
    let written = std::fs::read_to_string(&preds).unwrap();
    assert!(
        written.starts_with(
            "predicted,\"p_cat, big\",p_dog,\"p_say \"\"hi\"\"\",entropy,expected_entropy,mutual_information\n"
        ),
        "{written}"
    );
    // A quote that its line does not close.
    std::fs::write(&data, "x,label\n1,\"dog\n2,cat\n").unwrap();
    let stderr = fail(
        &mut fit_command(&data, "label", &model, &["--task", "classify"]),
        1,
        "an unclosed quote",
    );
    assert!(
        stderr.contains("p.csv:2: a quoted cell is not closed on its line"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Semicolon-separated files with decimal commas, as Excel writes "CSV" in locales with a
/// decimal comma and R's `write.csv2` does: the same numbers as a comma CSV give the same model,
/// byte for byte; a quoted label may hold a semicolon, and `predict` quotes it in what it
/// writes so the predictions still read as a comma CSV.
#[test]
fn semicolon_csvs_with_decimal_commas_read_as_excel_writes_them() {
    let dir = temp("semicolon");
    std::fs::create_dir_all(&dir).unwrap();
    let rows: Vec<(f64, f64)> = (0..90)
        .map(|i| {
            let a = i as f64 / 30.0 - 1.5;
            (a, (2.0 * a).sin() + 0.25)
        })
        .collect();
    let comma_csv: String = std::iter::once("a,y\n".to_owned())
        .chain(rows.iter().map(|(a, y)| format!("{a:.4},{y:.4}\n")))
        .collect();
    let semicolon_csv: String = std::iter::once("a;y\n".to_owned())
        .chain(
            rows.iter()
                .map(|(a, y)| format!("{a:.4};{y:.4}\n").replace('.', ",")),
        )
        .collect();
    assert!(semicolon_csv.contains("-1,5000;"), "{semicolon_csv}");
    let quick = ["--members", "2", "--epochs", "3", "--quiet"];
    let mut models = Vec::new();
    for (name, text) in [("comma.csv", comma_csv), ("semicolon.csv", semicolon_csv)] {
        let data = dir.join(name);
        std::fs::write(&data, text).unwrap();
        let model = dir.join(format!("{name}.safetensors"));
        succeed(&mut fit_command(&data, "y", &model, &quick));
        models.push(std::fs::read(&model).unwrap());
    }
    assert!(models[0] == models[1], "the two files' models differ");
    // A label with a semicolon, quoted; a number with two commas is not a number.
    let labelled: String = std::iter::once("x;kind\n".to_owned())
        .chain((0..60).map(|i| {
            let kind = if i % 2 == 0 {
                "\"big; round\""
            } else {
                "small"
            };
            format!("{},{};{kind}\n", i % 2, i % 7)
        }))
        .collect();
    let data = dir.join("labels.csv");
    std::fs::write(&data, labelled).unwrap();
    let model = dir.join("labels.safetensors");
    let text = succeed(&mut fit_command(
        &data,
        "kind",
        &model,
        &[&["--task", "classify"][..], &quick].concat(),
    ));
    assert!(text.contains("2 classes: \"big; round\", small"), "{text}");
    let preds = dir.join("preds.csv");
    succeed(&mut predict_command(&model, &data, &preds));
    let written = std::fs::read_to_string(&preds).unwrap();
    assert!(
        written.starts_with("predicted,\"p_big; round\",p_small,"),
        "{written}"
    );
    std::fs::write(&data, "x;kind\n1,234,5;small\n2;big\n").unwrap();
    let stderr = fail(
        &mut fit_command(&data, "kind", &model, &["--task", "classify"]),
        1,
        "a number with two commas",
    );
    assert!(
        stderr.contains("labels.csv:2: column 1 (\"x\") is \"1,234,5\", not a number"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
