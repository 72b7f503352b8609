//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod low_rank_guide;
mod model;
mod parallel;
mod seed_parity;
mod validation;
mod vi_fixture;
