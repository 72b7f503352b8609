//! This crate's integration tests, as one test binary.
//!
//! Each test binary instantiates the generic code it reaches again, at the test profile's
//! opt-level 3, so one binary per file cost CI minutes of compiling the same code. Tests that
//! need a process of their own (a counting global allocator) or a build of their own (the
//! same-bits tests, built again for x86-64-v3 in CI; MPI) stay in files of their own beside this
//! folder.

mod finite_differences;
mod grads_fixtures;
mod log_det;
mod param_grads;
mod workspace;
