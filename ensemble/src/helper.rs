//! A helper thread that runs one borrowed job at a time for its owner, polling between jobs.
//!
//! [`ParallelLogJoint`](crate::ParallelLogJoint) hands one block of members to each helper every
//! step (~100 µs of work) and evaluates the first block itself. A thread that sleeps between
//! steps takes 10–20 µs to wake on the 2-core development machine, so after each job a helper
//! keeps polling for the next one for 0.5 ms (a few spins, then `yield_now` between polls: pure
//! spinning was measured slower on this virtual machine) before it parks, and the owner polls
//! the same way while it waits for the helper.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a helper keeps polling for the next job before it parks.
const SPIN: Duration = Duration::from_micros(500);

const IDLE: u8 = 0;
const READY: u8 = 1;
const DONE: u8 = 2;
const EXIT: u8 = 3;

/// A job whose lifetime the owner guarantees: [`Helper::run`] does not return (or unwind) before
/// the helper has finished with it.
struct JobPtr(*mut (dyn FnMut() + Send + 'static));

// SAFETY: the pointee is `Send`, and only the helper touches it between READY and DONE.
unsafe impl Send for JobPtr {}

#[derive(Default)]
struct Shared {
    state: AtomicU8,
    job: Mutex<Option<JobPtr>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// One helper thread (joined on drop).
pub(crate) struct Helper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for Helper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Helper").finish_non_exhaustive()
    }
}

impl Helper {
    /// Starts the thread; `None` if the system cannot make one.
    pub(crate) fn spawn(name: String) -> Option<Helper> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || serve(&theirs))
            .ok()?;
        Some(Helper {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `job` on the helper while `own` runs on this thread; returns when both are done.
    /// A panic in either is resumed here after both have finished.
    pub(crate) fn run<R>(
        &mut self,
        job: &mut (dyn FnMut() + Send + '_),
        own: impl FnOnce() -> R,
    ) -> R {
        // SAFETY: only the lifetime is erased; `WaitForHelper` below keeps this frame (and so
        // the job's borrows) alive until the helper reports DONE, on return and on unwind.
        let ptr: *mut (dyn FnMut() + Send + 'static) = unsafe {
            core::mem::transmute::<*mut (dyn FnMut() + Send + '_), *mut (dyn FnMut() + Send)>(job)
        };
        // A payload left by a job whose owner was itself unwinding is not this job's.
        lock(&self.shared.panic).take();
        *lock(&self.shared.job) = Some(JobPtr(ptr));
        self.shared.state.store(READY, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
        let wait = WaitForHelper(&self.shared);
        let result = own();
        drop(wait);
        if let Some(payload) = lock(&self.shared.panic).take() {
            resume_unwind(payload);
        }
        result
    }
}

/// Polls (a few spins, then yields) until the helper has finished the current job.
struct WaitForHelper<'a>(&'a Shared);

impl Drop for WaitForHelper<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.0.state.load(Ordering::Acquire) != DONE {
            if spins < 64 {
                core::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        self.0.state.store(IDLE, Ordering::Release);
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.shared.state.store(EXIT, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The helper's loop: poll for SPIN after each job, then park until unparked.
fn serve(shared: &Shared) {
    loop {
        let start = Instant::now();
        let mut polls = 0u32;
        let state = loop {
            let state = shared.state.load(Ordering::Acquire);
            if state == READY || state == EXIT {
                break state;
            }
            polls += 1;
            if polls.is_multiple_of(64) && start.elapsed() > SPIN {
                // Unparks are remembered, so one that came since the load above is not lost.
                std::thread::park();
            } else if polls < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        };
        if state == EXIT {
            return;
        }
        let job = lock(&shared.job).take();
        if let Some(JobPtr(ptr)) = job {
            // SAFETY: the owner keeps the job alive and untouched until it sees DONE.
            let job = unsafe { &mut *ptr };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
                *lock(&shared.panic) = Some(payload);
            }
        }
        shared.state.store(DONE, Ordering::Release);
    }
}
