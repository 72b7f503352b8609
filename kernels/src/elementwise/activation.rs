//! Activations as an enum, their derivatives from the output, and the fused bias + activation
//! used by every MLP layer (forward and backward).

use super::map::{map1_in_place, map1_in_place_paired, map3};
use super::math::{relu_vec, sigmoid_vec, softplus_vec, tanh_vec};
use crate::frame::align_frame;
use crate::{Element, SimdVector};

/// A pointwise activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `f(x) = x`.
    Identity,
    /// `f(x) = tanh x`; `f' = 1 − y²`.
    Tanh,
    /// `f(x) = 1/(1 + e^{−x})`; `f' = y(1 − y)`.
    Sigmoid,
    /// `f(x) = ln(1 + e^x)`; `f' = σ(x) = 1 − e^{−y}`.
    Softplus,
    /// `f(x) = max(x, 0)`; `f' = [y > 0]`.
    Relu,
}

/// One activation as a type: the loops below are compiled once per activation with its
/// function inlined, the [`Activation`] matched once per call ([`with_pointwise!`]). Matched
/// inside the loops, it cost an indirect jump through a table for every vector of the fused
/// layer backward. Measured (Zen 3, AVX2, the seed's step on one thread, fastest of eight
/// alternated runs): f32 187.9 → 184.3 µs; f64 unchanged within noise (411.7 → 411.1 µs).
trait Pointwise {
    /// `f(x)`.
    fn apply<V: SimdVector>(x: V) -> V;
    /// `(f(a), f(b))`, bitwise `apply` of each.
    #[inline(always)]
    fn apply_pair<V: SimdVector>(a: V, b: V) -> (V, V) {
        (Self::apply(a), Self::apply(b))
    }
    /// `f'` from the output `y = f(x)`.
    fn derivative_from_output<V: SimdVector>(y: V) -> V;
}

fn one<V: SimdVector>() -> V {
    V::splat(<V::Scalar as Element>::ONE)
}

struct IdentityFn;
impl Pointwise for IdentityFn {
    #[inline(always)]
    fn apply<V: SimdVector>(x: V) -> V {
        x
    }
    #[inline(always)]
    fn derivative_from_output<V: SimdVector>(_: V) -> V {
        one()
    }
}

struct TanhFn;
impl Pointwise for TanhFn {
    #[inline(always)]
    fn apply<V: SimdVector>(x: V) -> V {
        tanh_vec(x)
    }
    #[inline(always)]
    fn apply_pair<V: SimdVector>(a: V, b: V) -> (V, V) {
        V::tanh_pair(a, b)
    }
    #[inline(always)]
    fn derivative_from_output<V: SimdVector>(y: V) -> V {
        (-y).mul_add(y, one())
    }
}

struct SigmoidFn;
impl Pointwise for SigmoidFn {
    #[inline(always)]
    fn apply<V: SimdVector>(x: V) -> V {
        sigmoid_vec(x)
    }
    #[inline(always)]
    fn derivative_from_output<V: SimdVector>(y: V) -> V {
        y * (one::<V>() - y)
    }
}

struct SoftplusFn;
impl Pointwise for SoftplusFn {
    #[inline(always)]
    fn apply<V: SimdVector>(x: V) -> V {
        softplus_vec(x)
    }
    #[inline(always)]
    fn derivative_from_output<V: SimdVector>(y: V) -> V {
        -(-y).exp_m1()
    }
}

struct ReluFn;
impl Pointwise for ReluFn {
    #[inline(always)]
    fn apply<V: SimdVector>(x: V) -> V {
        relu_vec(x)
    }
    #[inline(always)]
    fn derivative_from_output<V: SimdVector>(y: V) -> V {
        let zero = V::splat(<V::Scalar as Element>::ZERO);
        y.select_gt(zero, one(), zero)
    }
}

/// `$body` with `$f` naming the [`Pointwise`] type of `$activation`.
macro_rules! with_pointwise {
    ($activation:expr, $f:ident => $body:expr) => {
        match $activation {
            Activation::Identity => {
                type $f = IdentityFn;
                $body
            }
            Activation::Tanh => {
                type $f = TanhFn;
                $body
            }
            Activation::Sigmoid => {
                type $f = SigmoidFn;
                $body
            }
            Activation::Softplus => {
                type $f = SoftplusFn;
                $body
            }
            Activation::Relu => {
                type $f = ReluFn;
                $body
            }
        }
    };
}

