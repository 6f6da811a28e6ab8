//! The prefetch policy: which request runs next, which are already queued or in flight, and how many
//! may wait. Plain state with no threads or futures, so worker threads (native) and futures (the
//! browser) drive the same rules, and tests can step through every ordering.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Newly queued.
    Queued,
    /// Already queued: the earlier request stands (no second fetch).
    AlreadyQueued,
    /// Already being fetched: the caller waits for that fetch (no second fetch).
    InFlight,
    /// The queue is at its bound; nothing was queued.
    Full,
    /// The prefetcher is shutting down; nothing was queued.
    ShutDown,
}

impl Admit {
    /// Whether the key will be fetched (now queued or already under way).
    pub fn accepted(self) -> bool {
        matches!(self, Admit::Queued | Admit::AlreadyQueued | Admit::InFlight)
    }
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Removed from the queue before it started.
    Dequeued,
    /// Already being fetched: its result will be dropped when it arrives.
    Discarding,
    /// Neither queued nor in flight.
    NotFound,
}

/// What a finished fetch should do with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Hand it to whoever asked.
    Deliver,
    /// It was cancelled (or the prefetcher shut down) while running: drop it.
    Discard,
}

/// Counters the policy keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PolicyCounters {
    pub requests: u64,
    /// Requests for a key already queued or in flight.
    pub deduplicated: u64,
    /// Requests refused because the queue was full.
    pub refused: u64,
    pub cancelled: u64,
    /// Fetches started.
    pub started: u64,
    /// Most requests ever waiting in the queue at once.
    pub queue_high_water: usize,
    /// Most fetches ever running at once.
    pub peak_in_flight: usize,
}

/// The queue, the in-flight set and their bounds.
#[derive(Debug)]
pub struct PrefetchPolicy<K> {
    queue_bound: usize,
    max_in_flight: usize,
    queued: VecDeque<K>,
    in_flight: HashSet<K>,
    discarding: HashSet<K>,
    shut_down: bool,
    counters: PolicyCounters,
}

impl<K: Copy + Eq + Hash> PrefetchPolicy<K> {
    /// At most `queue_bound` requests wait and `max_in_flight` run (both at least 1).
    pub fn new(queue_bound: usize, max_in_flight: usize) -> Self {
        Self {
            queue_bound: queue_bound.max(1),
            max_in_flight: max_in_flight.max(1),
            queued: VecDeque::new(),
            in_flight: HashSet::new(),
            discarding: HashSet::new(),
            shut_down: false,
            counters: PolicyCounters::default(),
        }
    }

    /// Asks for `key` to be fetched, at the back of the queue.
    pub fn request(&mut self, key: K) -> Admit {
        self.counters.requests += 1;
        if self.shut_down {
            return Admit::ShutDown;
        }
        if self.in_flight.contains(&key) {
            // A cancelled fetch that is asked for again is wanted after all.
            if !self.discarding.remove(&key) {
                self.counters.deduplicated += 1;
            }
            return Admit::InFlight;
        }
        if self.queued.contains(&key) {
            self.counters.deduplicated += 1;
            return Admit::AlreadyQueued;
        }
        if self.queued.len() >= self.queue_bound {
            self.counters.refused += 1;
            return Admit::Full;
        }
        self.queued.push_back(key);
        self.counters.queue_high_water = self.counters.queue_high_water.max(self.queued.len());
        Admit::Queued
    }

    /// Marks `key` as being fetched by the caller itself (a synchronous load), so that requests for
    /// it meanwhile wait for this fetch. `false` when it is already in flight or shut down.
    pub fn start_now(&mut self, key: K) -> bool {
        if self.shut_down || self.in_flight.contains(&key) {
            return false;
        }
        self.queued.retain(|k| *k != key);
        self.begin(key);
        true
    }

    /// The next request for a worker to fetch, if one waits and the in-flight bound allows.
    pub fn start(&mut self) -> Option<K> {
        if self.shut_down || self.in_flight.len() >= self.max_in_flight {
            return None;
        }
        let key = self.queued.pop_front()?;
        self.begin(key);
        Some(key)
    }

    fn begin(&mut self, key: K) {
        self.in_flight.insert(key);
        self.counters.started += 1;
        self.counters.peak_in_flight = self.counters.peak_in_flight.max(self.in_flight.len());
    }

