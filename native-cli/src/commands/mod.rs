//! One module per `sluice` subcommand.

pub mod bench;
pub mod engine;
pub mod inspect;
pub mod run;
pub mod synth;
