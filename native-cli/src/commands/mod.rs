//! One module per `sluice` subcommand.

pub mod inspect;
pub mod synth;
