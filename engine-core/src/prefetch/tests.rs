//! Tests of the threaded `Prefetcher`: dedup under contention, the queue bound, shutdown and drop
//! mid-stream, loader errors, retries and panics, cancellation, inline mode, and a seeded stress
//! run that checks the invariants over random interleavings. Every test runs under a timeout.

use super::*;
use crate::rng::SplitMix64;
use crate::testing_support::within;
use crate::Error;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// A door the loader waits at, so a test can hold a fetch in flight as long as it likes.
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn new(open: bool) -> Self {
        Self {
            open: Mutex::new(open),
            changed: Condvar::new(),
        }
    }

    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }
}

/// A scripted loader that records what it was asked to do: calls per key, threads, concurrency,
/// and two loads of the same key at once (which the prefetcher must never start).
struct Probe {
    delay: Duration,
    gate: Gate,
    /// 1-based global call numbers that fail.
    fail_calls: Mutex<HashSet<usize>>,
    /// Keys that fail this many more times.
    fail_keys: Mutex<HashMap<u32, u32>>,
    panic_key: Mutex<Option<u32>>,
    calls: AtomicUsize,
    per_key: Mutex<HashMap<u32, usize>>,
    threads: Mutex<Vec<ThreadId>>,
    busy: Mutex<HashSet<u32>>,
    overlaps: AtomicUsize,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    on_workers: AtomicUsize,
    peak_on_workers: AtomicUsize,
}

/// Undoes a call's "running" marks however the call ends, panics included.
struct Leave<'a> {
    probe: &'a Probe,
    key: u32,
    on_worker: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let p = self.probe;
        p.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        p.running.fetch_sub(1, Ordering::SeqCst);
        if self.on_worker {
            p.on_workers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Probe {
    fn new(delay: Duration) -> Arc<Self> {
        Self::gated(delay, true)
    }

    fn gated(delay: Duration, open: bool) -> Arc<Self> {
        Arc::new(Self {
            delay,
            gate: Gate::new(open),
            fail_calls: Mutex::default(),
            fail_keys: Mutex::default(),
            panic_key: Mutex::default(),
            calls: AtomicUsize::new(0),
            per_key: Mutex::default(),
            threads: Mutex::default(),
            busy: Mutex::default(),
            overlaps: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            on_workers: AtomicUsize::new(0),
            peak_on_workers: AtomicUsize::new(0),
        })
    }

    fn loader(self: &Arc<Self>) -> Loader<u32, u64> {
        let me = self.clone();
        Arc::new(move |key| me.load(key))
    }

    fn load(&self, key: u32) -> crate::Result<u64> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        *self.per_key.lock().unwrap().entry(key).or_default() += 1;
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        if !self.busy.lock().unwrap().insert(key) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_running.fetch_max(running, Ordering::SeqCst);
        // Worker threads are named by the prefetcher; anything else is a caller loading inline.
        let on_worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("sluice-prefetch-"));
        if on_worker {
            let n = self.on_workers.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak_on_workers.fetch_max(n, Ordering::SeqCst);
        }
        let _leave = Leave {
            probe: self,
            key,
            on_worker,
        };
        self.gate.pass();
        std::thread::sleep(self.delay);
        if *self.panic_key.lock().unwrap() == Some(key) {
            panic!("injected panic loading key {key}");
        }
        if self.fail_calls.lock().unwrap().contains(&call) {
            return Err(Error::Config(format!("injected failure at call {call}")));
        }
        if let Some(left) = self.fail_keys.lock().unwrap().get_mut(&key) {
            if *left > 0 {
                *left -= 1;
                return Err(Error::Config(format!("injected failure for key {key}")));
            }
        }
        Ok(value(key, call))
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn calls_for(&self, key: u32) -> usize {
        self.per_key.lock().unwrap().get(&key).copied().unwrap_or(0)
    }
}

/// What the probe returns: the key and the call that loaded it, so a second load shows.
fn value(key: u32, call: usize) -> u64 {
    (u64::from(key) << 32) | call as u64
}

fn key_of(v: u64) -> u32 {
    (v >> 32) as u32
}

fn config(workers: usize, queue_bound: usize, retries: u32) -> PrefetchConfig {
    PrefetchConfig {
        workers,
        queue_bound,
        retries,
    }
}

fn is_shut_down(e: &Error) -> bool {
    matches!(e, Error::ShutDown)
}