    /// A fetch of `key` ended (with a value or an error).
    pub fn finish(&mut self, key: K) -> Finish {
        self.in_flight.remove(&key);
        if self.discarding.remove(&key) || self.shut_down {
            Finish::Discard
        } else {
            Finish::Deliver
        }
    }

    /// Drops a queued request, or marks an in-flight one for discarding.
    pub fn cancel(&mut self, key: K) -> Cancel {
        match self.cancel_queued(key) {
            true => Cancel::Dequeued,
            false if self.in_flight.contains(&key) => {
                if self.discarding.insert(key) {
                    self.counters.cancelled += 1;
                }
                Cancel::Discarding
            }
            false => Cancel::NotFound,
        }
    }

    /// Drops `key` only if it has not started; `true` when it was queued.
    pub fn cancel_queued(&mut self, key: K) -> bool {
        let before = self.queued.len();
        self.queued.retain(|k| *k != key);
        let removed = self.queued.len() != before;
        if removed {
            self.counters.cancelled += 1;
        }
        removed
    }

    /// Stops accepting and starting work; returns the requests that were still queued.
    pub fn shut_down(&mut self) -> Vec<K> {
        self.shut_down = true;
        self.counters.cancelled += self.queued.len() as u64;
        self.queued.drain(..).collect()
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    pub fn is_queued(&self, key: K) -> bool {
        self.queued.contains(&key)
    }

    /// Whether `key` is being fetched and its result is still wanted.
    pub fn is_in_flight(&self, key: K) -> bool {
        self.in_flight.contains(&key) && !self.discarding.contains(&key)
    }

    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn queue_bound(&self) -> usize {
        self.queue_bound
    }

    pub fn counters(&self) -> PolicyCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedups_queued_and_in_flight_requests() {
        let mut p = PrefetchPolicy::new(4, 2);
        assert_eq!(p.request(7), Admit::Queued);
        assert_eq!(p.request(7), Admit::AlreadyQueued);
        assert_eq!(p.start(), Some(7));
        assert_eq!(p.request(7), Admit::InFlight);
        assert_eq!(p.start(), None);
        assert_eq!(p.finish(7), Finish::Deliver);
        assert_eq!(p.request(7), Admit::Queued);
        let c = p.counters();
        assert_eq!((c.requests, c.deduplicated, c.started), (4, 2, 1));
    }

    #[test]
    fn queue_and_in_flight_bounds_hold() {
        let mut p = PrefetchPolicy::new(2, 1);
        assert_eq!(p.request(1), Admit::Queued);
        assert_eq!(p.request(2), Admit::Queued);
        assert_eq!(p.request(3), Admit::Full);
        assert_eq!(p.start(), Some(1));
        assert_eq!(p.start(), None, "one fetch at a time");
        assert_eq!(p.request(3), Admit::Queued);
        assert_eq!(p.queued_len(), 2);
        let c = p.counters();
        assert_eq!((c.refused, c.queue_high_water, c.peak_in_flight), (1, 2, 1));
    }

    #[test]
    fn cancel_dequeues_or_discards() {
        let mut p = PrefetchPolicy::new(4, 4);
        p.request(1);
        p.request(2);
        assert_eq!(p.cancel(1), Cancel::Dequeued);
        assert_eq!(p.start(), Some(2));
        assert_eq!(p.cancel(2), Cancel::Discarding);
        assert!(!p.is_in_flight(2));
        assert_eq!(p.finish(2), Finish::Discard);
        assert_eq!(p.cancel(3), Cancel::NotFound);
        // Asking again for a fetch being discarded keeps its result after all.
        p.request(4);
        p.start();
        p.cancel(4);
        assert_eq!(p.request(4), Admit::InFlight);
        assert_eq!(p.finish(4), Finish::Deliver);
    }

    #[test]
    fn shutdown_refuses_and_discards() {
        let mut p = PrefetchPolicy::new(4, 1);
        p.request(1);
        p.request(2);
        assert_eq!(p.start(), Some(1));
        assert_eq!(p.shut_down(), vec![2]);
        assert_eq!(p.request(3), Admit::ShutDown);
        assert_eq!(p.start(), None);
        assert_eq!(p.finish(1), Finish::Discard);
        assert!(!p.start_now(5));
    }

    #[test]
    fn start_now_takes_a_queued_request_over() {
        let mut p = PrefetchPolicy::new(4, 1);
        p.request(1);
        assert!(p.start_now(1));
        assert!(!p.is_queued(1));
        assert_eq!(p.request(1), Admit::InFlight);
        assert!(!p.start_now(1));
    }
}
