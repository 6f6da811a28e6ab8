//! The weight store's host tier over a slow source: a synth model behind a `ThrottledSource`, so
//! the source's own counters show what the page cache really fetched, and faults can be injected.
#![cfg(not(target_family = "wasm"))]

use engine_core::source::{
    ByteSource, FaultPlan, MemorySource, ThrottleConfig, ThrottleStats, ThrottledSource,
};
use engine_core::store::{StoreConfig, WeightStore};
use engine_core::synth::{self, SynthConfig};
use engine_core::Error;
use std::collections::BTreeSet;

const PAGE: u64 = 16 * 1024;

type Store = WeightStore<ThrottledSource<MemorySource>>;

fn model() -> Vec<u8> {
    synth::write(&SynthConfig::default(), Vec::new(), 1, |_, _| {}).unwrap()
}

/// A store over `bytes` read through a fast but throttled source (so the pacing path runs too).
fn store(bytes: &[u8], host_budget: u64) -> Store {
    let config = ThrottleConfig {
        bandwidth: Some(4 << 30),
        ..ThrottleConfig::default()
    };
    let source = ThrottledSource::new(MemorySource::new(bytes.to_vec()), config).unwrap();
    WeightStore::open(
        source,
        StoreConfig {
            page_size: PAGE,
            host_budget,
        },
    )
    .unwrap()
}

/// The pages the tensors touch and their bytes: what one full pass must fetch from the source.
fn tensor_pages(store: &Store) -> (u64, u64) {
    let pages: BTreeSet<u64> = store
        .tensors()
        .iter()
        .flat_map(|t| t.pages.clone())
        .collect();
    let bytes = pages
        .iter()
        .map(|&k| {
            let r = store.page_range(k).unwrap();
            r.end - r.start
        })
        .sum();
    (pages.len() as u64, bytes)
}

/// Reads every tensor, checks its bytes against the file, and calls `check` after each.
fn read_all(store: &Store, file: &[u8], mut check: impl FnMut(&Store)) {
    for t in store.tensors() {
        let got = store.tensor_bytes(&t.name).unwrap();
        assert_eq!(
            &got[..],
            &file[t.range.start as usize..t.range.end as usize],
            "{}",
            t.name
        );
        drop(got);
        check(store);
    }
}

fn since(before: ThrottleStats, now: ThrottleStats) -> ThrottleStats {
    ThrottleStats {
        reads: now.reads - before.reads,
        bytes_read: now.bytes_read - before.bytes_read,
        faults_injected: now.faults_injected - before.faults_injected,
        busy: now.busy - before.busy,
    }
}

#[test]
fn with_room_for_the_model_each_byte_comes_from_the_source_once() {
    let file = model();
    let store = store(&file, 1 << 30);
    assert!(
        !store.is_zero_copy(),
        "a throttled source goes through the host cache"
    );
    let data_len = store.gguf().file_len - store.gguf().data_offset;
    assert!(data_len > 20 * PAGE, "the model spans many pages");
    let (pages, expected) = tensor_pages(&store);
    assert!(expected <= data_len);

    // Parsing the header read from the source too; count only what the pages fetch.
    let after_open = store.source().stats();
    read_all(&store, &file, |_| {});
    let first = since(after_open, store.source().stats());
    assert_eq!(first.bytes_read, expected);
    assert_eq!(first.reads, pages, "one read per page");
    assert_eq!(store.host_cache_stats().bytes_read, expected);
    let hits_after_first = store.host_cache_stats().hits;

    read_all(&store, &file, |_| {});
    let total = since(after_open, store.source().stats());
    assert_eq!(total.bytes_read, expected, "the second pass reads nothing");
    let cache = store.host_cache_stats();
    assert!(cache.hits > hits_after_first, "{cache:?}");
    assert_eq!(cache.misses, pages);
    assert_eq!(cache.evictions, 0);
    assert_eq!(cache.live_bytes, expected, "every page stays cached");
}

#[test]
fn with_a_small_budget_tensors_bypass_the_cache() {
    let file = model();
    let budget = 4 * PAGE;
    let store = store(&file, budget);
    assert!(tensor_pages(&store).1 > 10 * budget);
    let after_open = store.source().stats();
    for _ in 0..2 {
        read_all(&store, &file, |st| {
            let c = st.host_cache_stats();
            assert!(
                c.live_bytes <= budget && c.peak_live_bytes <= budget,
                "{c:?}"
            );
        });
    }
    // Cyclic passes over a model larger than the cache would evict every page just before its
    // next use, so the store reads tensors straight from the source and caches nothing.
    let cache = store.host_cache_stats();
    assert_eq!(
        (cache.misses, cache.evictions, cache.peak_live_bytes),
        (0, 0, 0),
        "{cache:?}"
    );
    let served = since(after_open, store.source().stats());
    let tensor_bytes: u64 = store
        .tensors()
        .iter()
        .map(|t| t.range.end - t.range.start)
        .sum();
    assert_eq!(
        served.bytes_read,
        2 * tensor_bytes,
        "each pass reads each tensor once"
    );
}

#[test]
fn concurrent_readers_stay_within_the_budget() {
    let file = model();
    let budget = 4 * PAGE;
    let store = store(&file, budget);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                read_all(&store, &file, |st| {
                    assert!(st.host_cache_stats().live_bytes <= budget);
                })
            });
        }
    });
    assert!(store.host_cache_stats().peak_live_bytes <= budget);
}

#[test]
fn an_injected_fault_surfaces_and_the_read_succeeds_once_it_is_cleared() {
    let file = model();
    let store = store(&file, 1 << 30);
    let t = store.tensors()[1].clone();
    store.source().set_faults(FaultPlan::InRange {
        range: t.range.clone(),
        times: u32::MAX,
    });
    let err = store.tensor_bytes(&t.name).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(
        store.host_cache_stats().live_bytes,
        0,
        "a failed page holds nothing"
    );
    assert!(store.source().stats().faults_injected > 0);

    store.source().set_faults(FaultPlan::None);
    let got = store.tensor_bytes(&t.name).unwrap();
    assert_eq!(
        &got[..],
        &file[t.range.start as usize..t.range.end as usize]
    );
    assert_eq!(store.source().len(), file.len() as u64);
}
