//! The CPU backend's worker pool: a dedicated rayon pool natively, the same calls run inline on wasm.
//!
//! Every kernel splits its output into disjoint chunks and computes each element in one fixed order,
//! so results never depend on how many threads there are or how the chunks are scheduled.

use crate::{Error, Result};

/// Runs chunked kernels on `threads` workers (one, inline, on wasm).
pub(crate) struct Pool {
    #[cfg(not(target_family = "wasm"))]
    pool: rayon::ThreadPool,
    threads: usize,
}

impl Pool {
    /// A pool of `threads` workers; natively a dedicated rayon pool (not the global one), so that a
    /// `--threads 2` setting means two workers whatever else the process runs.
    pub(crate) fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::Config(
                "the CPU backend needs at least 1 thread".into(),
            ));
        }
        #[cfg(not(target_family = "wasm"))]
        {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("sluice-cpu-{i}"))
                .build()
                .map_err(|e| Error::Config(format!("cannot start {threads} CPU threads: {e}")))?;
            Ok(Self { pool, threads })
        }
        #[cfg(target_family = "wasm")]
        {
            // wasm32-unknown-unknown has no threads: run everything inline.
            let _ = threads;
            Ok(Self { threads: 1 })
        }
    }

    /// The number of workers.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(index, chunk)` for each `chunk`-sized piece of `data` (the last may be shorter),
    /// possibly in parallel; the first error wins.
    pub(crate) fn try_chunks_mut<T, F>(&self, data: &mut [T], chunk: usize, f: F) -> Result<()>
    where
        T: Send,
        F: Fn(usize, &mut [T]) -> Result<()> + Sync + Send,
    {
        if data.is_empty() {
            return Ok(());
        }
        // A zero chunk would make `chunks_mut` panic; callers never ask for it, but stay total.
        let chunk = chunk.max(1);
        #[cfg(not(target_family = "wasm"))]
        {
            use rayon::prelude::*;
            if self.threads == 1 || data.len() <= chunk {
                // Skip the pool hand-off when there is nothing to split.
                return data
                    .chunks_mut(chunk)
                    .enumerate()
                    .try_for_each(|(i, c)| f(i, c));
            }
            self.pool.install(|| {
                data.par_chunks_mut(chunk)
                    .enumerate()
                    .try_for_each(|(i, c)| f(i, c))
            })
        }
        #[cfg(target_family = "wasm")]
        {
            data.chunks_mut(chunk)
                .enumerate()
                .try_for_each(|(i, c)| f(i, c))
        }
    }

    /// How many of `items` items to give one task: a few tasks per worker, for load balance, but no
    /// fewer than `min_items` items per task, to keep the hand-off cheap.
    pub(crate) fn chunk_items(&self, items: usize, min_items: usize) -> usize {
        let tasks = self.threads * 4;
        items.div_ceil(tasks).max(min_items).max(1)
    }
}
