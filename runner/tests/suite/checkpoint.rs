//! Checkpoints: bit-exact round trips in f32 and f64, and fuzzed bytes (truncated, flipped,
//! random) that must give a typed error, never a panic.

use flock_autograd::*;
use flock_runner::checkpoint::{Checkpoint, CheckpointError, save_result};
use flock_runner::map::EnsembleResult;
use proptest::prelude::*;

fn layout() -> ParamLayout {
    let mut layout = ParamLayout::new();
    Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(2, 1, 3, 1, Activation::Tanh),
    )
    .unwrap();
    layout
}

fn result<T: flock_kernels::Element>(members: usize, seed: u64) -> EnsembleResult<T> {
    let layout = layout();
    let n = members * layout.member_size();
    let values = (0..n)
        .map(|i| T::from_f64(((i as u64 * 2654435761 + seed) % 1000) as f64 / 7.0 - 60.0))
        .collect();
    EnsembleResult {
        params: Parameters::from_values(layout, members, values).unwrap(),
        losses: (0..members * 4)
            .map(|i| T::from_f64(i as f64 * 0.1 + 1e-300))
            .collect(),
        steps: 4,
        stopped_early: false,
        diverged: vec![],
    }
}

fn path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "flock-ckpt-{}-{name}.safetensors",
        std::process::id()
    ))
}

#[test]
fn round_trips_are_bit_exact() {
    let p = path("f64");
    let r = result::<f64>(3, 1);
    save_result(&p, &r, &[("spec", "mlp 2-3-1 tanh")]).unwrap();
    let back = Checkpoint::read(&p).unwrap();
    let params = back.params::<f64>(&layout(), 3).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(params.values()), bits(r.params.values()));
    assert_eq!(
        bits(&back.tensor::<f64>("losses", &[3, 4]).unwrap()),
        bits(&r.losses)
    );
    assert_eq!(
        (back.metadata("spec"), back.metadata("steps")),
        (Some("mlp 2-3-1 tanh"), Some("4"))
    );
    // Another model or precision is refused by name.
    assert!(matches!(
        back.params::<f32>(&layout(), 3),
        Err(CheckpointError::Mismatch { .. })
    ));
    assert!(matches!(
        back.params::<f64>(&layout(), 2),
        Err(CheckpointError::Mismatch { .. })
    ));
    std::fs::remove_file(&p).unwrap();

    let p = path("f32");
    let r = result::<f32>(2, 7);
    save_result(&p, &r, &[]).unwrap();
    let back = Checkpoint::read(&p)
        .unwrap()
        .params::<f32>(&layout(), 2)
        .unwrap();
    assert_eq!(back, r.params);
    std::fs::remove_file(&p).unwrap();
}

/// Saved ensembles come back as results; members can be selected and ensembles merged, with
/// parameters, loss curves and divergence reports following their members.
#[test]
fn saved_ensembles_select_and_merge_members() {
    let (pa, pb) = (path("sel-a"), path("sel-b"));
    let mut a = result::<f64>(3, 1);
    a.diverged = vec![flock_runner::map::Divergence { member: 2, step: 1 }];
    let b = result::<f64>(2, 9);
    save_result(&pa, &a, &[]).unwrap();
    save_result(&pb, &b, &[]).unwrap();
    let a_back = Checkpoint::read(&pa)
        .unwrap()
        .result::<f64>(&layout())
        .unwrap();
    let b_back = Checkpoint::read(&pb)
        .unwrap()
        .result::<f64>(&layout())
        .unwrap();
    assert_eq!((&a_back.params, &a_back.losses), (&a.params, &a.losses));

    let picked = a.select(&[2, 0]).unwrap();
    assert_eq!(picked.params.member(0), a.params.member(2));
    assert_eq!(picked.params.member(1), a.params.member(0));
    assert_eq!(picked.member_losses(0), a.member_losses(2));
    assert_eq!(
        picked.diverged,
        vec![flock_runner::map::Divergence { member: 0, step: 1 }]
    );

    let merged = EnsembleResult::merge(&[picked.clone(), b_back.clone()]).unwrap();
    assert_eq!(merged.params.members(), 4);
    for (e, (part, k)) in [(&picked, 0), (&picked, 1), (&b_back, 0), (&b_back, 1)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(merged.params.member(e), part.params.member(k));
        assert_eq!(merged.member_losses(e), part.member_losses(k));
    }
    // A merged ensemble saves and loads like any other.
    save_result(&pa, &merged, &[]).unwrap();
    let again = Checkpoint::read(&pa)
        .unwrap()
        .result::<f64>(&layout())
        .unwrap();
    assert_eq!(
        (&again.params, &again.losses),
        (&merged.params, &merged.losses)
    );

    // Errors name the problem.
    assert!(a.select(&[]).is_err());
    let past = a.select(&[0, 3]).unwrap_err().to_string();
    assert!(past.contains("members"), "{past}");
    let mut short = b.clone();
    short.steps = 2;
    short.losses.truncate(4);
    let steps = EnsembleResult::merge(&[a.clone(), short])
        .unwrap_err()
        .to_string();
    assert!(
        steps.contains("part 1") && steps.contains("steps"),
        "{steps}"
    );
    let mut other = ParamLayout::new();
    other.add("w", [3]).unwrap();
    let foreign = EnsembleResult {
        params: Parameters::from_values(other, 1, vec![0.0; 3]).unwrap(),
        losses: vec![0.0; 4],
        steps: 4,
        stopped_early: false,
        diverged: vec![],
    };
    let layout_err = EnsembleResult::merge(&[a, foreign])
        .unwrap_err()
        .to_string();
    assert!(layout_err.contains("layout"), "{layout_err}");
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
}

fn bytes() -> Vec<u8> {
    let p = path("fuzz-source");
    save_result(&p, &result::<f64>(2, 3), &[("k", "v")]).unwrap();
    let b = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Truncations and byte flips of a valid file, and random bytes: an error or a valid
    /// checkpoint, never a panic.
    #[test]
    fn corrupted_checkpoints_never_panic(
        cut in 0usize..2000,
        flips in prop::collection::vec((0usize..2000, any::<u8>()), 0..4),
        random in prop::collection::vec(any::<u8>(), 0..64),
        use_random in any::<bool>(),
    ) {
        let mut b = if use_random { random } else { bytes() };
        for (i, v) in flips {
            if !b.is_empty() {
                let i = i % b.len();
                b[i] = v;
            }
        }
        b.truncate(cut.min(b.len()));
        if let Ok(c) = Checkpoint::from_bytes(&b) {
            let _ = c.params::<f64>(&layout(), 2);
            let _ = c.tensor::<f64>("losses", &[2, 4]);
        }
    }
}
