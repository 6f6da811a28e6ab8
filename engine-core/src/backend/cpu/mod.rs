//! The CPU backend. `fast` holds the quantized matrix-vector kernels (8-bit activations, integer dot products).

pub mod fast;
