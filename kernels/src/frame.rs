//! Vector spill slots that never straddle a page.
//!
//! A loop whose vectors do not all fit in registers (the vector `tanh`, Adam, the fused layer
//! backward) keeps some of them in its stack frame, storing and reloading them on every step.
//! The frame is only 16-byte aligned by default, and the compiler then places 32-byte (AVX) and
//! 64-byte (AVX-512) spill slots at any multiple of 16, trusting unaligned moves. Where such a
//! slot happens to straddle a 4 KiB page boundary, every store and reload of it is a page-split
//! access — several times the cost of an aligned one. Where the stack lies within its page is
//! chance: the main thread's moves in 16-byte steps with the size of the environment and, under
//! address-space randomisation, at random per process; a helper thread's is fixed by its stack's
//! size. So one process in a few dozen ran some workload far slower than the next.
//!
//! Measured (x86-64-v3 build on an Intel Xeon, the `seed_step` bench, randomisation off and the
//! environment padded in 16-byte steps over a whole page, 256 offsets): two offsets made the f32
//! step on one thread 1.6× slower (≈ 250 against ≈ 158 µs) in both of two scans, two others
//! the f32 step on two threads 1.5× slower (122–130 against ≈ 82 µs, three runs each); under a
//! debugger the slow offsets had the input layer's loop, in its steady state, spill a 32-byte
//! vector at page offset 4,080 (at the neighbouring offsets, 4,048 and 16, it ran at full speed).
//! With randomisation on, 2 of 30 processes ran the one-thread f32 step in 182 and 253 µs.
//! With [`align_frame`] in the kernels' loops, no offset was slow again when rerun (two scans
//! of the one-thread step, one of the whole bench), and the step's speed is unchanged (fastest
//! of 60 samples, ten alternated runs: f32 −1.4 / −1.8 %, f64 +0.2 / 0.0 % on one / two threads).

/// Realigns the stack frame of the function this is inlined into to 64 bytes (a cache line), so
/// that the compiler gives its vector spill slots their natural alignment: an aligned 32- or
/// 64-byte slot never straddles a cache line, let alone a page. Call it at the top of any
/// function with a vector loop; it costs the frame's realignment (two instructions) per call.
#[inline(always)]
// The pointer handed to the empty `asm!` is never read or written: `nomem` is the point.
#[allow(clippy::pointers_in_nomem_asm_block)]
pub(crate) fn align_frame() {
    #[repr(C, align(64))]
    struct CacheLine([u8; 64]);
    // A local whose address is taken, so that it must exist, aligned, in this frame. Handed to
    // an empty `asm!` that declares it reads no memory (nothing is stored, and no load around it
    // is reordered or repeated, as `black_box`'s would be).
    let line = core::mem::MaybeUninit::<CacheLine>::uninit();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the template is a comment: no instruction runs, no memory, stack or flag is
    // touched; the pointer operand only makes the local's address escape.
    unsafe {
        core::arch::asm!(
            "/* {0} */",
            in(reg) line.as_ptr(),
            options(nomem, nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    core::hint::black_box(&line);
}
