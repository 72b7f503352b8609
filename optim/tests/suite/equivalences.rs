//! optax-style equivalences: aliases equal their chains, chains equal their parts applied by
//! hand, and an E-member run equals E single-member runs.

use flock_optim::*;

fn grads(step: usize, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 37 + step * 11) % 23) as f64 / 11.0 - 1.0)
        .collect()
}

fn run<G: GradientTransformation<f64>>(opt: &G, layout: &Layout, steps: usize) -> Vec<f64> {
    let mut params: Vec<f64> = (0..layout.len())
        .map(|i| (i % 7) as f64 * 0.3 - 0.9)
        .collect();
    let mut state = opt.init(Params::new(&params, layout).unwrap());
    for t in 0..steps {
        let mut u = grads(t, layout.len());
        opt.update(&mut u, &mut state, Params::new(&params, layout).unwrap());
        apply_updates(&mut params, &u);
    }
    params
}

#[test]
fn adam_equals_scale_by_adam_then_scale() {
    let layout = Layout::new(3, [("w", 5), ("b", 2)]);
    let a = run(&adam(1e-2, AdamConfig::default()).unwrap(), &layout, 20);
    let b = run(
        &chain!(scale_by_adam(AdamConfig::default()).unwrap(), scale(-1e-2)),
        &layout,
        20,
    );
    assert_eq!(a, b);
}

#[test]
fn chain_equals_parts_by_hand() {
    let layout = Layout::new(2, [("w", 4), ("b", 3)]);
    let clip = clip_by_global_norm(0.5).unwrap();
    let ad = scale_by_adam(AdamConfig::default()).unwrap();
    let chained = run(&chain!(clip.clone(), ad.clone(), scale(-0.1)), &layout, 15);
    let mut params: Vec<f64> = (0..layout.len())
        .map(|i| (i % 7) as f64 * 0.3 - 0.9)
        .collect();
    let (mut s1, mut s2) = (
        GradientTransformation::<f64>::init(&clip, Params::new(&params, &layout).unwrap()),
        ad.init(Params::new(&params, &layout).unwrap()),
    );
    for t in 0..15 {
        let mut u = grads(t, layout.len());
        clip.update(&mut u, &mut s1, Params::new(&params, &layout).unwrap());
        ad.update(&mut u, &mut s2, Params::new(&params, &layout).unwrap());
        u.iter_mut().for_each(|v| *v *= -0.1);
        apply_updates(&mut params, &u);
    }
    assert_eq!(chained, params);
}

#[test]
fn ensemble_equals_single_member_runs() {
    // Per-member global norms and counts: member e of an E-member run equals a 1-member run on
    // member e's data.
    let e_layout = Layout::new(4, [("w", 6), ("b", 2)]);
    let opt = chain!(
        clip_by_global_norm(1.0).unwrap(),
        adamw(1e-2, AdamConfig::default(), 1e-3, None).unwrap()
    );
    let ensemble = run(&opt, &e_layout, 25);
    let p = e_layout.member_size();
    for e in 0..4 {
        let single = Layout::new(1, [("w", 6), ("b", 2)]);
        let mut params: Vec<f64> = (0..e_layout.len())
            .map(|i| (i % 7) as f64 * 0.3 - 0.9)
            .collect::<Vec<_>>()[e * p..(e + 1) * p]
            .to_vec();
        let mut state = opt.init(Params::new(&params, &single).unwrap());
        for t in 0..25 {
            let mut u = grads(t, e_layout.len())[e * p..(e + 1) * p].to_vec();
            opt.update(&mut u, &mut state, Params::new(&params, &single).unwrap());
            apply_updates(&mut params, &u);
        }
        assert_eq!(&ensemble[e * p..(e + 1) * p], &params[..], "member {e}");
    }
}

#[test]
fn invalid_hyperparameters_are_named() {
    let err = adam(-1.0, AdamConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            OptimError::InvalidHyperparameter {
                name: "learning_rate",
                ..
            }
        ),
        "{err}"
    );
    let err = scale_by_adam(AdamConfig {
        b1: 1.0,
        ..AdamConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, OptimError::InvalidHyperparameter { name: "b1", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("b1"));
    for beta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = scale_by_lion(0.9, 0.99)
            .unwrap()
            .with_sign(LionSign::Smooth { beta })
            .unwrap_err();
        assert!(
            matches!(
                err,
                OptimError::InvalidHyperparameter {
                    name: "smooth_beta",
                    ..
                }
            ),
            "{beta}: {err}"
        );
    }
}

