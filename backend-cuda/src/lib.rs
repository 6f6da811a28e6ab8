//! tmp
mod error;
pub mod kernels;
pub use error::CudaError;
