//! The `sluice` command's library side: model fetching and the subcommands, so tests can call them.

pub mod commands;
pub mod models;
