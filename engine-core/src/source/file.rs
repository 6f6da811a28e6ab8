//! Positional reads from a file, for when mapping is unwanted (network file systems, host budgets).

use super::{check_range, ByteSource};
use crate::Result;
use std::fs::File;
use std::path::Path;

/// A file read with positional reads (`pread`), safe to share between threads.
#[derive(Debug)]
pub struct FileSource {
    file: PositionalFile,
    len: u64,
}

impl FileSource {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file: PositionalFile::new(file),
            len,
        })
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.len)?;
        self.file.read_exact_at(buf, offset)?;
        Ok(())
    }
}

#[cfg(unix)]
#[derive(Debug)]
struct PositionalFile(File);

#[cfg(unix)]
impl PositionalFile {
    fn new(file: File) -> Self {
        Self(file)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
    }
}

// Elsewhere, a seek followed by a read must not interleave with another thread's.
#[cfg(not(unix))]
#[derive(Debug)]
struct PositionalFile(std::sync::Mutex<File>);

#[cfg(not(unix))]
impl PositionalFile {
    fn new(file: File) -> Self {
        Self(std::sync::Mutex::new(file))
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}
