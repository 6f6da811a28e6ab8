//! The CPU backend's worker pool. A decode step dispatches hundreds of small parallel jobs, so the
//! hand-off must cost little: the calling thread works too, and idle workers spin briefly before
//! parking, so back-to-back jobs never pay a futex wake-up. On wasm everything runs inline.
//!
//! Every kernel splits its output into disjoint chunks and computes each element in one fixed order,
//! so results never depend on how many threads there are or how the chunks are scheduled.

use crate::{Error, Result};
#[cfg(not(target_family = "wasm"))]
use native::Workers;

/// Runs chunked kernels on `threads` threads: the caller and `threads - 1` workers.
pub(crate) struct Pool {
    #[cfg(not(target_family = "wasm"))]
    workers: Option<Workers>,
    threads: usize,
}

impl Pool {
    pub(crate) fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::Config(
                "the CPU backend needs at least 1 thread".into(),
            ));
        }
        #[cfg(not(target_family = "wasm"))]
        {
            let workers = if threads > 1 {
                Some(Workers::start(threads - 1)?)
            } else {
                None
            };
            Ok(Self { workers, threads })
        }
        #[cfg(target_family = "wasm")]
        {
            // wasm32-unknown-unknown has no threads.
            let _ = threads;
            Ok(Self { threads: 1 })
        }
    }

    /// The number of threads, the caller included.
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
        // A zero chunk would make `chunks_mut` panic; callers never ask for it, but stay total.
        let chunk = chunk.max(1);
        #[cfg(not(target_family = "wasm"))]
        if let Some(workers) = &self.workers {
            if data.len() > chunk {
                let len = data.len();
                let base = SendPtr(data.as_mut_ptr());
                let n_tasks = len.div_ceil(chunk);
                return workers.run(n_tasks, &|i| {
                    let start = i * chunk;
                    let n = chunk.min(len - start);
                    // SAFETY: task `i` is claimed by exactly one thread and covers
                    // `start..start + n`, disjoint from every other task's range and inside `data`,
                    // which `run` keeps borrowed until all tasks have finished.
                    let part = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), n) };
                    f(i, part)
                });
            }
        }
        data.chunks_mut(chunk)
            .enumerate()
            .try_for_each(|(i, c)| f(i, c))
    }

    /// How many of `items` items to give one task: a few tasks per thread, for load balance, but no
    /// fewer than `min_items` items per task, to keep the hand-off cheap.
    pub(crate) fn chunk_items(&self, items: usize, min_items: usize) -> usize {
        let tasks = self.threads * 4;
        items.div_ceil(tasks).max(min_items).max(1)
    }
}

/// A raw pointer that may cross threads; the code using it guarantees disjoint access.
#[cfg(not(target_family = "wasm"))]
struct SendPtr<T>(*mut T);

// Not derived: derives would require `T: Copy`.
#[cfg(not(target_family = "wasm"))]
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
#[cfg(not(target_family = "wasm"))]
impl<T> Copy for SendPtr<T> {}
// SAFETY: only used to hand disjoint sub-slices of one `&mut [T]` (with `T: Send`) to other threads.
#[cfg(not(target_family = "wasm"))]
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above; the pointer itself is only read.
#[cfg(not(target_family = "wasm"))]
unsafe impl<T: Send> Sync for SendPtr<T> {}

#[cfg(not(target_family = "wasm"))]
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(not(target_family = "wasm"))]
mod native {
    use crate::{Error, Result};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// How long an idle worker spins for the next job before parking.
    const SPIN: Duration = Duration::from_micros(200);

    type Task<'a> = dyn Fn(usize) -> Result<()> + Sync + 'a;

    /// One dispatched job: tasks `0..n_tasks`, claimed one at a time.
    struct Job {
        task: *const Task<'static>,
        n_tasks: usize,
        next: AtomicUsize,
        remaining: AtomicUsize,
        error: Mutex<Option<Error>>,
    }

    // SAFETY: `task` points to a `Sync` closure that `Workers::run` keeps alive until `remaining`
    // reaches zero, and it is only called for claimed indices below `n_tasks`, which all finish first.
    unsafe impl Send for Job {}
    // SAFETY: as above.
    unsafe impl Sync for Job {}