impl Activation {
    /// Every activation, in the order of their names' listing in messages.
    pub const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Identity,
    ];

    /// Its name: `relu`, `tanh`, `sigmoid`, `softplus` or `identity`.
    ///
    /// ```
    /// use flock_kernels::Activation;
    /// for a in Activation::ALL {
    ///     assert_eq!(a.name().parse::<Activation>(), Ok(a));
    /// }
    /// assert!("gelu".parse::<Activation>().unwrap_err().to_string().contains("identity"));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softplus => "softplus",
            Activation::Relu => "relu",
        }
    }

    /// `f(x)` per vector.
    #[inline(always)]
    pub fn apply_vec<V: SimdVector>(self, x: V) -> V {
        with_pointwise!(self, F => F::apply(x))
    }

    /// `(f(a), f(b))`, bitwise [`Activation::apply_vec`] of each; tanh computes the two
    /// together ([`SimdVector::tanh_pair`]).
    #[inline(always)]
    pub fn apply_pair_vec<V: SimdVector>(self, a: V, b: V) -> (V, V) {
        with_pointwise!(self, F => F::apply_pair(a, b))
    }

    /// `f'(x)` written in terms of the output `y = f(x)` — no second transcendental for tanh
    /// and sigmoid, and one `expm1` for softplus.
    #[inline(always)]
    pub fn derivative_from_output_vec<V: SimdVector>(self, y: V) -> V {
        with_pointwise!(self, F => F::derivative_from_output(y))
    }

    /// Scalar `f(x)` (the naive reference).
    pub fn apply_naive<T: Element>(self, x: T) -> T {
        use super::math::naive;
        match self {
            Activation::Identity => x,
            Activation::Tanh => naive::tanh(x),
            Activation::Sigmoid => naive::sigmoid(x),
            Activation::Softplus => naive::softplus(x),
            Activation::Relu => naive::relu(x),
        }
    }

    /// Scalar `f'` from the output (the naive reference).
    pub fn derivative_from_output_naive<T: Element>(self, y: T) -> T {
        match self {
            Activation::Identity => T::ONE,
            Activation::Tanh => T::ONE - y * y,
            Activation::Sigmoid => y * (T::ONE - y),
            Activation::Softplus => -(-y).exp_m1(),
            Activation::Relu => {
                if y > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
        }
    }
}

/// Whether a backward kernel overwrites its gradient output or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `out = value`.
    Overwrite,
    /// `out += value` (gradients of a value used twice accumulate).
    Accumulate,
}

/// `x = f(x)` in place.
pub fn activate_in_place<T: Element>(activation: Activation, x: &mut [T]) {
    with_pointwise!(activation, F => map1_in_place_paired(x, F::apply, F::apply_pair));
}

/// `dx (=|+=) dy ⊙ f'(y)` where `y = f(x)` is the forward output.
///
/// # Panics
/// If the three slices differ in length.
pub fn activation_backward<T: Element>(
    activation: Activation,
    y: &[T],
    dy: &[T],
    dx: &mut [T],
    store: Store,
) {
    with_pointwise!(activation, F => backward_map::<T, F>(y, dy, dx, store));
}

/// [`activation_backward`] with the activation's type `F`.
#[inline(always)]
fn backward_map<T: Element, F: Pointwise>(y: &[T], dy: &[T], dx: &mut [T], store: Store) {
    match store {
        Store::Overwrite => map3(y, dy, dx, |y, dy, _| dy * F::derivative_from_output(y)),
        Store::Accumulate => map3(y, dy, dx, |y, dy, dx| {
            dy.mul_add(F::derivative_from_output(y), dx)
        }),
    }
}

