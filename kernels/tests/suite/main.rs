//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod accuracy;
mod elementwise;
mod gemm;
mod same_bits;
