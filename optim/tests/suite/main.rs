//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod common;
mod equivalences;
mod optax_fixtures;
