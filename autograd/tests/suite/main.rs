//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod finite_differences;
mod grads_fixtures;
mod log_det;
mod param_grads;
mod values_only;
mod workspace;
