//! The chat page's Rust side, built with Trunk (`www/index.html`): linking `sluice-web` into this
//! cdylib puts its wasm-bindgen exports (`Engine`, `adapterName`, `wasmArch`) in the page's
//! module, which `www/app.js` drives. The page itself is plain HTML, CSS and JavaScript.

pub use sluice_web;
