//! The JavaScript-facing API for web pages (load a model, generate with streamed tokens, metrics).
//! It fills in with the browser work; until then it only re-exports the engine core.

pub use engine_core;
