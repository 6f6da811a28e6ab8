//! The threaded driver of the prefetch policy: worker threads that fetch queued keys with a loader
//! and keep the results until they are taken. Every wait has an exit: a result, an error, or
//! shutdown. With no workers (wasm, which has no threads) a queued key is fetched inline by the
//! first caller that waits for it.

use super::policy::{Admit, Cancel, Finish, PolicyCounters, PrefetchPolicy};
use crate::clock::Instant;
use crate::{Error, Result};
use std::collections::HashMap;
use std::hash::Hash;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Fetches one key: reads its bytes and uploads them, on a worker thread.
pub type Loader<K, V> = Arc<dyn Fn(K) -> Result<V> + Send + Sync>;

/// A fetch's outcome, shareable by every waiter (the error is kept for each of them).
pub type Fetched<V> = std::result::Result<V, Arc<Error>>;

/// How a `Prefetcher` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// Worker threads: the most background fetches at once. Synchronous loads (`load_now`) run on
    /// their caller besides. 0 fetches inline on `wait`.
    pub workers: usize,
    /// Most requests waiting to start; further requests are refused (`Admit::Full`).
    pub queue_bound: usize,
    /// Extra attempts after a failed fetch before its error is handed over.
    pub retries: u32,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            // Workers mostly wait on reads; more than one keeps a disk busy while another copies.
            workers: 4,
            // Requests are per tensor: room for a window of 8 steps of 9 tensors.
            queue_bound: 96,
            retries: 1,
        }
    }
}

/// Counters of the fetches themselves (the policy's counters plus what the loader did).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchCounters {
    #[serde(flatten)]
    pub policy: PolicyCounters,
    /// Fetches that ran the loader to a value (workers and synchronous loads).
    pub loads: u64,
    /// Fetches whose every attempt failed.
    pub failed: u64,
    /// Attempts repeated after a failure.
    pub retried: u64,
    /// Results dropped because they were cancelled or shut down while running.
    pub discarded: u64,
    /// Time spent inside the loader, summed over workers.
    #[serde(serialize_with = "super::serialize_secs")]
    pub load_time: Duration,
    /// Wall time during which at least one fetch was running: how long the I/O stage (reads,
    /// copies, uploads) was busy, whatever the number of workers.
    #[serde(serialize_with = "super::serialize_secs")]
    pub busy_time: Duration,
}

struct State<K, V> {
    policy: PrefetchPolicy<K>,
    ready: HashMap<K, Fetched<V>>,
    counters: FetchCounters,
    busy_since: Option<Instant>,
}

impl<K: Copy + Eq + Hash, V> State<K, V> {
    /// A fetch has started (call after the policy marked it in flight).
    fn began(&mut self) {
        if self.busy_since.is_none() {
            self.busy_since = Some(Instant::now());
        }
    }

    /// Ends the fetch of `key` in the policy and the counters.
    fn finish(&mut self, key: K, counters: FetchCounters) -> Finish {
        add(&mut self.counters, counters);
        let finish = self.policy.finish(key);
        self.ended();
        finish
    }

    /// Files the outcome of a fetch of `key` that has just ended: kept for its waiters, or dropped
    /// when it was cancelled or shut down meanwhile.
    fn settle(&mut self, key: K, outcome: Fetched<V>, counters: FetchCounters) {
        match self.finish(key, counters) {
            Finish::Deliver => {
                self.ready.insert(key, outcome);
            }
            Finish::Discard => self.counters.discarded += 1,
        }
    }

    /// A fetch has ended (call after the policy's `finish`).
    fn ended(&mut self) {
        if self.policy.in_flight_len() == 0 {
            if let Some(since) = self.busy_since.take() {
                self.counters.busy_time += since.elapsed();
            }
        }
    }
}

struct Shared<K, V> {
    state: Mutex<State<K, V>>,
    changed: Condvar,
    loader: Loader<K, V>,
    retries: u32,
}