    impl Job {
        /// Claims and runs tasks until none are left.
        fn work(&self) {
            loop {
                let i = self.next.fetch_add(1, Ordering::AcqRel);
                if i >= self.n_tasks {
                    return;
                }
                // SAFETY: `i < n_tasks` was claimed, so the job is unfinished and `task` is alive.
                let task = unsafe { &*self.task };
                let result = catch_unwind(AssertUnwindSafe(|| task(i)))
                    .unwrap_or_else(|_| Err(Error::Config("a CPU worker task panicked".into())));
                if let Err(e) = result {
                    let mut slot = lock(&self.error);
                    slot.get_or_insert(e);
                }
                self.remaining.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    struct Shared {
        generation: AtomicU64,
        job: Mutex<Option<Arc<Job>>>,
        sleepers: AtomicUsize,
        park: Mutex<()>,
        wake: Condvar,
        shutdown: AtomicBool,
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // Tasks run under catch_unwind, so a poisoned lock only means a panic was already reported.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker threads; dropping them stops and joins every one.
    pub(super) struct Workers {
        shared: Arc<Shared>,
        handles: Vec<JoinHandle<()>>,
    }

    impl Workers {
        pub(super) fn start(n: usize) -> Result<Self> {
            let shared = Arc::new(Shared {
                generation: AtomicU64::new(0),
                job: Mutex::new(None),
                sleepers: AtomicUsize::new(0),
                park: Mutex::new(()),
                wake: Condvar::new(),
                shutdown: AtomicBool::new(false),
            });
            let mut workers = Self {
                shared: shared.clone(),
                handles: Vec::with_capacity(n),
            };
            for i in 0..n {
                let shared = shared.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("sluice-cpu-{i}"))
                    .spawn(move || worker(&shared, 0))
                    .map_err(|e| Error::Config(format!("cannot start CPU worker thread: {e}")))?;
                workers.handles.push(handle);
            }
            Ok(workers)
        }

        /// Runs `task(0..n_tasks)` on the workers and the calling thread; returns once all are done.
        pub(super) fn run(&self, n_tasks: usize, task: &Task<'_>) -> Result<()> {
            // SAFETY: the lifetime is erased only for the duration of this call: the job is waited for
            // (`remaining == 0`) before returning, and workers never call `task` for a later job.
            let task: *const Task<'static> =
                unsafe { std::mem::transmute(task as *const Task<'_>) };
            let job = Arc::new(Job {
                task,
                n_tasks,
                next: AtomicUsize::new(0),
                remaining: AtomicUsize::new(n_tasks),
                error: Mutex::new(None),
            });
            *lock(&self.shared.job) = Some(job.clone());
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
            if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
                let _guard = lock(&self.shared.park);
                self.shared.wake.notify_all();
            }
            job.work();
            let mut spins = 0u32;
            while job.remaining.load(Ordering::Acquire) != 0 {
                spins += 1;
                if spins < 1 << 16 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            *lock(&self.shared.job) = None;
            let error = lock(&job.error).take();
            error.map_or(Ok(()), Err)
        }
    }

    impl Drop for Workers {
        fn drop(&mut self) {
            self.shared.shutdown.store(true, Ordering::SeqCst);
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
            {
                let _guard = lock(&self.shared.park);
                self.shared.wake.notify_all();
            }
            for handle in self.handles.drain(..) {
                let _ = handle.join();
            }
        }
    }

    /// A worker's loop. `seen` is the generation when it was spawned (not when it first runs: a job
    /// or shutdown may already have been announced by then).
    fn worker(shared: &Shared, mut seen: u64) {
        loop {
            // Work from the generation actually observed: re-reading it later could swallow the
            // bump of a job or of shutdown and park forever.
            seen = next_generation(shared, seen);
            if shared.shutdown.load(Ordering::SeqCst) {
                return;
            }
            let job = lock(&shared.job).clone();
            if let Some(job) = job {
                job.work();
            }
        }
    }

    /// Waits until the generation differs from `seen` (spinning for `SPIN`, then parked) and
    /// returns it. Shutdown is set before its bump, so whoever sees the bump sees the shutdown.
    fn next_generation(shared: &Shared, seen: u64) -> u64 {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = shared.generation.load(Ordering::SeqCst);
            if now != seen {
                return now;
            }
            spins = spins.wrapping_add(1);
            std::hint::spin_loop();
            if spins.is_multiple_of(1024) && start.elapsed() > SPIN {
                break;
            }
        }
        let mut guard = lock(&shared.park);
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        let now = loop {
            let now = shared.generation.load(Ordering::SeqCst);
            if now != seen {
                break now;
            }
            guard = shared.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
        };
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once_and_errors_surface() {
        for threads in [1, 2, 4] {
            let pool = Pool::new(threads).unwrap();
            for _ in 0..200 {
                let mut data = vec![0u32; 1000];
                pool.try_chunks_mut(&mut data, 7, |i, c| {
                    c.iter_mut().for_each(|x| *x += i as u32 + 1);
                    Ok(())
                })
                .unwrap();
                assert!(data
                    .iter()
                    .enumerate()
                    .all(|(j, &x)| x == (j / 7) as u32 + 1));
            }
            let mut data = vec![0u8; 100];
            let err = pool
                .try_chunks_mut(&mut data, 3, |i, _| {
                    if i == 13 {
                        Err(Error::Config("boom".into()))
                    } else {
                        Ok(())
                    }
                })
                .unwrap_err();
            assert!(matches!(err, Error::Config(m) if m == "boom"));
        }
    }

    #[test]
    fn a_panicking_task_is_an_error_and_the_pool_stays_usable() {
        let pool = Pool::new(3).unwrap();
        let mut data = vec![0u8; 64];
        let err = pool
            .try_chunks_mut(&mut data, 4, |i, _| {
                if i == 5 {
                    panic!("task panic")
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        pool.try_chunks_mut(&mut data, 4, |_, c| {
            c.fill(1);
            Ok(())
        })
        .unwrap();
        assert!(data.iter().all(|&x| x == 1));
    }

    #[test]
    fn workers_wake_after_parking_and_join_on_drop() {
        let pool = Pool::new(2).unwrap();
        let mut data = vec![0u8; 64];
        std::thread::sleep(std::time::Duration::from_millis(5));
        pool.try_chunks_mut(&mut data, 4, |_, c| {
            c.fill(2);
            Ok(())
        })
        .unwrap();
        assert!(data.iter().all(|&x| x == 2));
        drop(pool);
    }

    /// Shutdown announced before a worker first runs, or right after a job, must still be seen.
    #[test]
    fn pools_dropped_at_once_or_after_one_job_join() {
        for i in 0..300 {
            let pool = Pool::new(3).unwrap();
            if i % 2 == 0 {
                let mut data = vec![0u8; 16];
                pool.try_chunks_mut(&mut data, 1, |_, c| {
                    c.fill(1);
                    Ok(())
                })
                .unwrap();
            }
            drop(pool);
        }
    }
}
