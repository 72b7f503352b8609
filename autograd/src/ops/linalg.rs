//! Small dense linear algebra per member: the log-determinant of a symmetric positive-definite
//! matrix (a low-rank Gaussian's capacitance matrix), through its Cholesky factor.

use flock_kernels::Element;

use super::{Backward, Op};
use crate::tape::Node;
use crate::{AutogradError, Graph, Shape, Var};

impl<T: Element> Graph<'_, T> {
    /// `ln det C` per member for a symmetric positive-definite `C: [n, n]`, by Cholesky
    /// (`C = L·Lᵀ`, `ln det C = 2 Σᵢ ln Lᵢᵢ`); a per-member scalar.
    ///
    /// The op reads `S = (C + Cᵀ)/2`, so it is the log-determinant of the symmetric part for any
    /// input, and its gradient is `∂ ln det S/∂C = S⁻¹` (symmetric). A member whose `S` is not
    /// positive definite (or not finite) gets NaN, and so do its gradients. `O(n³)` scalar work
    /// per member: meant for the small matrices of a low-rank guide (`n` = its rank).
    ///
    /// ```
    /// use flock_autograd::{ParamLayout, Parameters, Tape};
    /// let mut layout = ParamLayout::new();
    /// let c = layout.add("c", [2, 2])?;
    /// let mut params = Parameters::<f64>::zeros(layout, 1);
    /// params.member_mut(0).copy_from_slice(&[4.0, 2.0, 2.0, 3.0]); // det = 8
    /// let mut tape = Tape::new();
    /// let mut g = tape.graph(&params);
    /// let c = g.param(c)?;
    /// let ld = g.log_det_spd(c)?;
    /// assert!((g.values(ld, 0)[0] - 8f64.ln()).abs() < 1e-15);
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] unless `C` is a square matrix.
    pub fn log_det_spd(&mut self, c: Var) -> Result<Var, AutogradError> {
        let cn = self.node(c).clone();
        let n = match *cn.shape.dims() {
            [r, k] if r == k => r,
            _ => {
                return Err(AutogradError::InvalidShape {
                    op: "log_det_spd",
                    shape: cn.shape,
                    expected: "a square matrix (two equal axes after the member axis)",
                });
            }
        };
        let shared = cn.slot.shared();
        let (v, offset) = self.push(
            Op::LogDetSpd { input: c },
            Shape::SCALAR,
            shared,
            cn.requires_grad,
        );
        let blocks = if shared { 1 } else { self.members };
        let mut factor = core::mem::take(&mut self.tape.scratch);
        factor.resize_for_overwrite(n * n, T::ZERO);
        let (inputs, out) = self.split_output(offset);
        for (e, y) in out[..blocks].iter_mut().enumerate() {
            *y = if cholesky(n, inputs.member(cn.slot, e), &mut factor) {
                let two = T::ONE + T::ONE;
                (0..n).fold(T::ZERO, |acc, i| acc + two * factor[i * n + i].ln())
            } else {
                T::NAN
            };
        }
        self.tape.scratch = factor;
        Ok(v)
    }
}

/// The lower Cholesky factor `L` of `(c + cᵀ)/2` (`n × n`, row-major) into `l` (upper triangle
/// zeroed); `false` if a pivot is not positive or not finite.
fn cholesky<T: Element>(n: usize, c: &[T], l: &mut [T]) -> bool {
    let half = T::from_f64(0.5);
    for i in 0..n {
        for j in 0..=i {
            let mut s = half * (c[i * n + j] + c[j * n + i]);
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                // `!(s > 0)` also catches NaN.
                if !(s > T::ZERO && s.is_finite()) {
                    return false;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
        l[i * n + i + 1..(i + 1) * n].fill(T::ZERO);
    }
    true
}

/// `S⁻¹ = L⁻ᵀ·L⁻¹` from the Cholesky factor `l`, using `work` (`n²`) for `L⁻¹`.
fn inverse_from_cholesky<T: Element>(n: usize, l: &[T], work: &mut [T], inverse: &mut [T]) {
    // L⁻¹ by forward substitution, column by column: L·X = I.
    work.fill(T::ZERO);
    for j in 0..n {
        for i in j..n {
            let mut s = if i == j { T::ONE } else { T::ZERO };
            for k in j..i {
                s -= l[i * n + k] * work[k * n + j];
            }
            work[i * n + j] = s / l[i * n + i];
        }
    }
    // (L⁻ᵀL⁻¹)ᵢⱼ = Σₖ (L⁻¹)ₖᵢ (L⁻¹)ₖⱼ over k ≥ max(i, j).
    for i in 0..n {
        for j in 0..=i {
            let mut s = T::ZERO;
            for k in i..n {
                s += work[k * n + i] * work[k * n + j];
            }
            inverse[i * n + j] = s;
            inverse[j * n + i] = s;
        }
    }
}

pub(crate) fn log_det_spd_backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    input: Var,
) {
    let xn = ctx.node(input);
    if !xn.requires_grad {
        return;
    }
    let n = xn.shape.dims()[0];
    let mut parts = ctx.parts(node);
    parts.scratch.resize_for_overwrite(3 * n * n, T::ZERO);
    for e in 0..parts.members {
        let dy = parts.dy[e];
        let (factor, rest) = parts.scratch.split_at_mut(n * n);
        let (work, inverse) = rest.split_at_mut(n * n);
        let c = parts.values.member(xn.slot, e);
        if cholesky(n, c, factor) {
            inverse_from_cholesky(n, factor, work, inverse);
        } else {
            inverse.fill(T::NAN);
        }
        let dx = parts.targets.member(xn.slot, e);
        dx.iter_mut()
            .zip(inverse.iter())
            .for_each(|(g, &s)| *g += dy * s);
    }
}