/// Runs `steps` steps from `params`/`state`, in place.
fn advance<G: GradientTransformation<f64>>(
    opt: &G,
    layout: &Layout,
    params: &mut [f64],
    state: &mut G::State,
    range: std::ops::Range<usize>,
) {
    for t in range {
        let mut u = grads(t, params.len());
        opt.update(&mut u, state, Params::new(params, layout).unwrap());
        apply_updates(params, &u);
    }
}

/// Saving the state after k steps, loading it into a fresh `init` and continuing gives the
/// bits of an uninterrupted run.
fn check_resume<G: GradientTransformation<f64>>(name: &str, opt: G) {
    let layout = Layout::new(3, [("w", 4), ("b", 2)]);
    let start: Vec<f64> = (0..layout.len()).map(|i| (i as f64 * 0.37).sin()).collect();
    let mut straight = start.clone();
    let mut state = opt.init(Params::new(&straight, &layout).unwrap());
    advance(&opt, &layout, &mut straight, &mut state, 0..25);

    let mut resumed = start.clone();
    let mut first = opt.init(Params::new(&resumed, &layout).unwrap());
    advance(&opt, &layout, &mut resumed, &mut first, 0..11);
    let mut saved = Vec::new();
    first.save(&mut saved);
    let mut loaded = opt.init(Params::new(&resumed, &layout).unwrap());
    let mut src: &[f64] = &saved;
    loaded.load(&mut src).unwrap();
    assert!(src.is_empty(), "{name}: {} values left over", src.len());
    advance(&opt, &layout, &mut resumed, &mut loaded, 11..25);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&straight), bits(&resumed), "{name}");
    // A truncated state is refused.
    let mut short: &[f64] = &saved[..saved.len().saturating_sub(1)];
    if !saved.is_empty() {
        assert!(matches!(
            opt.init(Params::new(&resumed, &layout).unwrap())
                .load(&mut short),
            Err(OptimError::StateLength { .. })
        ));
    }
}

#[test]
fn saved_states_resume_bit_exactly() {
    let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 5, 30, 1e-4, 1.0).unwrap();
    check_resume("adam", adam(1e-2, AdamConfig::default()).unwrap());
    check_resume(
        "seed pattern B chain",
        chain(
            clip_by_global_norm(1.0).unwrap(),
            adamw(schedule.clone(), AdamConfig::default(), 1e-3, None).unwrap(),
        ),
    );
    check_resume("amsgrad", amsgrad(1e-2, AdamConfig::default()).unwrap());
    check_resume(
        "multi_steps",
        multi_steps(adam(1e-2, AdamConfig::default()).unwrap(), 3).unwrap(),
    );
    check_resume(
        "masked + apply_if_finite",
        apply_if_finite(
            masked(sgd(1e-2, Some(0.9), false).unwrap(), LeafMask::only(["w"])),
            2,
        ),
    );
    check_resume(
        "rmsprop",
        rmsprop(1e-2, RmsConfig::default(), true, Some(0.9), false).unwrap(),
    );
    let boxed = BoxedTransformation::new(lion(1e-3, 0.9, 0.99, 0.0, None).unwrap());
    check_resume("boxed lion", boxed);
}

