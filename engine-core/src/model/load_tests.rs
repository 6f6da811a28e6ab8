//! A resident CPU model borrows its weights from a memory map rather than copying them, and one
//! over a source that is not mapped owns copies and computes the same logits.

use super::*;
use crate::backend::cpu::{CpuBackend, CpuConfig, CpuWeight, MatmulPath};
use crate::source::{FileSource, MmapSource};
use crate::store::StoreConfig;
use crate::synth::SynthConfig;
use pollster::block_on;

fn backend() -> CpuBackend {
    CpuBackend::new(CpuConfig {
        threads: 2,
        path: MatmulPath::Exact,
    })
    .unwrap()
}

/// Every weight the model holds, step by step.
fn weights(model: &Model<CpuBackend>) -> Vec<CpuWeight> {
    let mut s = model.scheduler();
    let steps: Vec<usize> = s.plan().steps.iter().map(|st| st.tensors.len()).collect();
    let mut out = Vec::new();
    for (step, n) in steps.into_iter().enumerate() {
        let held = s.acquire(step).unwrap();
        out.extend((0..n).map(|i| held.get(i).unwrap().clone()));
    }
    out
}

fn logits(model: &Model<CpuBackend>, b: &CpuBackend) -> Vec<f32> {
    let mut session = model.session(b, 16).unwrap();
    block_on(model.forward(b, &mut session, &[1, 5, 9], Logits::All)).unwrap()
}

#[test]
fn resident_cpu_weights_borrow_from_the_map_and_a_file_source_gives_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.gguf");
    let cfg = SynthConfig::default();
    let file = std::fs::File::create(&path).unwrap();
    crate::synth::write(&cfg, std::io::BufWriter::new(file), 1, |_, _| {})
        .unwrap()
        .into_inner()
        .unwrap()
        .sync_all()
        .unwrap();
    let b = backend();

    let mapped = Arc::new(
        WeightStore::open(MmapSource::open(&path).unwrap(), StoreConfig::default()).unwrap(),
    );
    let map = mapped.source().slice(0, mapped.source().len()).unwrap();
    let inside = map.as_ptr_range();
    let model = Model::load(&b, mapped.clone()).unwrap();
    let held = weights(&model);
    assert!(!held.is_empty());
    for w in &held {
        let range = w.bytes().as_ptr_range();
        assert!(
            inside.start <= range.start && range.end <= inside.end,
            "a {:?} weight of {} bytes was copied out of the map",
            w.dims(),
            w.bytes().len()
        );
    }
    let from_map = logits(&model, &b);
    drop(held);

    let file_store = Arc::new(
        WeightStore::open(FileSource::open(&path).unwrap(), StoreConfig::default()).unwrap(),
    );
    assert!(!file_store.source().is_mapped());
    let owned = Model::load(&b, file_store).unwrap();
    for w in weights(&owned) {
        let start = w.bytes().as_ptr();
        assert!(
            !inside.contains(&start),
            "an owned weight points into the map"
        );
    }
    assert_eq!(logits(&owned, &b), from_map);

    // The model keeps the store (and its map) alive after the caller lets go of it.
    drop(mapped);
    assert_eq!(logits(&model, &b), from_map);
}