/// Fused layer epilogue: `z[e, r, :] = f(z[e, r, :] + bias[e, :])` in place.
///
/// - `z`: shape `[members, rows, cols]` (pre-activations, e.g. the output of a GEMM).
/// - `bias`: shape `[members, cols]`.
///
/// # Panics
/// If a slice's length disagrees with `members`, `rows` and `cols`.
pub fn bias_activation_forward<T: Element>(
    activation: Activation,
    members: usize,
    rows: usize,
    cols: usize,
    z: &mut [T],
    bias: &[T],
) {
    assert_eq!(
        z.len(),
        members * rows * cols,
        "bias_activation_forward: z must be [members={members}, rows={rows}, cols={cols}]"
    );
    assert_eq!(
        bias.len(),
        members * cols,
        "bias_activation_forward: bias must be [members={members}, cols={cols}]"
    );
    if cols == 0 {
        return;
    }
    if activation == Activation::Identity && cols == 1 {
        // One output column (a regression head): each member's column is one run of `rows`
        // values plus one bias, which the compiler vectorises, where the loop below would
        // make a row-long (one-value) inner loop per row.
        for (z_e, &b) in z.chunks_exact_mut(rows.max(1)).zip(bias) {
            for v in z_e {
                *v += b;
            }
        }
        return;
    }
    if activation == Activation::Identity {
        // Only the bias: a plain loop (also fast for narrow layers, where the vector tail
        // handling would dominate).
        for (z_e, b_e) in z
            .chunks_exact_mut((rows * cols).max(1))
            .zip(bias.chunks_exact(cols))
        {
            for row in z_e.chunks_exact_mut(cols) {
                for (v, &b) in row.iter_mut().zip(b_e) {
                    *v += b;
                }
            }
        }
        return;
    }
    with_pointwise!(activation, F => bias_activation_rows::<T, F>(rows, cols, z, bias));
}

/// [`bias_activation_forward`] (checked shapes, `cols > 0`) with the activation's type `F`.
#[inline(always)]
fn bias_activation_rows<T: Element, F: Pointwise>(
    rows: usize,
    cols: usize,
    z: &mut [T],
    bias: &[T],
) {
    align_frame();
    let lanes = T::Vector::LANES;
    let body = cols - cols % lanes;
    for (z_e, b_e) in z
        .chunks_exact_mut((rows * cols).max(1))
        .zip(bias.chunks_exact(cols))
    {
        for row in z_e.chunks_exact_mut(cols) {
            // Two vectors at a time (their activations computed together), then the last
            // whole vector alone.
            let pairs = body - body % (2 * lanes);
            for (zc, bc) in row[..pairs]
                .chunks_exact_mut(2 * lanes)
                .zip(b_e[..pairs].chunks_exact(2 * lanes))
            {
                let (z0, z1) = zc.split_at_mut(lanes);
                let a = T::Vector::from_slice(z0) + T::Vector::from_slice(&bc[..lanes]);
                let b = T::Vector::from_slice(z1) + T::Vector::from_slice(&bc[lanes..]);
                let (a, b) = F::apply_pair(a, b);
                a.write_to(z0);
                b.write_to(z1);
            }
            for (zc, bc) in row[pairs..body]
                .chunks_exact_mut(lanes)
                .zip(b_e[pairs..body].chunks_exact(lanes))
            {
                let v = T::Vector::from_slice(zc) + T::Vector::from_slice(bc);
                F::apply(v).write_to(zc);
            }
            if body < cols {
                let tail = &mut row[body..];
                for (t, &b) in tail.iter_mut().zip(&b_e[body..]) {
                    *t += b;
                }
                map1_in_place(tail, F::apply);
            }
        }
    }
}

mod outer;
pub use outer::{outer_bias_activation_backward, outer_bias_activation_forward};

/// Backward of [`bias_activation_forward`]: `dz = dy ⊙ f'(y)` (overwrite) and
/// `dbias[e, :] += Σ_r dz[e, r, :]`.
///
/// - `y`, `dy`, `dz`: shape `[members, rows, cols]` (`y` is the forward output).
/// - `dbias`: shape `[members, cols]`, accumulated into.
///
/// # Panics
/// If a slice's length disagrees with `members`, `rows` and `cols`.
#[allow(clippy::too_many_arguments)]
pub fn bias_activation_backward<T: Element>(
    activation: Activation,
    members: usize,
    rows: usize,
    cols: usize,
    y: &[T],
    dy: &[T],
    dz: &mut [T],
    dbias: &mut [T],
) {
    let n = members * rows * cols;
    assert!(
        y.len() == n && dy.len() == n && dz.len() == n,
        "bias_activation_backward: y, dy and dz must be [members={members}, rows={rows}, cols={cols}]"
    );
    assert_eq!(
        dbias.len(),
        members * cols,
        "bias_activation_backward: dbias must be [members={members}, cols={cols}]"
    );
    if cols == 0 || rows == 0 {
        return;
    }
    with_pointwise!(activation, F => backward_members::<T, F>(rows, cols, y, dy, dz, dbias));
}