/// Updating an ensemble as separate blocks of members — each block with its part of the state
/// ([`MemberState::split_off`]) and its [`Layout::block`] — gives the bits of one update of the
/// whole ensemble, and putting the parts back together ([`MemberState::append`]) gives its state.
fn check_blocks<G: GradientTransformation<f64>>(name: &str, opt: G) {
    let layout = Layout::new(5, [("w", 4), ("b", 2)]);
    let p = layout.member_size();
    let blocks = [0..2, 2..3, 3..5];
    // Member 3's gradients are NaN at step 6 (exercises `apply_if_finite`'s per-member skip).
    let grads_at = |t: usize| {
        let mut g = grads(t, layout.len());
        if t == 6 {
            g[3 * p + 1] = f64::NAN;
        }
        g
    };
    let start: Vec<f64> = (0..layout.len()).map(|i| (i as f64 * 0.53).cos()).collect();
    let mut whole = start.clone();
    let mut state = opt.init(Params::new(&whole, &layout).unwrap());
    for t in 0..12 {
        let mut u = grads_at(t);
        opt.update(&mut u, &mut state, Params::new(&whole, &layout).unwrap());
        apply_updates(&mut whole, &u);
    }

    let mut parted = start.clone();
    let mut rest = opt.init(Params::new(&parted, &layout).unwrap());
    let mut parts = Vec::new();
    for r in blocks.iter().rev() {
        parts.push(rest.split_off(r.start, r.end));
    }
    parts.reverse();
    for t in 0..12 {
        let mut u = grads_at(t);
        for (r, part) in blocks.iter().zip(&mut parts) {
            let block = layout.block(r.clone());
            let span = r.start * p..r.end * p;
            opt.update(
                &mut u[span.clone()],
                part,
                Params::new(&parted[span.clone()], &block).unwrap(),
            );
            apply_updates(&mut parted[span.clone()], &u[span]);
        }
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&whole), bits(&parted), "{name}: parameters");
    for part in parts {
        rest.append(part);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    state.save(&mut a);
    rest.save(&mut b);
    assert_eq!(bits(&a), bits(&b), "{name}: joined state");
}

#[test]
fn blocks_of_members_update_as_the_whole_ensemble() {
    let schedule = warmup_cosine_decay_schedule(1e-4, 5e-3, 5, 30, 1e-4, 1.0).unwrap();
    let each = |v: &[f64]| PerMember::Each(v.to_vec());
    check_blocks("adam", adam(1e-2, AdamConfig::default()).unwrap());
    check_blocks(
        "clip + adamw, per-member weight decay",
        chain(
            clip_by_global_norm(1.0).unwrap(),
            adamw(
                schedule,
                AdamConfig::default(),
                each(&[1e-3, 2e-3, 3e-3, 4e-3, 5e-3]),
                None,
            )
            .unwrap(),
        ),
    );
    check_blocks(
        "per-member learning rates",
        sgd(vec![1e-2, 2e-2, 3e-2, 4e-2, 5e-2], Some(0.9), true).unwrap(),
    );
    check_blocks(
        "injected per-member learning rates",
        chain(
            scale_by_adam(AdamConfig::default()).unwrap(),
            scale_by_learning_rate(LearningRate::Injected(each(&[1.0, 2.0, 3.0, 4.0, 5.0])))
                .unwrap(),
        ),
    );
    check_blocks(
        "scale per member",
        scale(each(&[1.0, -2.0, 3.0, -4.0, 5.0])),
    );
    check_blocks("amsgrad", amsgrad(1e-2, AdamConfig::default()).unwrap());
    check_blocks(
        "multi_steps",
        multi_steps(adam(1e-2, AdamConfig::default()).unwrap(), 3).unwrap(),
    );
    check_blocks(
        "masked + apply_if_finite",
        apply_if_finite(
            masked(sgd(1e-2, Some(0.9), false).unwrap(), LeafMask::only(["w"])),
            2,
        ),
    );
    check_blocks(
        "centered rmsprop",
        rmsprop(1e-2, RmsConfig::default(), true, Some(0.9), false).unwrap(),
    );
    check_blocks(
        "boxed lion",
        BoxedTransformation::new(lion(1e-3, 0.9, 0.99, 0.0, None).unwrap()),
    );
}

