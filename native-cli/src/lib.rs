//! The `sluice` command's library side: model fetching, the subcommands and byte-size flags, so
//! tests can call them.

pub mod commands;
pub mod models;
pub mod serve;
pub mod size;
