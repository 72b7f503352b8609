//! A growable buffer whose first element sits on a 64-byte boundary (a cache line, and one
//! AVX-512 vector), so that blocks at offsets that are multiples of 64 bytes are aligned too.

use core::ops::{Deref, DerefMut};

/// Bytes of alignment of [`AlignedBuf`]'s first element.
pub const ALIGN_BYTES: usize = 64;

/// `len` values of `T` starting at a 64-byte boundary inside an over-allocated `Vec` — the
/// reusable buffers of the kernels' packing scratch and of the autograd tape, whose blocks are
/// read and written whole vectors at a time.
///
/// ```
/// use flock_kernels::{ALIGN_BYTES, AlignedBuf};
/// let mut buf = AlignedBuf::<f32>::new();
/// buf.resize(100, 0.0);
/// buf[3] = 1.0;
/// buf.resize(10_000, 0.0); // may move; keeps the values
/// assert_eq!((buf.len(), buf[3]), (10_000, 1.0));
/// assert_eq!(buf.as_ptr() as usize % ALIGN_BYTES, 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AlignedBuf<T> {
    storage: Vec<T>,
    head: usize,
    len: usize,
}

impl<T> AlignedBuf<T> {
    /// An empty buffer (allocates nothing).
    pub const fn new() -> AlignedBuf<T> {
        AlignedBuf {
            storage: Vec::new(),
            head: 0,
            len: 0,
        }
    }
}

impl<T: Copy> AlignedBuf<T> {
    /// Sets the length to `len`: growing fills new values with `fill` and keeps the existing
    /// ones (moving them when it reallocates); shrinking keeps the allocation.
    pub fn resize(&mut self, len: usize, fill: T) {
        if len <= self.len {
            self.len = len;
            return;
        }
        let pad = ALIGN_BYTES / core::mem::size_of::<T>().max(1);
        if self.head + len > self.storage.len() {
            // A new allocation, aligned afresh; the live values move with it.
            let mut storage = vec![fill; len + pad];
            let head = storage.as_ptr().align_offset(ALIGN_BYTES).min(pad);
            storage[head..head + self.len].copy_from_slice(&self.storage[self.head..][..self.len]);
            self.storage = storage;
            self.head = head;
        } else {
            self.storage[self.head + self.len..self.head + len].fill(fill);
        }
        self.len = len;
    }

    /// Sets the length to `len` for a caller that writes every value before reading any: the
    /// values are unspecified (left from earlier use, or `fill` where the buffer grows past
    /// what it ever held). A scratch buffer shared by differently sized users then costs
    /// nothing to regrow, where [`AlignedBuf::resize`] would fill again each time.
    pub fn resize_for_overwrite(&mut self, len: usize, fill: T) {
        let held = self.storage.len() - self.head;
        if len <= held {
            self.len = len;
        } else {
            self.resize(len, fill);
        }
    }
}

impl<T> Deref for AlignedBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.storage[self.head..self.head + self.len]
    }
}

impl<T> DerefMut for AlignedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.storage[self.head..self.head + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_aligned_and_keeps_values() {
        let mut buf = AlignedBuf::<f32>::default();
        for len in [1, 3, 17, 16, 400, 5000] {
            let old: Vec<f32> = buf.to_vec();
            buf.resize(len, 0.5);
            assert_eq!(buf.len(), len);
            assert_eq!(buf.as_ptr() as usize % ALIGN_BYTES, 0);
            let kept = old.len().min(len);
            assert_eq!(&buf[..kept], &old[..kept]);
            assert!(buf[kept..].iter().all(|&v| v == 0.5));
            for (i, v) in buf.iter_mut().enumerate() {
                *v = i as f32;
            }
        }
    }

    #[test]
    fn resize_for_overwrite_regrows_without_losing_alignment() {
        let mut buf = AlignedBuf::<f64>::default();
        buf.resize_for_overwrite(100, 0.0);
        assert_eq!(buf.len(), 100);
        buf.resize_for_overwrite(3, 0.0);
        let ptr = buf.as_ptr();
        buf.resize_for_overwrite(100, 0.0);
        // Regrowing within what it held keeps the allocation (and its alignment).
        assert_eq!((buf.len(), buf.as_ptr()), (100, ptr));
        buf.resize_for_overwrite(1000, 0.0);
        assert_eq!(buf.len(), 1000);
        assert_eq!(buf.as_ptr() as usize % ALIGN_BYTES, 0);
    }
}
