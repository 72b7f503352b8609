//! Square block transposes of one vector width (`LANES × LANES`), for packing transposed GEMM
//! operands: register transposes where the build has AVX-512 or AVX, the scalar loop otherwise.

/// The f32 block transpose of this build (`F32Vector::LANES` square).
///
/// # Safety
/// As [`transpose_naive`].
#[inline(always)]
pub(crate) unsafe fn transpose_f32(src: *const f32, src_rs: usize, dst: *mut f32, dst_rs: usize) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    // SAFETY: forwarded from the caller.
    unsafe {
        transpose_f32x16(src, src_rs, dst, dst_rs)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx",
        not(target_feature = "avx512f")
    ))]
    // SAFETY: forwarded from the caller.
    unsafe {
        transpose_f32x8(src, src_rs, dst, dst_rs)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx")))]
    // SAFETY: forwarded from the caller.
    unsafe {
        transpose_naive(
            <crate::F32Vector as crate::SimdVector>::LANES,
            src,
            src_rs,
            dst,
            dst_rs,
        )
    }
}

/// The f64 block transpose of this build (`F64Vector::LANES` square).
///
/// # Safety
/// As [`transpose_naive`].
#[inline(always)]
pub(crate) unsafe fn transpose_f64(src: *const f64, src_rs: usize, dst: *mut f64, dst_rs: usize) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    // SAFETY: forwarded from the caller.
    unsafe {
        transpose_f64x8(src, src_rs, dst, dst_rs)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx",
        not(target_feature = "avx512f")
    ))]
    // SAFETY: forwarded from the caller.
    unsafe {
        transpose_f64x4(src, src_rs, dst, dst_rs)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx")))]
    // SAFETY: forwarded from the caller.
    unsafe {
        transpose_naive(
            <crate::F64Vector as crate::SimdVector>::LANES,
            src,
            src_rs,
            dst,
            dst_rs,
        )
    }
}

/// `dst[c·dst_rs + r] = src[r·src_rs + c]` for `r, c < n` (the reference).
///
/// # Safety
/// `src` must be readable at every `r·src_rs + c` and `dst` writable at every `c·dst_rs + r`, the
/// two not overlapping.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "avx"), allow(dead_code))]
#[inline(always)]
pub(crate) unsafe fn transpose_naive<T: Copy>(
    n: usize,
    src: *const T,
    src_rs: usize,
    dst: *mut T,
    dst_rs: usize,
) {
    for r in 0..n {
        for c in 0..n {
            // SAFETY: in bounds by the caller's contract.
            unsafe { *dst.add(c * dst_rs + r) = *src.add(r * src_rs + c) };
        }
    }
}

