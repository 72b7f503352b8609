//! Every op's gradient, and composed MLP log-joints', against central finite differences in f64,
//! on random shapes and values (including extreme inputs for tanh, softplus and exp).
//!
//! A non-scalar op output `y` is contracted with random per-member weights `c` (`Σ c ⊙ y`) so the
//! whole Jacobian is exercised. Finite differences perturb one parameter index in every member at
//! once: if a member's loss leaked into another member's gradient, they would disagree.

use flock_autograd::*;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

type Build = dyn Fn(&mut Graph<'_, f64>) -> Result<Var, AutogradError>;

/// Per-member losses at `params`.
fn losses(layout: &ParamLayout, members: usize, params: &[f64], build: &Build) -> Vec<f64> {
    let mut tape = Tape::new();
    let mut g = tape.graph_over(members, params, layout).unwrap();
    let loss = build(&mut g).unwrap();
    let mut out = vec![0.0; members];
    g.copy_values(loss, &mut out).unwrap();
    out
}

/// Asserts the tape's gradient of `build` equals central finite differences at `params`.
fn check_gradient(layout: &ParamLayout, members: usize, params: &[f64], build: &Build) {
    let mut tape = Tape::new();
    let mut grad = vec![0.0; params.len()];
    {
        let mut g = tape.graph_over(members, params, layout).unwrap();
        let loss = build(&mut g).unwrap();
        g.backward(loss, &mut grad).unwrap();
    }
    let p = layout.member_size();
    let scale = grad.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut work = params.to_vec();
    for i in 0..p {
        let steps: Vec<f64> = (0..members)
            .map(|e| 1e-6 * params[e * p + i].abs().max(1.0))
            .collect();
        for e in 0..members {
            work[e * p + i] = params[e * p + i] + steps[e];
        }
        let plus = losses(layout, members, &work, build);
        for e in 0..members {
            work[e * p + i] = params[e * p + i] - steps[e];
        }
        let minus = losses(layout, members, &work, build);
        for e in 0..members {
            work[e * p + i] = params[e * p + i];
            let fd = (plus[e] - minus[e]) / (2.0 * steps[e]);
            let ad = grad[e * p + i];
            let noise = 1e-9 * plus[e].abs().max(1.0) / steps[e];
            assert!(
                (fd - ad).abs() <= 1e-6 * scale + noise,
                "member {e}, parameter {i} ({}): tape {ad} vs finite differences {fd}",
                leaf_of(layout, i)
            );
        }
    }
}

fn leaf_of(layout: &ParamLayout, i: usize) -> String {
    let leaf = layout
        .leaves()
        .iter()
        .rfind(|l| l.offset <= i)
        .expect("index inside the layout");
    format!("{}[{}]", leaf.name, i - leaf.offset)
}

/// `Σ c ⊙ y` per member with fixed random weights `c`.
fn contract(g: &mut Graph<'_, f64>, y: Var, seed: u64) -> Result<Var, AutogradError> {
    let shape = g.shape(y);
    let mut rng = Pcg64::seed_from_u64(seed);
    let c: Vec<f64> = (0..g.members() * shape.elems())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let c = g.input_per_member(&c, shape)?;
    let prod = g.mul(y, c)?;
    Ok(g.sum(prod))
}

fn random_params(layout: &ParamLayout, members: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..members * layout.member_size())
        .map(|_| rng.random_range(lo..hi))
        .collect()
}

fn random_data(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Pcg64::seed_from_u64(seed ^ 0xdada);
    (0..len).map(|_| rng.random_range(-2.0..2.0)).collect()
}