impl<K, V> Shared<K, V> {
    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Worker threads fetching keys ahead of use, with in-flight dedup and a bounded queue.
pub struct Prefetcher<K: Copy + Eq + Hash, V> {
    shared: Arc<Shared<K, V>>,
    workers: Vec<JoinHandle<()>>,
}

impl<K, V> Prefetcher<K, V>
where
    K: Copy + Eq + Hash + Send + std::fmt::Debug + 'static,
    V: Clone + Send + 'static,
{
    /// Starts `config.workers` threads that fetch with `loader` (none on wasm, which fetches
    /// inline on `wait`).
    pub fn new(config: PrefetchConfig, loader: Loader<K, V>) -> Result<Self> {
        // wasm*-unknown-unknown cannot spawn threads (and its main thread must not block on a
        // condvar): inline mode needs neither.
        let workers = if cfg!(target_family = "wasm") {
            0
        } else {
            config.workers
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                policy: PrefetchPolicy::new(config.queue_bound, workers.max(1)),
                ready: HashMap::new(),
                counters: FetchCounters::default(),
                busy_since: None,
            }),
            changed: Condvar::new(),
            loader,
            retries: config.retries,
        });
        let mut me = Self {
            shared,
            workers: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let shared = me.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-prefetch-{i}"))
                .spawn(move || work(&shared));
            match spawned {
                Ok(handle) => me.workers.push(handle),
                // `me` drops here, joining the workers already started.
                Err(e) => {
                    return Err(Error::Config(format!(
                        "cannot start prefetch worker thread: {e}"
                    )))
                }
            }
        }
        Ok(me)
    }

    /// Asks for `key` in the background. A key already queued, in flight or fetched is not fetched
    /// again; a full queue refuses (`Admit::Full`) rather than grow.
    pub fn request(&self, key: K) -> Admit {
        let mut st = self.shared.lock();
        if st.ready.contains_key(&key) {
            st.counters.policy.requests += 1;
            st.counters.policy.deduplicated += 1;
            return Admit::AlreadyQueued;
        }
        let admit = st.policy.request(key);
        drop(st);
        if admit == Admit::Queued {
            self.shared.changed.notify_all();
        }
        admit
    }

    /// Cancels `key`: dropped from the queue, or its result dropped when it arrives.
    pub fn cancel(&self, key: K) -> Cancel {
        let cancel = self.shared.lock().policy.cancel(key);
        if cancel != Cancel::NotFound {
            // Its waiters must now answer `None`: a dequeued key has no fetch whose end would wake
            // them, and a discarded one may take long to end.
            self.shared.changed.notify_all();
        }
        cancel
    }

    /// Cancels `key` only if it has not started; `true` when it was queued.
    pub fn cancel_queued(&self, key: K) -> bool {
        let removed = self.shared.lock().policy.cancel_queued(key);
        if removed {
            // As in `cancel`: wake its waiters.
            self.shared.changed.notify_all();
        }
        removed
    }

    /// Whether `key` is queued or being fetched.
    pub fn is_pending(&self, key: K) -> bool {
        let st = self.shared.lock();
        st.policy.is_queued(key) || st.policy.is_in_flight(key)
    }

    /// Waits for `key` if it is queued or in flight and returns its outcome (kept for other
    /// waiters until `take`n); `None` when it was never requested (or already taken).
    pub fn wait(&self, key: K) -> Option<Fetched<V>> {
        let mut st = self.shared.lock();
        loop {
            if let Some(r) = st.ready.get(&key) {
                return Some(r.clone());
            }
            if st.policy.is_shut_down() {
                return Some(Err(Arc::new(Error::ShutDown)));
            }
            let queued = st.policy.is_queued(key);
            if !queued && !st.policy.is_in_flight(key) {
                return None;
            }
            if queued && self.workers.is_empty() {
                st.policy.start_now(key);
                st.began();
                drop(st);
                let (outcome, counters) = fetch(&self.shared, key);
                st = self.shared.lock();
                st.settle(key, outcome, counters);
                // Other callers that found the key in flight sleep until told it has landed.
                self.shared.changed.notify_all();
                continue;
            }
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Removes and returns `key`'s outcome if it has arrived.
    pub fn take(&self, key: K) -> Option<Fetched<V>> {
        self.shared.lock().ready.remove(&key)
    }

    /// Removes and returns every outcome that has arrived.
    pub fn take_ready(&self) -> Vec<(K, Fetched<V>)> {
        self.shared.lock().ready.drain().collect()
    }

    /// Fetches `key` on the calling thread (a synchronous load), taking over a queued request for
    /// it; if it is already in flight, waits for that fetch instead. The outcome is returned, not
    /// kept. Fails with `Error::ShutDown` only once the prefetcher is shut down.
    pub fn load_now(&self, key: K) -> Fetched<V> {
        loop {
            let mut st = self.shared.lock();
            if let Some(r) = st.ready.remove(&key) {
                return r;
            }
            if st.policy.is_shut_down() {
                return Err(Arc::new(Error::ShutDown));
            }
            if st.policy.start_now(key) {
                st.began();
                drop(st);
                let (outcome, counters) = fetch(&self.shared, key);
                // The caller takes the outcome itself, whatever the policy says of it.
                self.shared.lock().finish(key, counters);
                // Waiters that found the key in flight meanwhile must not sleep forever.
                self.shared.changed.notify_all();
                return outcome;
            }
            // In flight. If it was cancelled, asking for it again keeps its result for us.
            if !st.policy.is_in_flight(key) {
                st.policy.request(key);
            }
            drop(st);
            if let Some(r) = self.wait(key) {
                self.take(key);
                return r;
            }
            // Another caller took the result before this one woke: load it afresh.
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> FetchCounters {
        let st = self.shared.lock();
        let running = st
            .busy_since
            .map_or(Duration::ZERO, |since| since.elapsed());
        FetchCounters {
            policy: st.policy.counters(),
            busy_time: st.counters.busy_time + running,
            ..st.counters
        }
    }

    /// Most requests that may wait to start.
    pub fn queue_bound(&self) -> usize {
        self.shared.lock().policy.queue_bound()
    }

    /// Requests waiting to start and fetches running.
    pub fn backlog(&self) -> (usize, usize) {
        let st = self.shared.lock();
        (st.policy.queued_len(), st.policy.in_flight_len())
    }

    /// Stops the workers and joins them: queued requests are dropped, running fetches finish and
    /// are discarded, and waiters get `Error::ShutDown`. Idempotent; `Drop` calls it too.
    pub fn shutdown(&mut self) {
        let mut st = self.shared.lock();
        st.policy.shut_down();
        let dropped = st.ready.len() as u64;
        st.ready.clear();
        st.counters.discarded += dropped;
        drop(st);
        self.shared.changed.notify_all();
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }

    /// Worker threads running (0 after `shutdown`, or when fetching inline).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}

impl<K: Copy + Eq + Hash, V> Drop for Prefetcher<K, V> {
    fn drop(&mut self) {
        self.shared.lock().policy.shut_down();
        self.shared.changed.notify_all();
        for handle in self.workers.drain(..) {
            // A worker that panicked has nothing left to hand back; the others exit at once.
            let _ = handle.join();
        }
    }
}

/// Runs the loader for `key` with the configured retries; a panic becomes an error.
fn fetch<K: Copy + std::fmt::Debug, V>(
    shared: &Shared<K, V>,
    key: K,
) -> (Fetched<V>, FetchCounters) {
    let mut c = FetchCounters::default();
    let start = Instant::now();
    let mut attempt = 0;
    let outcome = loop {
        let r = catch_unwind(AssertUnwindSafe(|| (shared.loader)(key))).unwrap_or_else(|_| {
            Err(Error::Config(format!(
                "the loader panicked while fetching {key:?}"
            )))
        });
        match r {
            Ok(v) => {
                c.loads += 1;
                break Ok(v);
            }
            Err(_) if attempt < shared.retries => {
                attempt += 1;
                c.retried += 1;
            }
            Err(e) => {
                c.failed += 1;
                break Err(Arc::new(e));
            }
        }
    };
    c.load_time = start.elapsed();
    (outcome, c)
}

fn add(total: &mut FetchCounters, c: FetchCounters) {
    total.loads += c.loads;
    total.failed += c.failed;
    total.retried += c.retried;
    total.load_time += c.load_time;
}

fn work<K, V>(shared: &Shared<K, V>)
where
    K: Copy + Eq + Hash + std::fmt::Debug,
    V: Clone,
{
    let mut st = shared.lock();
    loop {
        if st.policy.is_shut_down() {
            return;
        }
        let Some(key) = st.policy.start() else {
            st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        st.began();
        drop(st);
        let (outcome, counters) = fetch(shared, key);
        st = shared.lock();
        st.settle(key, outcome, counters);
        shared.changed.notify_all();
    }
}