/// Polls `cond` until it holds; the test's own timeout catches it never holding.
fn eventually(mut cond: impl FnMut() -> bool) {
    while !cond() {
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn concurrent_requests_for_one_key_load_it_once() {
    within(LIMIT, || {
        const N: usize = 8;
        let probe = Probe::new(Duration::from_millis(20));
        let p = Arc::new(Prefetcher::new(config(2, 16, 0), probe.loader()).unwrap());
        let start = Arc::new(Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let (p, start) = (p.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let admit = p.request(7);
                    let got = p.wait(7).expect("requested").expect("loads");
                    (admit, got)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(probe.calls(), 1);
        for (admit, got) in &results {
            assert!(admit.accepted(), "{admit:?}");
            assert_eq!(*got, value(7, 1));
        }
        let queued = results.iter().filter(|(a, _)| *a == Admit::Queued).count();
        assert_eq!(queued, 1, "exactly one request queues the fetch");
        let c = p.counters();
        assert_eq!(c.policy.requests, N as u64);
        assert_eq!(c.policy.deduplicated, N as u64 - 1);
        assert_eq!((c.policy.started, c.loads), (1, 1));
        let mut p = Arc::try_unwrap(p).ok().expect("every thread is done");
        p.shutdown();
        assert_eq!(p.workers(), 0);
    });
}

#[test]
fn the_queue_never_grows_past_its_bound() {
    within(LIMIT, || {
        let bound = 3;
        let probe = Probe::gated(Duration::ZERO, false);
        let mut p = Prefetcher::new(config(1, bound, 0), probe.loader()).unwrap();
        assert_eq!(p.request(0), Admit::Queued);
        // Wait for the one worker to hold key 0 at the gate, so the queue starts empty.
        eventually(|| p.backlog() == (0, 1));
        let mut admits = Vec::new();
        for key in 1..=10 {
            admits.push(p.request(key));
            let (queued, in_flight) = p.backlog();
            assert!(queued <= bound, "{queued} queued, bound {bound}");
            assert_eq!(in_flight, 1);
        }
        assert!(admits[..bound].iter().all(|&a| a == Admit::Queued));
        assert!(admits[bound..].iter().all(|&a| a == Admit::Full));
        let c = p.counters();
        assert_eq!(c.policy.refused, 10 - bound as u64);
        assert_eq!(c.policy.queue_high_water, bound);
        assert!(c.policy.queue_high_water <= p.queue_bound());
        assert_eq!(c.policy.peak_in_flight, 1);

        probe.gate.open();
        for key in 0..=bound as u32 {
            let v = p.wait(key).expect("accepted").expect("loads");
            assert_eq!(key_of(v), key);
        }
        // Refused keys were never queued, so there is nothing to wait for and nothing was loaded.
        assert!(p.wait(bound as u32 + 1).is_none());
        assert_eq!(probe.calls(), bound + 1);
        // With the queue drained, a refused key is accepted now.
        assert_eq!(p.request(10), Admit::Queued);
        assert!(p.wait(10).expect("queued").is_ok());
        assert_eq!(probe.peak_on_workers.load(Ordering::SeqCst), 1);
        p.shutdown();
    });
}

/// Requests `keys` keys from a slow loader and lets the first two arrive.
fn streaming(probe: &Arc<Probe>, keys: u32) -> Prefetcher<u32, u64> {
    let p = Prefetcher::new(config(2, 64, 0), probe.loader()).unwrap();
    for key in 0..keys {
        assert_eq!(p.request(key), Admit::Queued);
    }
    for key in 0..2 {
        assert!(p.wait(key).expect("queued").is_ok());
    }
    p
}

#[test]
fn shutdown_mid_stream_joins_and_refuses() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::from_millis(10));
        let mut p = streaming(&probe, 40);
        p.shutdown();
        assert_eq!(p.workers(), 0);
        // Joined: no loader call is still running, and none starts later.
        assert_eq!(probe.running.load(Ordering::SeqCst), 0);
        let calls = probe.calls();
        assert!(calls < 40, "queued keys were dropped, {calls} loaded");
        assert_eq!(p.request(39), Admit::ShutDown);
        assert_eq!(p.request(100), Admit::ShutDown);
        match p.wait(39) {
            None => {}
            Some(Err(e)) => assert!(is_shut_down(&e), "{e}"),
            Some(Ok(v)) => panic!("got {v} after shutdown"),
        }
        // Results that had arrived were dropped too.
        assert!(p.take(0).is_none());
        assert!(p.take_ready().is_empty());
        assert!(matches!(p.load_now(5), Err(e) if is_shut_down(&e)));
        let c = p.counters();
        assert!(c.policy.cancelled >= 40 - calls as u64, "{c:?}");
        assert_eq!(c.policy.started, c.loads + c.failed);
        p.shutdown();
        assert_eq!(p.workers(), 0, "shutdown is idempotent");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(probe.calls(), calls, "nothing loads after shutdown");
    });
}