/// The checkpoint tag names the transformation by composition, not by Rust type paths: equal
/// for equal chains, different for different optimizers, and the same through a box.
#[test]
fn state_tags_name_the_transformation() {
    let layout = Layout::new(2, [("w", 3)]);
    let params = vec![0.0; layout.len()];
    let p = || Params::new(&params, &layout).unwrap();
    let adam_tag = adam(1e-2, AdamConfig::default()).unwrap().init(p()).tag();
    assert_eq!(adam_tag, "(scale_by_adam,scale_by_learning_rate)");
    let by_hand = chain!(
        scale_by_adam(AdamConfig::default()).unwrap(),
        scale_by_learning_rate(1e-3).unwrap()
    );
    assert_eq!(by_hand.init(p()).tag(), adam_tag);
    let sgd_tag = sgd(1e-2, None, false).unwrap().init(p()).tag();
    assert_ne!(sgd_tag, adam_tag);
    let boxed = BoxedTransformation::new(adam(1e-2, AdamConfig::default()).unwrap());
    assert_eq!(boxed.init(p()).tag(), adam_tag);
    let clipped = chain!(
        clip_by_global_norm(1.0).unwrap(),
        adam(1e-2, AdamConfig::default()).unwrap()
    );
    assert_eq!(
        clipped.init(p()).tag(),
        "(empty,(scale_by_adam,scale_by_learning_rate))"
    );
}

/// `update_and_apply` — what `ensemble_step` calls, the learning-rate scale merged with the
/// addition — is bit for bit `update` then `apply_updates`, for every named optimizer (the
/// rate last, or followed by a trace as in `rmsprop`), scheduled and per-member rates, a type-
/// erased optimizer and a wrapper, in both precisions and across members with their own rates.
#[test]
fn update_and_apply_is_update_then_apply_updates() {
    fn both<T: flock_kernels::Element, G: GradientTransformation<T>>(name: &str, opt: &G) {
        let layout = Layout::new(3, [("w", 37), ("b", 5)]);
        let start: Vec<T> = (0..layout.len())
            .map(|i| T::from_f64((i % 7) as f64 * 0.3 - 0.9))
            .collect();
        let (mut fused, mut apart) = (start.clone(), start);
        let mut state = opt.init(Params::new(&fused, &layout).unwrap());
        let mut state_apart = opt.init(Params::new(&apart, &layout).unwrap());
        for t in 0..25 {
            let g: Vec<T> = grads(t, layout.len())
                .into_iter()
                .map(T::from_f64)
                .collect();
            let mut u = g.clone();
            opt.update_and_apply(&mut u, &mut state, &mut fused, &layout);
            let mut u = g;
            opt.update(
                &mut u,
                &mut state_apart,
                Params::new(&apart, &layout).unwrap(),
            );
            apply_updates(&mut apart, &u);
            assert_eq!(fused, apart, "{name} <{}>, step {t}", T::NAME);
        }
    }
    fn each<T: flock_kernels::Element>() {
        let config = AdamConfig::default();
        let schedule = cosine_decay_schedule(1e-2, 25, 0.0, 1.0).unwrap();
        both::<T, _>("adam", &adam(1e-2, config).unwrap());
        both::<T, _>("adam, cosine", &adam(schedule.clone(), config).unwrap());
        both::<T, _>(
            "adam, per member",
            &adam(vec![1e-2, 3e-3, 0.1], config).unwrap(),
        );
        both::<T, _>("nadam", &nadam(1e-2, config).unwrap());
        both::<T, _>("adamw", &adamw(1e-2, config, 1e-2, None).unwrap());
        both::<T, _>("amsgrad", &amsgrad(1e-2, config).unwrap());
        both::<T, _>("adabelief", &adabelief(1e-2, config).unwrap());
        let rms = RmsConfig::default();
        both::<T, _>(
            "rmsprop",
            &rmsprop(1e-2, rms, false, Some(0.9), false).unwrap(),
        );
        both::<T, _>("rmsprop", &rmsprop(1e-2, rms, true, None, false).unwrap());
        both::<T, _>("adagrad", &adagrad(1e-2, 0.1, 1e-7).unwrap());
        both::<T, _>("lion", &lion(1e-3, 0.9, 0.99, 1e-3, None).unwrap());
        both::<T, _>("lamb", &lamb(1e-2, config, 0.0, None).unwrap());
        both::<T, _>("sgd", &sgd(0.1, None, false).unwrap());
        both::<T, _>("sgd, momentum", &sgd(0.1, Some(0.9), true).unwrap());
        both::<T, _>(
            "boxed adam",
            &BoxedTransformation::new(adam(schedule, config).unwrap()),
        );
        both::<T, _>(
            "apply_if_finite(adam)",
            &apply_if_finite(adam(1e-2, config).unwrap(), 3),
        );
    }
    each::<f32>();
    each::<f64>();
}
