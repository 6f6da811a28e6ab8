//! Cross-crate tests live in `tests/tests/`; this library holds helpers they share.

pub mod fixtures;
pub mod models;
pub mod parity;