#[test]
fn dropping_mid_stream_joins_the_workers() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::from_millis(10));
        let p = streaming(&probe, 40);
        let started = Instant::now();
        drop(p);
        // The workers finish at most their current fetch (10 ms each) and stop.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(probe.running.load(Ordering::SeqCst), 0);
        let calls = probe.calls();
        assert!(calls < 40, "{calls} loaded");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(probe.calls(), calls, "no worker outlives the drop");
    });
}

#[test]
fn an_error_reaches_the_waiter_and_a_new_request_retries() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::from_millis(1));
        probe.fail_calls.lock().unwrap().insert(3);
        let mut p = Prefetcher::new(config(1, 8, 0), probe.loader()).unwrap();
        for key in 0..2 {
            p.request(key);
            assert_eq!(p.wait(key).unwrap().unwrap(), value(key, key as usize + 1));
        }
        p.request(2);
        let e = p.wait(2).expect("requested").expect_err("call 3 fails");
        assert!(e.to_string().contains("injected failure at call 3"), "{e}");
        // The error stays for other waiters until taken.
        assert!(p.wait(2).unwrap().is_err());
        assert!(p.take(2).unwrap().is_err());
        assert_eq!(p.request(2), Admit::Queued);
        assert_eq!(p.wait(2).unwrap().unwrap(), value(2, 4));
        let c = p.counters();
        assert_eq!((c.loads, c.failed, c.retried), (3, 1, 0));
        p.shutdown();
    });
}

#[test]
fn retries_hide_failures_until_they_run_out() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::ZERO);
        probe.fail_keys.lock().unwrap().extend([(5, 2), (6, 3)]);
        let mut p = Prefetcher::new(config(1, 8, 2), probe.loader()).unwrap();
        p.request(5);
        assert_eq!(p.wait(5).unwrap().unwrap(), value(5, 3));
        let c = p.counters();
        assert_eq!((c.loads, c.failed, c.retried), (1, 0, 2));
        // Three failures outlast two retries: the third is handed over.
        p.request(6);
        let e = p.wait(6).unwrap().expect_err("fails three times");
        assert!(e.to_string().contains("injected failure for key 6"), "{e}");
        let c = p.counters();
        assert_eq!((c.loads, c.failed, c.retried), (1, 1, 4));
        assert_eq!(probe.calls_for(6), 3);
        // The same rules hold for a synchronous load.
        probe.fail_keys.lock().unwrap().insert(7, 1);
        assert_eq!(p.load_now(7).unwrap(), value(7, 8));
        assert_eq!(p.counters().retried, 5);
        p.shutdown();
    });
}

#[test]
fn a_panicking_loader_is_an_error_and_the_prefetcher_carries_on() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::ZERO);
        *probe.panic_key.lock().unwrap() = Some(9);
        let mut p = Prefetcher::new(config(1, 8, 0), probe.loader()).unwrap();
        p.request(9);
        let e = p.wait(9).unwrap().expect_err("the loader panics");
        assert!(e.to_string().contains("panicked"), "{e}");
        assert_eq!(p.workers(), 1, "the worker survived");
        p.request(10);
        assert_eq!(key_of(p.wait(10).unwrap().unwrap()), 10);
        // On the caller's thread as well (once the kept error is taken, load_now loads again).
        assert!(p.take(9).unwrap().is_err());
        let e = p.load_now(9).expect_err("panics again");
        assert!(e.to_string().contains("panicked"), "{e}");
        assert_eq!(p.counters().failed, 2);
        p.shutdown();
    });
}

#[test]
fn a_panicking_loader_inline_is_an_error_too() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::ZERO);
        *probe.panic_key.lock().unwrap() = Some(1);
        let p = Prefetcher::new(config(0, 8, 1), probe.loader()).unwrap();
        p.request(1);
        assert!(p.wait(1).unwrap().is_err());
        assert_eq!(probe.calls_for(1), 2, "one retry");
        p.request(2);
        assert!(p.wait(2).unwrap().is_ok());
    });
}