const UNARY: [(UnaryKind<f64>, f64, f64); 13] = [
    (UnaryKind::Neg, -3.0, 3.0),
    (UnaryKind::Square, -3.0, 3.0),
    (UnaryKind::Sqrt, 0.2, 4.0),
    (UnaryKind::Exp, -20.0, 20.0),
    (UnaryKind::Log, 0.1, 10.0),
    (UnaryKind::Log1p, -0.9, 10.0),
    (UnaryKind::Tanh, -30.0, 30.0),
    (UnaryKind::Sigmoid, -30.0, 30.0),
    (UnaryKind::Softplus, -40.0, 40.0),
    (UnaryKind::Relu, -3.0, 3.0),
    (UnaryKind::Scale(-1.7), -3.0, 3.0),
    (UnaryKind::Offset(0.3), -3.0, 3.0),
    (UnaryKind::Tanh, -1.0, 1.0),
];

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn unary_ops(which in 0..UNARY.len(), members in 1usize..4, rows in 1usize..5,
                 cols in 1usize..6, seed in any::<u64>()) {
        let (kind, lo, hi) = UNARY[which];
        let mut layout = ParamLayout::new();
        let x = layout.add("x", [rows, cols]).unwrap();
        let params = random_params(&layout, members, lo, hi, seed);
        let build = move |g: &mut Graph<'_, f64>| {
            let v = g.param(x)?;
            let y = g.unary(v, kind);
            contract(g, y, seed)
        };
        check_gradient(&layout, members, &params, &build);
    }

    #[test]
    fn binary_ops_with_broadcasting(op in 0usize..4, form in 0usize..6, members in 1usize..4,
                                    rows in 1usize..5, cols in 1usize..5, seed in any::<u64>()) {
        // form: which shapes and which side is shared data.
        let full = Shape::new(&[rows, cols]);
        let (a_shape, b_shape, a_data, b_data) = match form {
            0 => (full, full, false, false),
            1 => (full, Shape::new(&[cols]), false, false),
            2 => (Shape::new(&[cols]), full, false, false),
            3 => (full, Shape::SCALAR, false, false),
            4 => (full, full, true, false),
            _ => (Shape::new(&[cols]), full, false, true),
        };
        let mut layout = ParamLayout::new();
        let a_id = layout.add("a", a_shape).unwrap();
        let b_id = layout.add("b", b_shape).unwrap();
        // Keep divisors away from 0.
        let params: Vec<f64> = random_params(&layout, members, 0.5, 2.0, seed)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { -v } else { v })
            .collect();
        let a_values = random_data(a_shape.elems(), seed);
        let b_values: Vec<f64> = random_data(b_shape.elems(), seed + 1)
            .into_iter()
            .map(|v| if v.abs() < 0.5 { v + 1.0 } else { v })
            .collect();
        let build = move |g: &mut Graph<'_, f64>| {
            let a = if a_data { g.input(&a_values, a_shape)? } else { g.param(a_id)? };
            let b = if b_data { g.input(&b_values, b_shape)? } else { g.param(b_id)? };
            let y = match op {
                0 => g.add(a, b)?,
                1 => g.sub(a, b)?,
                2 => g.mul(a, b)?,
                _ => g.div(a, b)?,
            };
            contract(g, y, seed)
        };
        check_gradient(&layout, members, &params, &build);
    }

    #[test]
    fn reductions_reshapes_and_columns(op in 0usize..8, members in 1usize..4, rows in 1usize..5,
                                       cols in 1usize..5, seed in any::<u64>()) {
        let mut layout = ParamLayout::new();
        let x = layout.add("x", [rows, cols]).unwrap();
        let params = random_params(&layout, members, -2.0, 2.0, seed);
        let build = move |g: &mut Graph<'_, f64>| {
            let v = g.param(x)?;
            match op {
                0 => Ok(g.sum(v)),
                1 => Ok(g.mean(v)),
                2 => Ok(g.sum_squares(v)),
                3 => {
                    let r = g.reshape(v, [cols * rows])?;
                    let s = g.square(r);
                    contract(g, s, seed)
                }
                4 => {
                    let c = g.select_column(v, cols - 1)?;
                    contract(g, c, seed)
                }
                6 => {
                    // Σ ln(v² + ½): positive arguments.
                    let s = g.square(v);
                    let s = g.offset(s, 0.5);
                    Ok(g.sum_log(s))
                }
                7 => {
                    // v ⊙ v² + v, every operand needing its gradient (and one node used twice).
                    let sq = g.square(v);
                    let y = g.mul_add(v, sq, v)?;
                    contract(g, y, seed)
                }
                _ => {
                    // The same value used twice accumulates.
                    let u = g.unsqueeze_last(v)?;
                    let u = g.squeeze_last(u)?;
                    let p = g.mul(v, u)?;
                    contract(g, p, seed)
                }
            }
        };
        check_gradient(&layout, members, &params, &build);
    }

    #[test]
    fn matmul_both_orientations(transposed in any::<bool>(), shared_lhs in any::<bool>(),
                                members in 1usize..4, m in 1usize..5, k in 1usize..5,
                                n in 1usize..5, seed in any::<u64>()) {
        let mut layout = ParamLayout::new();
        let a_id = layout.add("a", [m, k]).unwrap();
        let b_shape = if transposed { [n, k] } else { [k, n] };
        let b_id = layout.add("b", b_shape).unwrap();
        let params = random_params(&layout, members, -1.5, 1.5, seed);
        let a_values = random_data(m * k, seed);
        let build = move |g: &mut Graph<'_, f64>| {
            let a = if shared_lhs { g.input(&a_values, [m, k])? } else { g.param(a_id)? };
            let b = g.param(b_id)?;
            let y = if transposed { g.matmul_transposed(a, b)? } else { g.matmul(a, b)? };
            contract(g, y, seed)
        };
        check_gradient(&layout, members, &params, &build);
    }

    #[test]
    fn log_det_of_symmetric_positive_definite(direct in any::<bool>(), members in 1usize..4,
                                               n in 1usize..6, k in 1usize..4,
                                               seed in any::<u64>()) {
        // direct: a non-symmetric, diagonally dominant parameter matrix (the op reads its
        // symmetric part, so every entry has a gradient); otherwise a capacitance `I + A·Aᵀ`.
        let mut layout = ParamLayout::new();
        let id = if direct { layout.add("c", [n, n]) } else { layout.add("a", [n, k]) }.unwrap();
        let mut params = random_params(&layout, members, -1.0, 1.0, seed);
        if direct {
            for e in 0..members {
                for i in 0..n {
                    params[e * n * n + i * n + i] += n as f64 + 1.0;
                }
            }
        }
        let identity: Vec<f64> =
            (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let build = move |g: &mut Graph<'_, f64>| {
            let p = g.param(id)?;
            let c = if direct {
                p
            } else {
                let aat = g.matmul_transposed(p, p)?;
                let eye = g.input(&identity, [n, n])?;
                g.add(aat, eye)?
            };
            let ld = g.log_det_spd(c)?;
            Ok(g.scale(ld, 1.3))
        };
        check_gradient(&layout, members, &params, &build);
    }

    #[test]
    fn dense_layer(act in 0usize..5, with_bias in any::<bool>(), x_is_param in any::<bool>(),
                   members in 1usize..4, rows in 1usize..6, fan_in in 1usize..5,
                   fan_out in 1usize..5, seed in any::<u64>()) {
        let activation = [Activation::Identity, Activation::Tanh, Activation::Sigmoid,
                          Activation::Softplus, Activation::Relu][act];
        let mut layout = ParamLayout::new();
        let x_id = layout.add("x", [rows, fan_in]).unwrap();
        let lin = Linear::new(&mut layout, "", fan_in, fan_out, with_bias).unwrap();
        let params = random_params(&layout, members, -1.5, 1.5, seed);
        let x_values = random_data(rows * fan_in, seed);
        let build = move |g: &mut Graph<'_, f64>| {
            let x = if x_is_param { g.param(x_id)? } else { g.input(&x_values, [rows, fan_in])? };
            let y = lin.forward(g, x, activation)?;
            contract(g, y, seed)
        };
        check_gradient(&layout, members, &params, &build);
    }

    /// A one-output layer on a dense layer's activations `h` leaves its input gradient as two
    /// factors for that layer's backward: with `h` read by nothing else (`form` 0), read by
    /// another op recorded before the head (1: that op's claim writes the factors out) or after
    /// it (2: nothing is left pending), under a constant bias (3: the layer writes them out) and
    /// with no bias (4: never left pending).
    #[test]
    fn one_output_head_on_a_dense_layer(form in 0usize..5, act in 0usize..4,
                                        members in 1usize..4, rows in 1usize..6,
                                        fan_in in 1usize..4, hidden in 2usize..7,
                                        seed in any::<u64>()) {
        let activation = [Activation::Tanh, Activation::Sigmoid, Activation::Softplus,
                          Activation::Relu][act];
        let mut layout = ParamLayout::new();
        let w_id = layout.add("w", [hidden, fan_in]).unwrap();
        let b_id = layout.add("b", [hidden]).unwrap();
        let head = Linear::new(&mut layout, "head", hidden, 1, true).unwrap();
        let params = random_params(&layout, members, -1.5, 1.5, seed);
        let x_values = random_data(rows * fan_in, seed);
        let b_values = random_data(hidden, seed ^ 1);
        let build = move |g: &mut Graph<'_, f64>| {
            let x = g.input(&x_values, [rows, fan_in])?;
            let w = g.param(w_id)?;
            let b = match form {
                3 => Some(g.input(&b_values, [hidden])?),
                4 => None,
                _ => Some(g.param(b_id)?),
            };
            let h = g.dense(x, w, b, activation)?;
            let before = if form == 1 { Some(contract(g, h, seed ^ 2)?) } else { None };
            let y = head.forward(g, h, Activation::Identity)?;
            let loss = contract(g, y, seed)?;
            let after = if form == 2 { Some(contract(g, h, seed ^ 2)?) } else { None };
            match before.or(after) {
                Some(extra) => g.add(loss, extra),
                None => Ok(loss),
            }
        };
        check_gradient(&layout, members, &params, &build);
    }

    #[test]
    fn normal_log_density(form in 0usize..5, members in 1usize..4, n in 1usize..20,
                          seed in any::<u64>()) {
        let mut layout = ParamLayout::new();
        let v_id = layout.add("value", [n]).unwrap();
        let m_id = layout.add("loc", [n]).unwrap();
        let s_id = layout.add("scale", if form == 4 { Shape::SCALAR } else { Shape::new(&[n]) })
            .unwrap();
        // Scales must be positive: the scale leaf is last, draw every value in (0.3, 2).
        let params = random_params(&layout, members, 0.3, 2.0, seed);
        let data = random_data(n, seed);
        let build = move |g: &mut Graph<'_, f64>| {
            let (v, m, s) = (g.param(v_id)?, g.param(m_id)?, g.param(s_id)?);
            let y = g.input(&data, [n])?;
            match form {
                0 => g.normal_log_density(y, m, Arg::Const(0.7)),
                1 => g.normal_log_density(v, Arg::Const(0.1), Arg::Const(2.0)),
                2 => g.normal_log_density(y, m, s),
                3 => g.normal_log_density(v, m, s),
                _ => g.normal_log_density(v, y, s),
            }
        };
        check_gradient(&layout, members, &params, &build);
    }

    /// The categorical log-likelihood: its gradient in the logits (as parameters, or as the
    /// output of a layer) against finite differences — logits up to ±40, which would overflow
    /// nothing but test the shift — and its value against the naive formula.
    #[test]
    fn categorical_log_likelihood(members in 1usize..4, rows in 1usize..6, classes in 1usize..7,
                                  through_layer in any::<bool>(), seed in any::<u64>()) {
        let mut layout = ParamLayout::new();
        let z_id = layout.add("z", [rows, classes]).unwrap();
        let w_id = layout.add("w", [classes, classes]).unwrap();
        let params = random_params(&layout, members, -40.0, 40.0, seed);
        let mut rng = Pcg64::seed_from_u64(seed ^ 0x1abe1);
        let labels: Vec<f64> = (0..rows).map(|_| rng.random_range(0..classes) as f64).collect();
        let data = labels.clone();
        let build = move |g: &mut Graph<'_, f64>| {
            let z = g.param(z_id)?;
            let z = if through_layer {
                let w = g.param(w_id)?;
                let zw = g.matmul(z, w)?;
                g.scale(zw, 0.05)
            } else {
                z
            };
            let y = g.input(&data, [rows])?;
            g.categorical_log_likelihood(z, y)
        };
        check_gradient(&layout, members, &params, &build);
        if !through_layer {
            let got = losses(&layout, members, &params, &build);
            let p = layout.member_size();
            for (e, &got) in got.iter().enumerate() {
                let z = &params[e * p..e * p + rows * classes];
                let want: f64 = (0..rows)
                    .map(|i| {
                        let row = &z[i * classes..(i + 1) * classes];
                        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                        row[labels[i] as usize] - lse
                    })
                    .sum();
                prop_assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{got} vs {want}");
            }
        }
    }

    /// The Bernoulli log-likelihood `Σ y·z − softplus(z)`: gradient against finite differences
    /// (logits in ±40, `[N]` and `[N, 1]`) and value against the naive formula.
    #[test]
    fn bernoulli_log_likelihood(members in 1usize..4, rows in 1usize..8, column in any::<bool>(),
                                seed in any::<u64>()) {
        let mut layout = ParamLayout::new();
        let shape = if column { Shape::new(&[rows, 1]) } else { Shape::new(&[rows]) };
        let z_id = layout.add("z", shape).unwrap();
        let params = random_params(&layout, members, -40.0, 40.0, seed);
        let mut rng = Pcg64::seed_from_u64(seed ^ 0xb0b);
        let labels: Vec<f64> = (0..rows).map(|_| rng.random_range(0..2) as f64).collect();
        let data = labels.clone();
        let build = move |g: &mut Graph<'_, f64>| {
            let z = g.param(z_id)?;
            let y = g.input(&data, [rows])?;
            g.bernoulli_log_likelihood(z, y)
        };
        check_gradient(&layout, members, &params, &build);
        let got = losses(&layout, members, &params, &build);
        for (e, &got) in got.iter().enumerate() {
            let want: f64 = (0..rows)
                .map(|i| {
                    let z = params[e * rows + i];
                    labels[i] * z - (z.max(0.0) + (-z.abs()).exp().ln_1p())
                })
                .sum();
            prop_assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{got} vs {want}");
        }
    }

    #[test]
    fn composed_mlp_log_joints(act in 0usize..4, hetero in any::<bool>(), members in 1usize..3,
                               in_size in 1usize..3, width in 1usize..5, depth in 0usize..3,
                               rows in 1usize..6, seed in any::<u64>()) {
        let activation = [Activation::Tanh, Activation::Sigmoid, Activation::Softplus,
                          Activation::Relu][act];
        let out_size = if hetero { 2 } else { 1 };
        let mut layout = ParamLayout::new();
        let mlp = Mlp::new(&mut layout, "", MlpConfig::new(in_size, out_size, width, depth,
                                                             activation)).unwrap();
        let params = random_params(&layout, members, -1.0, 1.0, seed);
        let x = random_data(rows * in_size, seed);
        let y = random_data(rows, seed + 7);
        let build = move |g: &mut Graph<'_, f64>| {
            let xv = g.input(&x, [rows, in_size])?;
            let yv = g.input(&y, [rows])?;
            let out = mlp.forward(g, xv)?;
            let ll = if hetero {
                let mu = g.select_column(out, 0)?;
                let raw = g.select_column(out, 1)?;
                let s = g.softplus(raw);
                let s = g.offset(s, 1e-3);
                g.normal_log_density(yv, mu, s)?
            } else {
                let f = g.squeeze_last(out)?;
                g.normal_log_density(yv, f, Arg::Const(0.3))?
            };
            let theta = g.all_params();
            let lp = g.normal_log_density(theta, Arg::Const(0.0), Arg::Const(1.5))?;
            let ll = g.scale(ll, -2.0);
            let lp = g.scale(lp, -0.5);
            g.add(ll, lp)
        };
        check_gradient(&layout, members, &params, &build);
    }
}

