//! The reference GEMM: three loops, no tricks. Fast paths are tested against it.

use super::{GemmError, MatMut, MatRef, validate};
use crate::Element;

/// `C_e = α·op(A_e)·op(B_e) + β·C_e` for every member `e`, by the definition.
///
/// Same contract as [`crate::gemm()`]; sums run over `k` in increasing order and `β = 0` never
/// reads `C`, so whole-number inputs give results identical to the fast path.
pub fn gemm_naive<T: Element>(
    members: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) -> Result<(), GemmError> {
    let (m, n, k) = validate(members, &a, &b, &c)?;
    let (a_rs, a_cs) = a.op_strides();
    let (b_rs, b_cs) = b.op_strides();
    for e in 0..members {
        let (a0, b0, c0) = (
            e * a.member_stride,
            e * b.member_stride,
            e * c.member_stride,
        );
        for i in 0..m {
            for j in 0..n {
                let mut sum = T::ZERO;
                for p in 0..k {
                    sum = a.data[a0 + i * a_rs + p * a_cs]
                        .mul_add(b.data[b0 + p * b_rs + j * b_cs], sum);
                }
                let cij = &mut c.data[c0 + i * c.row_stride + j];
                *cij = if beta == T::ZERO {
                    alpha * sum
                } else {
                    beta.mul_add(*cij, alpha * sum)
                };
            }
        }
    }
    Ok(())
}