/// [`bias_activation_backward`] of one member whose output gradient is an outer product,
/// `dy = g·wᵀ` (`dy[r, c] = g[r]·w[c]`, each product rounded once) — the input gradient of a
/// one-output layer above, `g` its output gradient and `w` its weights — without writing `dy`
/// out: the bits of writing it and calling [`bias_activation_backward`].
///
/// - `y`, `dz`: shape `[rows, cols]`; `g`: `[rows]`; `w`, `dbias`: `[cols]` (`dbias`
///   accumulated into).
///
/// # Panics
/// If a slice's length disagrees with `rows = g.len()` and `cols = w.len()`.
pub fn bias_activation_backward_outer<T: Element>(
    activation: Activation,
    y: &[T],
    g: &[T],
    w: &[T],
    dz: &mut [T],
    dbias: &mut [T],
) {
    let (rows, cols) = (g.len(), w.len());
    assert!(
        y.len() == rows * cols && dz.len() == rows * cols && dbias.len() == cols,
        "bias_activation_backward_outer: y and dz must be [rows={rows}, cols={cols}] and dbias [{cols}]"
    );
    if cols == 0 || rows == 0 {
        return;
    }
    with_pointwise!(activation, F => backward_outer::<T, F>(y, g, w, dz, dbias));
}

/// [`bias_activation_backward_outer`] (checked shapes, `rows, cols > 0`) with the activation's
/// type `F`.
#[inline(always)]
fn backward_outer<T: Element, F: Pointwise>(
    y: &[T],
    g: &[T],
    w: &[T],
    dz: &mut [T],
    dbias: &mut [T],
) {
    align_frame();
    backward_member::<T, F>(y, OutputGradient::Outer { g, w }, dz, dbias);
}

/// [`bias_activation_backward`] (checked shapes, `rows, cols > 0`) with the activation's type
/// `F`, a member at a time.
#[inline(always)]
fn backward_members<T: Element, F: Pointwise>(
    rows: usize,
    cols: usize,
    y: &[T],
    dy: &[T],
    dz: &mut [T],
    dbias: &mut [T],
) {
    align_frame();
    let block = rows * cols;
    for (e, db_e) in dbias.chunks_exact_mut(cols).enumerate() {
        let range = e * block..(e + 1) * block;
        let (y_e, dy_e, dz_e) = (&y[range.clone()], &dy[range.clone()], &mut dz[range]);
        backward_member::<T, F>(y_e, OutputGradient::Full(dy_e), dz_e, db_e);
    }
}

/// A layer's output gradient `dy` (`[rows, cols]`, one member's) as the fused backward reads it.
#[derive(Clone, Copy)]
enum OutputGradient<'a, T> {
    /// Written out, row-major.
    Full(&'a [T]),
    /// `dy[r, c] = g[r]·w[c]`, each product rounded once: never written out.
    Outer { g: &'a [T], w: &'a [T] },
}

/// One member's fused backward (`rows, cols > 0`; `cols = db.len()`): rows of whole vectors in
/// one pass per block of up to four vectors of columns, down the rows ([`backward_rows`]);
/// other widths in two passes.
#[inline(always)]
fn backward_member<T: Element, F: Pointwise>(
    y: &[T],
    dy: OutputGradient<'_, T>,
    dz: &mut [T],
    db: &mut [T],
) {
    let (lanes, cols) = (T::Vector::LANES, db.len());
    if !cols.is_multiple_of(lanes) {
        match dy {
            OutputGradient::Full(dy) => backward_map::<T, F>(y, dy, dz, Store::Overwrite),
            OutputGradient::Outer { g, w } => {
                for (row, &g) in dz.chunks_exact_mut(cols).zip(g) {
                    for (d, &w) in row.iter_mut().zip(w) {
                        *d = g * w;
                    }
                }
                map3(y, y, dz, |y, _, dy| dy * F::derivative_from_output(y));
            }
        }
        super::reduce::add_column_sums(dz, db);
        return;
    }
    let mut start = 0;
    while start < cols {
        start += match (cols - start) / lanes {
            1 => backward_rows::<T, F, 1>(start, y, dy, dz, db),
            2 => backward_rows::<T, F, 2>(start, y, dy, dz, db),
            3 => backward_rows::<T, F, 3>(start, y, dy, dz, db),
            _ => backward_rows::<T, F, 4>(start, y, dy, dz, db),
        };
    }
}