/// The gradient a one-output head leaves as factors and another op's claim writes out (the
/// other op recorded before the head) is bitwise the one the head writes itself (the other op
/// recorded after it, so that nothing is left pending): both are `dy·w` by the same product,
/// plus the other op's term.
#[test]
fn a_factored_head_gradient_written_out_is_the_heads_own() {
    let (members, rows, fan_in, hidden) = (3, 5, 2, 7);
    let mut layout = ParamLayout::new();
    let layer = Linear::new(&mut layout, "layer", fan_in, hidden, true).unwrap();
    let head = Linear::new(&mut layout, "head", hidden, 1, true).unwrap();
    let params = random_params(&layout, members, -1.5, 1.5, 7);
    let x_values = random_data(rows * fan_in, 7);
    // Twice on one tape, so that the second backward finds the first's gradients in its buffers.
    let gradient = |head_first: bool| {
        let mut tape = Tape::new();
        let mut grad = vec![0.0; params.len()];
        let other: Vec<f64> = params.iter().map(|p| 0.5 - p).collect();
        for at in [&other, &params] {
            let mut g = tape.graph_over(members, at, &layout).unwrap();
            let x = g.input(&x_values, [rows, fan_in]).unwrap();
            let h = layer.forward(&mut g, x, Activation::Tanh).unwrap();
            let (y, extra) = if head_first {
                let y = head.forward(&mut g, h, Activation::Identity).unwrap();
                (y, g.sum_squares(h))
            } else {
                let extra = g.sum_squares(h);
                (
                    head.forward(&mut g, h, Activation::Identity).unwrap(),
                    extra,
                )
            };
            let y = g.sum(y);
            let loss = g.add(y, extra).unwrap();
            g.backward(loss, &mut grad).unwrap();
        }
        grad
    };
    let (factored, written) = (gradient(false), gradient(true));
    assert!(factored.iter().any(|&v| v != 0.0));
    assert_eq!(
        factored.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        written.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

/// Member e's gradient is unchanged when the other members' parameters change.
#[test]
fn members_never_mix() {
    let mut runner = proptest::test_runner::TestRunner::new(cases());
    runner
        .run(
            &(1usize..6, 0usize..6, any::<u64>(), any::<u64>()),
            |(members, pick, seed_a, seed_b)| {
                let e = pick % members;
                let mut layout = ParamLayout::new();
                let mlp = Mlp::new(
                    &mut layout,
                    "",
                    MlpConfig::new(2, 2, 6, 2, Activation::Tanh),
                )
                .unwrap();
                let p = layout.member_size();
                let a = random_params(&layout, members, -1.0, 1.0, seed_a);
                let mut b = random_params(&layout, members, -1.0, 1.0, seed_b);
                b[e * p..(e + 1) * p].copy_from_slice(&a[e * p..(e + 1) * p]);
                let x = random_data(14, seed_a);
                let y = random_data(7, seed_b);
                let grad_of = |params: &[f64]| {
                    let mut tape = Tape::new();
                    let mut g = tape.graph_over(members, params, &layout).unwrap();
                    let xv = g.input(&x, [7, 2]).unwrap();
                    let yv = g.input(&y, [7]).unwrap();
                    let out = mlp.forward(&mut g, xv).unwrap();
                    let mu = g.select_column(out, 0).unwrap();
                    let raw = g.select_column(out, 1).unwrap();
                    let s = g.softplus(raw);
                    let ll = g.normal_log_density(yv, mu, s).unwrap();
                    let mut grad = vec![0.0; params.len()];
                    g.backward(ll, &mut grad).unwrap();
                    let mut value = vec![0.0; members];
                    g.copy_values(ll, &mut value).unwrap();
                    (value[e], grad[e * p..(e + 1) * p].to_vec())
                };
                let (va, ga) = grad_of(&a);
                let (vb, gb) = grad_of(&b);
                prop_assert_eq!(va.to_bits(), vb.to_bits());
                prop_assert!(ga.iter().zip(&gb).all(|(x, y)| x.to_bits() == y.to_bits()));
                Ok(())
            },
        )
        .unwrap();
}

proptest! {
    #![proptest_config(cases())]

    /// `affine`: the dense layer with an `[in, out]` weight (`x·W + b`).
    #[test]
    fn affine_layer(act in 0usize..5, with_bias in any::<bool>(), x_is_param in any::<bool>(),
                    members in 1usize..4, rows in 1usize..6, fan_in in 1usize..5,
                    fan_out in 1usize..5, seed in any::<u64>()) {
        let activation = [Activation::Identity, Activation::Tanh, Activation::Sigmoid,
                          Activation::Softplus, Activation::Relu][act];
        let mut layout = ParamLayout::new();
        let x_id = layout.add("x", [rows, fan_in]).unwrap();
        let w_id = layout.add("w", [fan_in, fan_out]).unwrap();
        let b_id = layout.add("b", [fan_out]).unwrap();
        let params = random_params(&layout, members, -1.5, 1.5, seed);
        let x_values = random_data(rows * fan_in, seed);
        let build = move |g: &mut Graph<'_, f64>| {
            let x = if x_is_param { g.param(x_id)? } else { g.input(&x_values, [rows, fan_in])? };
            let w = g.param(w_id)?;
            let b = if with_bias { Some(g.param(b_id)?) } else { None };
            let y = g.affine(x, w, b, activation)?;
            // Same values as matmul + add + activation.
            let z = g.matmul(x, w)?;
            let z = match b { Some(b) => g.add(z, b)?, None => z };
            let reference = g.activation(z, activation);
            for e in 0..g.members() {
                assert_eq!(g.values(y, e), g.values(reference, e));
            }
            contract(g, y, seed)
        };
        check_gradient(&layout, members, &params, &build);
    }
}

/// Labels that are not class indices, and logits of the wrong shape, are refused by name.
#[test]
fn bad_labels_and_shapes_are_refused() {
    let layout = ParamLayout::new();
    let params: Vec<f64> = Vec::new();
    let mut tape = Tape::new();
    let mut g = tape.graph_over(2, &params, &layout).unwrap();
    let z = g.input(&[0.0; 6], [2, 3]).unwrap();
    for (labels, row) in [
        ([0.0, 3.0], 1),
        ([-1.0, 0.0], 0),
        ([0.5, 1.0], 0),
        ([f64::NAN, 1.0], 0),
    ] {
        let y = g.input(&labels, [2]).unwrap();
        match g.categorical_log_likelihood(z, y) {
            Err(AutogradError::InvalidLabel {
                row: r, classes: 3, ..
            }) => assert_eq!(r, row),
            other => panic!("{labels:?}: {other:?}"),
        }
    }
    let y = g.input(&[0.0, 1.0, 2.0], [3]).unwrap();
    assert!(matches!(
        g.categorical_log_likelihood(z, y),
        Err(AutogradError::ShapeMismatch { .. })
    ));
    let y = g.input(&[0.0, 1.0], [2]).unwrap();
    assert!(matches!(
        g.bernoulli_log_likelihood(z, y),
        Err(AutogradError::InvalidShape { .. })
    ));
    let one = g.input(&[0.0, 0.0], [2]).unwrap();
    let two = g.input(&[1.0, 2.0], [2]).unwrap();
    assert!(
        g.bernoulli_log_likelihood(one, two).is_err(),
        "2 is not a Bernoulli label"
    );
    let err = AutogradError::InvalidLabel {
        row: 4,
        value: 7.0,
        classes: 3,
    };
    assert_eq!(
        err.to_string(),
        "label 7 at row 4 is not a class index: expected a whole number from 0 to 2"
    );
}
