//! `GgufFile::read` on arbitrary bytes: it must return `Ok` or an error, never panic, and what it
//! accepts must be consistent.

#![no_main]

use engine_core::gguf::GgufFile;
use engine_core::source::MemorySource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = MemorySource::new(data);
    match GgufFile::read(&src) {
        Ok(file) => {
            for t in &file.tensors {
                assert!(file.data_range(t).end <= file.file_len);
                assert_eq!(t.row_len() * t.n_rows(), t.n_elements);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