#[test]
fn cancelled_requests_are_not_loaded_or_not_delivered() {
    within(LIMIT, || {
        let probe = Probe::gated(Duration::ZERO, false);
        let mut p = Prefetcher::new(config(1, 8, 0), probe.loader()).unwrap();
        p.request(1);
        eventually(|| p.backlog() == (0, 1));
        p.request(2);
        p.request(3);
        assert!(!p.cancel_queued(1), "1 is in flight");
        assert!(p.cancel_queued(3));
        assert!(!p.cancel_queued(3));
        assert_eq!(p.cancel(2), Cancel::Dequeued);
        assert!(p.is_pending(1));
        assert_eq!(p.cancel(1), Cancel::Discarding);
        assert_eq!(p.cancel(1), Cancel::Discarding);
        assert!(!p.is_pending(1));
        assert_eq!(p.cancel(4), Cancel::NotFound);
        // Nobody waits for a discarded fetch.
        assert!(p.wait(1).is_none());
        probe.gate.open();
        eventually(|| p.backlog() == (0, 0) && p.counters().discarded == 1);
        assert!(p.wait(1).is_none());
        assert!(p.take(1).is_none());
        assert!(p.wait(2).is_none() && p.wait(3).is_none());
        assert_eq!(probe.calls_for(1), 1);
        assert_eq!(probe.calls_for(2) + probe.calls_for(3), 0, "never loaded");
        let c = p.counters();
        assert_eq!((c.discarded, c.policy.cancelled, c.loads), (1, 3, 1));
        p.shutdown();
    });
}

#[test]
fn a_waiter_wakes_when_its_key_is_cancelled() {
    within(LIMIT, || {
        // (key to wait for and cancel, how to cancel it): queued keys two ways, then in flight.
        type Cancelling = fn(&Prefetcher<u32, u64>, u32) -> bool;
        let cases: [(u32, Cancelling); 3] = [
            (2, |p, k| p.cancel_queued(k)),
            (2, |p, k| p.cancel(k) == Cancel::Dequeued),
            (1, |p, k| p.cancel(k) == Cancel::Discarding),
        ];
        for (key, cancel) in cases {
            let probe = Probe::gated(Duration::ZERO, false);
            let p = Arc::new(Prefetcher::new(config(1, 8, 0), probe.loader()).unwrap());
            p.request(1);
            eventually(|| p.backlog() == (0, 1));
            p.request(2);
            let waiter = {
                let p = p.clone();
                std::thread::spawn(move || p.wait(key))
            };
            std::thread::sleep(Duration::from_millis(20));
            assert!(cancel(&p, key));
            // Key 1 stays at the gate, so only the cancel itself can wake the waiter.
            assert!(waiter.join().unwrap().is_none());
            probe.gate.open();
            let other = 3 - key;
            assert!(p.wait(other).unwrap().is_ok());
            assert_eq!(probe.calls_for(2), usize::from(key == 1));
        }
    });
}

#[test]
fn asking_again_for_a_cancelled_fetch_keeps_it() {
    within(LIMIT, || {
        let probe = Probe::gated(Duration::ZERO, false);
        let mut p = Prefetcher::new(config(1, 8, 0), probe.loader()).unwrap();
        p.request(4);
        eventually(|| p.backlog() == (0, 1));
        assert_eq!(p.cancel(4), Cancel::Discarding);
        assert_eq!(p.request(4), Admit::InFlight);
        probe.gate.open();
        assert_eq!(p.wait(4).unwrap().unwrap(), value(4, 1));
        assert_eq!(p.counters().discarded, 0);
        p.shutdown();
    });
}