/// 16×16 f32: unpack pairs of rows, shuffle within 128-bit lanes, then two rounds of 128-bit lane
/// shuffles (64 shuffles for 256 values, against 256 scalar copies).
///
/// # Safety
/// As [`transpose_naive`] with `n = 16`.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
pub(crate) unsafe fn transpose_f32x16(
    src: *const f32,
    src_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    use core::arch::x86_64::*;
    // SAFETY: the build has AVX-512F; every load and store is in bounds by the caller's contract.
    unsafe {
        let mut r: [__m512; 16] = core::array::from_fn(|i| _mm512_loadu_ps(src.add(i * src_rs)));
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..4 {
            r[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        for i in 0..2 {
            for j in 0..4 {
                t[8 * i + j] = _mm512_shuffle_f32x4::<0x88>(r[8 * i + j], r[8 * i + j + 4]);
                t[8 * i + j + 4] = _mm512_shuffle_f32x4::<0xDD>(r[8 * i + j], r[8 * i + j + 4]);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[j + 8]);
            r[j + 8] = _mm512_shuffle_f32x4::<0xDD>(t[j], t[j + 8]);
        }
        for (i, row) in r.iter().enumerate() {
            _mm512_storeu_ps(dst.add(i * dst_rs), *row);
        }
    }
}

/// 8×8 f64: unpack pairs of rows, then two rounds of 128-bit lane shuffles.
///
/// # Safety
/// As [`transpose_naive`] with `n = 8`.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
pub(crate) unsafe fn transpose_f64x8(src: *const f64, src_rs: usize, dst: *mut f64, dst_rs: usize) {
    use core::arch::x86_64::*;
    // SAFETY: the build has AVX-512F; every load and store is in bounds by the caller's contract.
    unsafe {
        let mut r: [__m512d; 8] = core::array::from_fn(|i| _mm512_loadu_pd(src.add(i * src_rs)));
        let mut t = [_mm512_setzero_pd(); 8];
        for i in 0..4 {
            t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..2 {
            for j in 0..2 {
                r[4 * i + j] = _mm512_shuffle_f64x2::<0x88>(t[4 * i + j], t[4 * i + j + 2]);
                r[4 * i + j + 2] = _mm512_shuffle_f64x2::<0xDD>(t[4 * i + j], t[4 * i + j + 2]);
            }
        }
        for j in 0..4 {
            t[j] = _mm512_shuffle_f64x2::<0x88>(r[j], r[j + 4]);
            t[j + 4] = _mm512_shuffle_f64x2::<0xDD>(r[j], r[j + 4]);
        }
        for (i, row) in t.iter().enumerate() {
            _mm512_storeu_pd(dst.add(i * dst_rs), *row);
        }
    }
}

/// 8×8 f32 with AVX: unpack pairs of rows, shuffle within 128-bit lanes, then swap 128-bit
/// halves (24 shuffles for 64 values, against 64 scalar copies).
///
/// # Safety
/// As [`transpose_naive`] with `n = 8`.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx",
    not(target_feature = "avx512f")
))]
#[inline(always)]
pub(crate) unsafe fn transpose_f32x8(src: *const f32, src_rs: usize, dst: *mut f32, dst_rs: usize) {
    use core::arch::x86_64::*;
    // SAFETY: the build has AVX; every load and store is in bounds by the caller's contract.
    unsafe {
        let r: [__m256; 8] = core::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_rs)));
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_ps(); 8];
        for i in 0..2 {
            u[4 * i] = _mm256_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm256_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm256_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm256_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        for j in 0..4 {
            let low = _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4]);
            let high = _mm256_permute2f128_ps::<0x31>(u[j], u[j + 4]);
            _mm256_storeu_ps(dst.add(j * dst_rs), low);
            _mm256_storeu_ps(dst.add((j + 4) * dst_rs), high);
        }
    }
}

/// 4×4 f64 with AVX: unpack pairs of rows, then swap 128-bit halves.
///
/// # Safety
/// As [`transpose_naive`] with `n = 4`.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx",
    not(target_feature = "avx512f")
))]
#[inline(always)]
pub(crate) unsafe fn transpose_f64x4(src: *const f64, src_rs: usize, dst: *mut f64, dst_rs: usize) {
    use core::arch::x86_64::*;
    // SAFETY: the build has AVX; every load and store is in bounds by the caller's contract.
    unsafe {
        let r: [__m256d; 4] = core::array::from_fn(|i| _mm256_loadu_pd(src.add(i * src_rs)));
        let t0 = _mm256_unpacklo_pd(r[0], r[1]);
        let t1 = _mm256_unpackhi_pd(r[0], r[1]);
        let t2 = _mm256_unpacklo_pd(r[2], r[3]);
        let t3 = _mm256_unpackhi_pd(r[2], r[3]);
        _mm256_storeu_pd(dst, _mm256_permute2f128_pd::<0x20>(t0, t2));
        _mm256_storeu_pd(dst.add(dst_rs), _mm256_permute2f128_pd::<0x20>(t1, t3));
        _mm256_storeu_pd(dst.add(2 * dst_rs), _mm256_permute2f128_pd::<0x31>(t0, t2));
        _mm256_storeu_pd(dst.add(3 * dst_rs), _mm256_permute2f128_pd::<0x31>(t1, t3));
    }
}

#[cfg(test)]
mod tests {
    use crate::{Element, F32Vector, F64Vector, SimdVector};

    fn check<T: Element, V: SimdVector<Scalar = T>>() {
        let n = V::LANES;
        // Strides wider than the block, as inside a larger matrix.
        let (src_rs, dst_rs) = (n + 3, n + 5);
        let src: Vec<T> = (0..n * src_rs).map(|i| T::from_usize(i)).collect();
        let (mut fast, mut slow) = (vec![T::ZERO; n * dst_rs], vec![T::ZERO; n * dst_rs]);
        // SAFETY: both buffers hold n rows of their strides.
        unsafe {
            V::transpose_block(src.as_ptr(), src_rs, fast.as_mut_ptr(), dst_rs);
            super::transpose_naive(n, src.as_ptr(), src_rs, slow.as_mut_ptr(), dst_rs);
        }
        assert_eq!(
            fast.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
            slow.iter().map(|v| v.to_f64()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn block_transposes_match_the_naive_loop() {
        check::<f32, F32Vector>();
        check::<f64, F64Vector>();
    }
}
