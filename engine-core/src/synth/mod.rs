//! Random-weight model synthesis.
