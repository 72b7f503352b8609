//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod classification;
#[cfg(feature = "png")]
mod figures;
mod fixtures;
