//! The paged weight store.
