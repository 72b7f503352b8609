//! This crate's integration tests as one test binary (why: ARCHITECTURE.md, under the
//! workspace diagram).

mod checkpoint;
mod classifier;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod crash_safety;
mod degenerate_data;
#[cfg(feature = "cli")]
mod ensemble_map;
#[cfg(feature = "cli")]
mod ensemble_vi;
mod legacy_files;
mod member_shards;
mod steps_apart;
mod table_fuzz;
