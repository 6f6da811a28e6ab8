//! One module per `sluice` subcommand.

pub mod bench;
pub mod chat;
pub mod engine;
pub mod generation;
pub mod inspect;
pub mod roofline;
pub mod run;
pub mod synth;