/// One member's `K` vectors of columns from `start` (its rows being whole vectors): each row's
/// `dz` there is computed, stored and added to the bias gradient held in registers, in row
/// order — the same values and the same summation order as the two passes
/// ([`activation_backward`], then [`add_column_sums`](super::reduce::add_column_sums)), without
/// reading `dz` back. Returns the columns done.
#[inline(always)]
fn backward_rows<T: Element, F: Pointwise, const K: usize>(
    start: usize,
    y: &[T],
    dy: OutputGradient<'_, T>,
    dz: &mut [T],
    db: &mut [T],
) -> usize {
    let (lanes, cols) = (T::Vector::LANES, db.len());
    assert!(y.len() == dz.len() && start + K * lanes <= cols);
    let rows = dz.len() / cols;
    // An outer product's `w` vectors of the block, loaded once for all the rows.
    let (g, w) = match dy {
        OutputGradient::Full(_) => (&[][..], [T::Vector::splat(T::ZERO); K]),
        OutputGradient::Outer { g, w } => (
            &g[..rows],
            core::array::from_fn(|k| T::Vector::from_slice(&w[start + k * lanes..])),
        ),
    };
    super::reduce::accumulate_columns::<T, K>(rows, db, start, |r, c| {
        let i = r * cols + c;
        let dy = match dy {
            OutputGradient::Full(dy) => T::Vector::from_slice(&dy[i..]),
            OutputGradient::Outer { .. } => T::Vector::splat(g[r]) * w[(c - start) / lanes],
        };
        let d = dy * F::derivative_from_output(T::Vector::from_slice(&y[i..]));
        d.write_to(&mut dz[i..]);
        d
    });
    K * T::Vector::LANES
}

/// Naive references for the fused layer epilogue.
pub mod naive {
    use super::Activation;
    use crate::Element;

    /// Reference for [`super::bias_activation_forward`].
    pub fn bias_activation_forward<T: Element>(
        activation: Activation,
        members: usize,
        rows: usize,
        cols: usize,
        z: &mut [T],
        bias: &[T],
    ) {
        for e in 0..members {
            for r in 0..rows {
                for c in 0..cols {
                    let i = (e * rows + r) * cols + c;
                    z[i] = activation.apply_naive(z[i] + bias[e * cols + c]);
                }
            }
        }
    }

    /// Reference for [`super::bias_activation_backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn bias_activation_backward<T: Element>(
        activation: Activation,
        members: usize,
        rows: usize,
        cols: usize,
        y: &[T],
        dy: &[T],
        dz: &mut [T],
        dbias: &mut [T],
    ) {
        for e in 0..members {
            for r in 0..rows {
                for c in 0..cols {
                    let i = (e * rows + r) * cols + c;
                    dz[i] = dy[i] * activation.derivative_from_output_naive(y[i]);
                    dbias[e * cols + c] += dz[i];
                }
            }
        }
    }
}

/// An activation name that is not one of [`Activation::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownActivation(pub String);

impl core::fmt::Display for UnknownActivation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown activation {:?}: expected ", self.0)?;
        for (i, a) in Activation::ALL.iter().enumerate() {
            let sep = match i {
                0 => "",
                i if i + 1 == Activation::ALL.len() => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{}", a.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownActivation {}

impl core::str::FromStr for Activation {
    type Err = UnknownActivation;

    fn from_str(name: &str) -> Result<Activation, UnknownActivation> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| UnknownActivation(name.to_owned()))
    }
}

impl core::fmt::Display for Activation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
