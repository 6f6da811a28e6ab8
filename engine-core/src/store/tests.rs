use super::*;
use crate::gguf::{GgufWriter, Metadata, TensorSpec, Value};
use crate::quant::GgmlType;
use crate::source::{ByteSource, FileSource, MemorySource};

const PAGE: u64 = 4096;

/// A small model-shaped file: embeddings, two blocks, output head; tensor `i` filled with byte `i`.
pub(super) fn model_bytes() -> Vec<u8> {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("llama".into()));
    let specs = vec![
        TensorSpec::new("token_embd.weight", &[64, 100], GgmlType::F32), // 25600 bytes
        TensorSpec::new("blk.0.attn_q.weight", &[64, 64], GgmlType::F16),
        TensorSpec::new("blk.0.ffn_up.weight", &[64, 64], GgmlType::Q8_0),
        TensorSpec::new("blk.1.attn_q.weight", &[64, 64], GgmlType::F16),
        TensorSpec::new("output_norm.weight", &[64], GgmlType::F32),
        TensorSpec::new("rope_freqs.weight", &[32], GgmlType::F32),
    ];
    let sizes: Vec<u64> = specs.iter().map(|s| s.n_bytes().unwrap()).collect();
    let mut w = GgufWriter::new(Vec::new(), &m, specs).unwrap();
    for (i, n) in sizes.iter().enumerate() {
        w.write_tensor_data(&vec![i as u8 + 1; *n as usize])
            .unwrap();
    }
    w.finish().unwrap()
}

fn config(budget: u64) -> StoreConfig {
    StoreConfig {
        page_size: PAGE,
        host_budget: budget,
    }
}

#[test]
fn index_groups_tensors_by_layer_in_execution_order() {
    let store = WeightStore::open(MemorySource::new(model_bytes()), config(1 << 20)).unwrap();
    let ids: Vec<LayerId> = store.layers().iter().map(|l| l.id).collect();
    assert_eq!(
        ids,
        [
            LayerId::Embedding,
            LayerId::Block(0),
            LayerId::Block(1),
            LayerId::Output,
            LayerId::Other
        ]
    );
    assert_eq!(store.block_count(), 2);
    let blk0 = store.layer(LayerId::Block(0)).unwrap();
    assert_eq!(blk0.tensors.len(), 2);
    assert_eq!(blk0.bytes, 64 * 64 * 2 + 64 * 2 * 34);
    let embd = store.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.pages, 0..(25600u64).div_ceil(PAGE));
    // Page ranges of a layer cover exactly the pages its tensors touch.
    for layer in store.layers() {
        for &i in &layer.tensors {
            let t = &store.tensors()[i];
            assert!(layer
                .pages
                .iter()
                .any(|r| r.start <= t.pages.start && t.pages.end <= r.end));
        }
    }
    assert!(matches!(
        store.tensor("nope"),
        Err(Error::TensorNotFound(_))
    ));
}

#[test]
fn memory_resident_sources_are_zero_copy() {
    let source = MemorySource::new(model_bytes());
    let store = WeightStore::open(source.clone(), config(0)).unwrap();
    assert!(store.is_zero_copy());
    let t = store.tensor("blk.1.attn_q.weight").unwrap().range.clone();
    let bytes = store.tensor_bytes("blk.1.attn_q.weight").unwrap();
    assert!(matches!(bytes, Cow::Borrowed(_)));
    assert_eq!(bytes.as_ptr(), source.slice(t.start, 1).unwrap().as_ptr());
    assert!(bytes.iter().all(|&b| b == 4));
    assert!(matches!(store.page(0).unwrap(), PageRef::Borrowed(_)));
    assert_eq!(store.host_cache_stats().live_bytes, 0);
}

#[test]
fn file_sources_read_through_a_budgeted_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let bytes = model_bytes();
    std::fs::write(&path, &bytes).unwrap();
    let store = WeightStore::open(FileSource::open(&path).unwrap(), config(3 * PAGE)).unwrap();
    assert!(!store.is_zero_copy());

    for t in store.tensors().to_vec() {
        let got = store.tensor_bytes(&t.name).unwrap();
        assert_eq!(
            &got[..],
            &bytes[t.range.start as usize..t.range.end as usize],
            "{}",
            t.name
        );
        let stats = store.host_cache_stats();
        assert!(
            stats.live_bytes <= 3 * PAGE && stats.peak_live_bytes <= 3 * PAGE,
            "{stats:?}"
        );
    }
    // The model is larger than the budget, so tensor reads went straight to the file.
    assert_eq!(store.host_cache_stats().misses, 0);
    // Pages themselves still go through the cache, evicting the least recently used.
    for k in 0..store.page_count() {
        let page = store.page(k).unwrap();
        let r = store.page_range(k).unwrap();
        assert_eq!(&page[..], &bytes[r.start as usize..r.end as usize]);
        let stats = store.host_cache_stats();
        assert!(stats.live_bytes <= 3 * PAGE, "{stats:?}");
    }
    let before = store.host_cache_stats();
    assert!(before.evictions > 0, "{before:?}");
    let _ = store.page(store.page_count() - 1).unwrap();
    assert!(
        store.host_cache_stats().hits > before.hits,
        "re-reading a cached page is a hit"
    );
}

#[test]
fn holding_more_pages_than_the_budget_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, model_bytes()).unwrap();
    let store = WeightStore::open(FileSource::open(&path).unwrap(), config(2 * PAGE)).unwrap();
    let a = store.page(0).unwrap();
    let b = store.page(1).unwrap();
    let err = store.page(2).unwrap_err();
    assert!(
        matches!(err, Error::HostBudgetExceeded { budget, .. } if budget == 2 * PAGE),
        "{err}"
    );
    drop(a);
    // With page 0 released it can be evicted and page 2 fits.
    let c = store.page(2).unwrap();
    assert_eq!(store.host_cache_stats().live_bytes, 2 * PAGE);
    drop((b, c));
}

#[test]
fn bad_configs_and_ranges_are_errors() {
    let bytes = model_bytes();
    for page_size in [0, 1000, 2048, 1 << 31] {
        let cfg = StoreConfig {
            page_size,
            host_budget: 1,
        };
        assert!(matches!(
            WeightStore::open(MemorySource::new(bytes.clone()), cfg),
            Err(Error::Config(_))
        ));
    }
    let store = WeightStore::open(MemorySource::new(bytes.clone()), config(1 << 20)).unwrap();
    assert!(store.page(store.page_count()).is_err());
    let mut buf = [0u8; 8];
    assert!(matches!(
        store.read_range(0..8, &mut buf),
        Err(Error::ReadPastEnd { .. })
    ));
    let end = bytes.len() as u64;
    assert!(matches!(
        store.read_range(end - 4..end + 4, &mut buf),
        Err(Error::ReadPastEnd { .. })
    ));
}

/// A source whose reads fail, to check errors surface and nothing stays counted.
struct FailingSource(MemorySource);

impl ByteSource for FailingSource {
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset >= 4096 {
            return Err(Error::Io(std::io::Error::other("injected read failure")));
        }
        self.0.read_at(offset, buf)
    }
}

#[test]
fn a_failed_page_read_is_an_error_and_releases_its_reservation() {
    let store = WeightStore::open(
        FailingSource(MemorySource::new(model_bytes())),
        config(1 << 20),
    )
    .unwrap();
    let err = store.tensor_bytes("blk.1.attn_q.weight").unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert_eq!(store.host_cache_stats().live_bytes, 0);
}
