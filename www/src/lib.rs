//! The chat page's Rust side, built with Trunk over the `web` crate. It fills in with the browser
//! work; until then it only re-exports the web API.

pub use sluice_web;