#[test]
fn load_now_of_a_cancelled_fetch_in_flight_loads_it() {
    within(LIMIT, || {
        let probe = Probe::gated(Duration::ZERO, false);
        let p = Arc::new(Prefetcher::new(config(1, 8, 0), probe.loader()).unwrap());
        p.request(4);
        eventually(|| p.backlog() == (0, 1));
        assert_eq!(p.cancel(4), Cancel::Discarding);
        let caller = {
            let p = p.clone();
            std::thread::spawn(move || p.load_now(4))
        };
        std::thread::sleep(Duration::from_millis(20));
        probe.gate.open();
        let got = caller
            .join()
            .unwrap()
            .expect("not shut down, and the loader succeeds");
        assert_eq!(key_of(got), 4);
        assert_eq!(probe.overlaps.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn with_no_workers_a_wait_loads_inline_on_the_caller() {
    within(LIMIT, || {
        let probe = Probe::new(Duration::from_millis(1));
        let mut p = Prefetcher::new(config(0, 2, 0), probe.loader()).unwrap();
        assert_eq!(p.workers(), 0);
        assert_eq!(p.request(1), Admit::Queued);
        assert_eq!(p.request(2), Admit::Queued);
        assert_eq!(p.request(3), Admit::Full, "the bound holds inline too");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(probe.calls(), 0, "nothing loads before someone waits");
        assert_eq!(p.wait(2).unwrap().unwrap(), value(2, 1));
        assert_eq!(p.wait(2).unwrap().unwrap(), value(2, 1), "kept until taken");
        assert_eq!(p.wait(1).unwrap().unwrap(), value(1, 2));
        let me = std::thread::current().id();
        assert!(probe.threads.lock().unwrap().iter().all(|&t| t == me));
        assert_eq!(p.load_now(5).unwrap(), value(5, 3));
        let c = p.counters();
        assert_eq!(
            (c.loads, c.policy.started, c.policy.peak_in_flight),
            (3, 3, 1)
        );
        p.shutdown();
        assert_eq!(p.request(1), Admit::ShutDown);
    });
}

#[test]
fn with_no_workers_a_second_waiter_wakes_when_the_inline_load_ends() {
    within(LIMIT, || {
        let probe = Probe::gated(Duration::ZERO, false);
        let p = Arc::new(Prefetcher::new(config(0, 4, 0), probe.loader()).unwrap());
        p.request(1);
        let waiter = |p: &Arc<Prefetcher<u32, u64>>| {
            let p = p.clone();
            std::thread::spawn(move || p.wait(1))
        };
        let first = waiter(&p);
        eventually(|| probe.running.load(Ordering::SeqCst) == 1);
        // The second finds the key in flight on the first waiter's thread and sleeps.
        let second = waiter(&p);
        std::thread::sleep(Duration::from_millis(20));
        probe.gate.open();
        assert_eq!(first.join().unwrap().unwrap().unwrap(), value(1, 1));
        assert_eq!(second.join().unwrap().unwrap().unwrap(), value(1, 1));
    });
}

#[test]
fn with_no_workers_a_cancelled_inline_load_is_counted_as_discarded() {
    within(LIMIT, || {
        let probe = Probe::gated(Duration::ZERO, false);
        let p = Arc::new(Prefetcher::new(config(0, 4, 0), probe.loader()).unwrap());
        p.request(1);
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.wait(1))
        };
        eventually(|| probe.running.load(Ordering::SeqCst) == 1);
        assert_eq!(p.cancel(1), Cancel::Discarding);
        probe.gate.open();
        assert!(waiter.join().unwrap().is_none());
        assert!(p.take(1).is_none());
        let c = p.counters();
        assert_eq!((c.loads, c.discarded), (1, 1));
    });
}

/// One thread's share of a stress run: random operations on random keys.
fn stress_ops(
    p: &Prefetcher<u32, u64>,
    rng: &mut SplitMix64,
    ops: usize,
    keys: u32,
) -> std::result::Result<(), String> {
    // Before shutdown nothing may say `ShutDown`, and every error is an injected one.
    let check = |what: &str, key: u32, r: &Fetched<u64>| match r {
        Ok(v) if key_of(*v) == key => Ok(()),
        Ok(v) => Err(format!(
            "{what}({key}) returned the value of key {}",
            key_of(*v)
        )),
        Err(e) if e.to_string().contains("injected") => Ok(()),
        Err(e) => Err(format!("{what}({key}) failed with {e}")),
    };
    for _ in 0..ops {
        let key = (rng.next_u64() % u64::from(keys)) as u32;
        match rng.next_u64() % 20 {
            0..=6 => {
                let admit = p.request(key);
                if admit == Admit::ShutDown {
                    return Err(format!("request({key}) refused as shut down"));
                }
            }
            7..=10 => {
                if let Some(r) = p.wait(key) {
                    check("wait", key, &r)?;
                }
            }
            11..=12 => {
                if let Some(r) = p.take(key) {
                    check("take", key, &r)?;
                }
            }
            13 => {
                for (k, r) in p.take_ready() {
                    check("take_ready", k, &r)?;
                }
            }
            14..=15 => {
                p.cancel(key);
            }
            16..=17 => {
                p.cancel_queued(key);
            }
            _ => check("load_now", key, &p.load_now(key))?,
        }
    }
    Ok(())
}

/// One seeded stress run; returns a description of the first broken invariant.
fn stress_run(seed: u64) -> std::result::Result<(), String> {
    let mut rng = SplitMix64::new(seed);
    let workers = (rng.next_u64() % 4) as usize;
    let bound = 1 + (rng.next_u64() % 4) as usize;
    let threads = 1 + (rng.next_u64() % 3) as usize;
    let retries = (rng.next_u64() % 2) as u32;
    let keys = 2 + (rng.next_u64() % 6) as u32;
    let delay = Duration::from_micros(rng.next_u64() % 300);
    let probe = Probe::new(delay);
    probe
        .fail_calls
        .lock()
        .unwrap()
        .extend((1..200).filter(|_| rng.next_u64().is_multiple_of(8)));
    let what = format!(
        "seed {seed}: {workers} workers, bound {bound}, {threads} threads, {keys} keys, \
         {retries} retries, {delay:?}"
    );
    let p = Arc::new(Prefetcher::new(config(workers, bound, retries), probe.loader()).unwrap());
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let p = p.clone();
            let mut rng = SplitMix64::derive(seed, 1, i as u64);
            let ops = 10 + (rng.next_u64() % 40) as usize;
            std::thread::spawn(move || stress_ops(&p, &mut rng, ops, keys))
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| format!("{what}: a caller panicked"))?
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let mut p = Arc::try_unwrap(p).map_err(|_| format!("{what}: prefetcher still shared"))?;
    // End mid-stream: a last burst of requests, then shutdown (or drop) while they run.
    for _ in 0..rng.next_u64() % 6 {
        p.request((rng.next_u64() % u64::from(keys)) as u32);
    }
    let c = p.counters();
    let bad = |msg: String, c: FetchCounters| Err(format!("{what}: {msg} ({c:?})"));
    if c.policy.queue_high_water > bound {
        return bad(format!("queue high water above bound {bound}"), c);
    }
    // Workers run at most `workers` fetches; callers may each run one more (inline or load_now).
    if c.policy.peak_in_flight > workers.max(1) + threads {
        return bad("peak in flight above workers + callers".into(), c);
    }
    if probe.peak_running.load(Ordering::SeqCst) > workers + threads {
        return bad("more loads at once than workers + callers".into(), c);
    }
    if probe.peak_on_workers.load(Ordering::SeqCst) > workers {
        return bad("more loads on workers at once than workers".into(), c);
    }
    if rng.next_u64().is_multiple_of(3) {
        drop(p);
    } else {
        p.shutdown();
        if p.workers() != 0 {
            return bad("workers left after shutdown".into(), c);
        }
        if p.request(0) != Admit::ShutDown {
            return bad("request accepted after shutdown".into(), c);
        }
        if !matches!(p.load_now(0), Err(e) if is_shut_down(&e)) {
            return bad("load_now after shutdown".into(), c);
        }
        let c = p.counters();
        if c.policy.started != c.loads + c.failed {
            return bad("a started fetch neither loaded nor failed".into(), c);
        }
        if probe.calls() as u64 != c.loads + c.failed + c.retried {
            return bad(format!("{} loader calls", probe.calls()), c);
        }
    }
    if probe.running.load(Ordering::SeqCst) != 0 {
        return Err(format!("{what}: a loader still runs after shutdown"));
    }
    if probe.overlaps.load(Ordering::SeqCst) != 0 {
        return Err(format!("{what}: one key loaded twice at once"));
    }
    Ok(())
}

#[test]
fn random_interleavings_keep_the_invariants() {
    within(Duration::from_secs(120), || {
        for seed in 0..200 {
            let run = std::panic::catch_unwind(|| {
                within(Duration::from_secs(10), move || stress_run(seed))
            });
            match run {
                Ok(Ok(())) => {}
                Ok(Err(broken)) => panic!("{broken}"),
                // The timeout (or panic) message is above; name the seed that caused it.
                Err(_) => panic!("stress seed {seed} hung or panicked"),
            }
        }
    });
}
