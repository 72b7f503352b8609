//! Parameter gradients are claimed range by range during the reverse walk (no buffer is cleared
//! up front): whatever the order in which ops reach overlapping parameter views (a leaf, the same
//! leaf read twice, every parameter at once), each gradient is the sum of its contributions, and a
//! parameter the loss does not depend on gets exactly zero — even over a buffer full of NaN.

use flock_autograd::*;

const MEMBERS: usize = 2;

struct Setup {
    layout: ParamLayout,
    a: ParamId,
    b: ParamId,
    d: ParamId,
    params: Vec<f64>,
}

/// Leaves `a: [3]`, `b: [3]`, `c: [2]` (never used by the losses below) and `d: [3]`.
fn setup() -> Setup {
    let mut layout = ParamLayout::new();
    let a = layout.add("a", [3]).unwrap();
    let b = layout.add("b", [3]).unwrap();
    layout.add("c", [2]).unwrap();
    let d = layout.add("d", [3]).unwrap();
    let p = layout.member_size();
    let params = (0..MEMBERS * p)
        .map(|i| 0.3 + 0.17 * i as f64 - 0.02 * (i * i) as f64)
        .collect();
    Setup {
        layout,
        a,
        b,
        d,
        params,
    }
}

/// Runs `loss` and returns the gradient, computed into a NaN-filled buffer.
fn gradient(
    s: &Setup,
    loss: impl FnOnce(&mut Graph<'_, f64>, &Setup) -> Result<Var, AutogradError>,
) -> Vec<f64> {
    let mut tape = Tape::new();
    let mut g = tape.graph_over(MEMBERS, &s.params, &s.layout).unwrap();
    let l = loss(&mut g, s).unwrap();
    let mut grads = vec![f64::NAN; s.params.len()];
    g.backward(l, &mut grads).unwrap();
    grads
}

/// Member `e`'s value of parameter index `i` (within the member block).
fn param(s: &Setup, e: usize, i: usize) -> f64 {
    s.params[e * s.layout.member_size() + i]
}

fn assert_grads(s: &Setup, got: &[f64], want: impl Fn(usize, usize) -> f64) {
    let p = s.layout.member_size();
    for e in 0..MEMBERS {
        for i in 0..p {
            let (g, w) = (got[e * p + i], want(e, i));
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "member {e} parameter {i}: {g} vs {w}"
            );
        }
    }
}

/// Indices within a member block: a 0..3, b 3..6, c 6..8, d 8..11.
fn leaf_of(i: usize) -> char {
    match i {
        0..=2 => 'a',
        3..=5 => 'b',
        6..=7 => 'c',
        _ => 'd',
    }
}

#[test]
fn unused_parameters_get_zero_and_used_ones_their_gradient() {
    let s = setup();
    // L = Σa + Σb²: c and d unused.
    let got = gradient(&s, |g, s| {
        let a = g.param(s.a)?;
        let b = g.param(s.b)?;
        let sa = g.sum(a);
        let sb = g.sum_squares(b);
        g.add(sa, sb)
    });
    assert_grads(&s, &got, |e, i| match leaf_of(i) {
        'a' => 1.0,
        'b' => 2.0 * param(&s, e, i),
        _ => 0.0,
    });
}

#[test]
fn overlapping_views_add_up_in_either_order() {
    let s = setup();
    // Every parameter through all_params, and a and d again on their own, recorded before and
    // after the whole view (so the reverse walk reaches them in both orders).
    let want = |e: usize, i: usize| {
        let x = param(&s, e, i);
        2.0 * x
            + match leaf_of(i) {
                'a' => 3.0,
                'd' => 2.0 * x,
                _ => 0.0,
            }
    };
    let all_last = gradient(&s, |g, s| {
        let a = g.param(s.a)?;
        let d = g.param(s.d)?;
        let sa = g.sum(a);
        let sa = g.scale(sa, 3.0);
        let sd = g.sum_squares(d);
        let theta = g.all_params();
        let st = g.sum_squares(theta);
        let l = g.add(sa, sd)?;
        g.add(l, st)
    });
    assert_grads(&s, &all_last, want);
    let all_first = gradient(&s, |g, s| {
        let theta = g.all_params();
        let st = g.sum_squares(theta);
        let a = g.param(s.a)?;
        let d = g.param(s.d)?;
        let sa = g.sum(a);
        let sa = g.scale(sa, 3.0);
        let sd = g.sum_squares(d);
        let l = g.add(st, sa)?;
        g.add(l, sd)
    });
    assert_grads(&s, &all_first, want);
}

#[test]
fn a_leaf_read_twice_and_a_guide_site_accumulate() {
    let s = setup();
    // z = softplus(b) ⊙ ε + a (a guide site), L = Σz² + Σa² (a read a second time) + Σ ln softplus(b).
    let eps = [0.5, -1.25, 2.0];
    let got = gradient(&s, |g, s| {
        let a = g.param(s.a)?;
        let b = g.param(s.b)?;
        let scale = g.softplus(b);
        let noise = g.input(&eps, [3])?;
        let z = g.mul_add(scale, noise, a)?;
        let sz = g.sum_squares(z);
        let a2 = g.param(s.a)?;
        let sa = g.sum_squares(a2);
        let sl = g.sum_log(scale);
        let l = g.add(sz, sa)?;
        g.add(l, sl)
    });
    assert_grads(&s, &got, |e, i| {
        let k = i % 3;
        let (a, b) = (param(&s, e, k), param(&s, e, 3 + k));
        let softplus = b.exp().ln_1p();
        let sigmoid = 1.0 / (1.0 + (-b).exp());
        let z = softplus * eps[k] + a;
        match leaf_of(i) {
            'a' => 2.0 * z + 2.0 * a,
            'b' => (2.0 * z * eps[k] + 1.0 / softplus) * sigmoid,
            _ => 0.0,
        }
    });
}

#[test]
fn matrix_products_overwrite_then_add() {
    let s = setup();
    // A = a as [1, 3], B = b as [3, 1], D = d as [1, 3]:
    // L = A·Aᵀ (both operands one storage) + A·B + 2·D·B (b reached by two products).
    let got = gradient(&s, |g, s| {
        let a = g.param(s.a)?;
        let a_row = g.reshape(a, [1, 3])?;
        let b = g.param(s.b)?;
        let b_col = g.reshape(b, [3, 1])?;
        let d = g.param(s.d)?;
        let d_row = g.reshape(d, [1, 3])?;
        let aa = g.matmul_transposed(a_row, a_row)?;
        let ab = g.matmul(a_row, b_col)?;
        let db = g.matmul(d_row, b_col)?;
        let (aa, ab, db) = (g.sum(aa), g.sum(ab), g.sum(db));
        let db = g.scale(db, 2.0);
        let l = g.add(aa, ab)?;
        g.add(l, db)
    });
    assert_grads(&s, &got, |e, i| {
        let k = match leaf_of(i) {
            'a' | 'c' => i % 3,
            'b' => i - 3,
            _ => i - 8,
        };
        let (a, b, d) = (param(&s, e, k), param(&s, e, 3 + k), param(&s, e, 8 + k));
        match leaf_of(i) {
            'a' => 2.0 * a + b,
            'b' => a + 2.0 * d,
            'd' => 2.0 * b,
            _ => 0.0,
        }
    });
}
