//! The storage under redb: the data file, optionally behind a fault switch
//! (tests), and a read-only overlay that lets the store keep serving reads
//! while the disk refuses writes.
//!
//! redb latches the first I/O error: afterwards every operation of that
//! `Database`, reads included, fails with "previous I/O error". Reopening the
//! file needs a recovery commit, which fails while the disk is still full.
//! Opening it over [`Overlay`] instead sends redb's writes to memory, so the
//! committed data can be read without writing a byte to the file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The data file, with writes failing with ENOSPC while `fault_switch`
/// names an existing file: how tests make the disk "full" under a running
/// apiserver and free it again.
#[derive(Debug)]
pub(super) struct DataFile {
    inner: FileBackend,
    fault_switch: Option<PathBuf>,
}

impl DataFile {
    pub(super) fn open(path: &Path, fault_switch: Option<&Path>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Self {
            inner: file_backend(file)?,
            fault_switch: fault_switch.map(Path::to_path_buf),
        })
    }

    fn check_fault(&self) -> io::Result<()> {
        match &self.fault_switch {
            Some(switch) if switch.exists() => Err(io::Error::from_raw_os_error(ENOSPC)),
            _ => Ok(()),
        }
    }
}

/// ENOSPC ("No space left on device") on Linux and the BSDs.
const ENOSPC: i32 = 28;

fn file_backend(file: File) -> io::Result<FileBackend> {
    FileBackend::new(file).map_err(io::Error::other)
}

/// Forwards the lock calls to the file backend, so that the file stays
/// locked against a second process exactly as with redb's own backend.
macro_rules! forward_locks {
    ($field:ident) => {
        fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.$field.try_lock_range(start, end)
        }

        fn try_lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.$field.try_lock_shared_range(start, end)
        }

        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.$field.lock_range(start, end)
        }

        fn lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), BackendError> {
            self.$field.lock_shared_range(start, end)
        }

        fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.$field.unlock_range(start, end)
        }

        fn query_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.$field.query_lock_range(start, end)
        }

        fn close(&self) -> io::Result<()> {
            self.$field.close()
        }
    };
}

impl StorageBackend for DataFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_fault()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check_fault()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_fault()?;
        self.inner.write(offset, data)
    }

    forward_locks!(inner);
}

/// Pages of the overlay: redb writes whole pages, but nothing relies on it.
const PAGE: u64 = 4096;

/// The data file, read-only: writes land in memory and are read back from
/// there. Only redb's open (its recovery commit) and close write through it,
/// since the store refuses writes while it serves from the overlay; that is
/// a few pages.
#[derive(Debug)]
pub(super) struct Overlay {
    file: DataFile,
    state: Mutex<OverlayState>,
}

#[derive(Debug)]
struct OverlayState {
    len: u64,
    /// The file's bytes below this show through; it only shrinks.
    visible: u64,
    pages: HashMap<u64, Box<[u8]>>,
}

impl Overlay {
    pub(super) fn new(file: DataFile) -> io::Result<Self> {
        let len = file.len()?;
        Ok(Self {
            file,
            state: Mutex::new(OverlayState {
                len,
                visible: len,
                pages: HashMap::new(),
            }),
        })
    }

    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, OverlayState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("overlay lock poisoned"))
    }

    /// A page as the file plus the overlay's writes have it (zeros past the
    /// file's end).
    fn page(&self, state: &OverlayState, index: u64) -> io::Result<Box<[u8]>> {
        if let Some(page) = state.pages.get(&index) {
            return Ok(page.clone());
        }
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let start = index * PAGE;
        if start < state.visible {
            let n = (state.visible - start).min(PAGE) as usize;
            self.file.read(start, &mut page[..n])?;
        }
        Ok(page)
    }
}

/// The pages an access of `len` bytes at `offset` touches, each with the
/// range within the page and within the caller's buffer.
fn spans(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let end = offset + len as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let index = at / PAGE;
        let within = (at % PAGE) as usize;
        let n = ((PAGE - at % PAGE).min(end - at)) as usize;
        let buffer = (at - offset) as usize;
        at += n as u64;
        Some((index, within, buffer, n))
    })
}

impl StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state()?;
        if offset + out.len() as u64 > state.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the store file",
            ));
        }
        for (index, within, buffer, n) in spans(offset, out.len()) {
            let page = self.page(&state, index)?;
            out[buffer..buffer + n].copy_from_slice(&page[within..within + n]);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state()?;
        if len < state.len {
            // Bytes past a shrink read as zeros if the file grows again.
            if !len.is_multiple_of(PAGE) {
                let mut page = self.page(&state, len / PAGE)?;
                page[(len % PAGE) as usize..].fill(0);
                state.pages.insert(len / PAGE, page);
            }
            state.pages.retain(|index, _| index * PAGE < len);
            state.visible = state.visible.min(len);
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state()?;
        for (index, within, buffer, n) in spans(offset, data.len()) {
            let mut page = self.page(&state, index)?;
            page[within..within + n].copy_from_slice(&data[buffer..buffer + n]);
            state.pages.insert(index, page);
        }
        state.len = state.len.max(offset + data.len() as u64);
        Ok(())
    }

    forward_locks!(file);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay_over(bytes: &[u8]) -> (tempfile::TempDir, Overlay, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data");
        std::fs::write(&path, bytes).expect("write");
        let overlay = Overlay::new(DataFile::open(&path, None).expect("open")).expect("overlay");
        (dir, overlay, path)
    }

    #[test]
    fn overlay_reads_the_file_and_its_own_writes_but_never_writes_the_file() {
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, overlay, path) = overlay_over(&original);
        overlay
            .write(4090, &[7u8; 20])
            .expect("write across a page edge");
        overlay
            .write(12_000, &[9u8; 10])
            .expect("write past the end");
        assert_eq!(overlay.len().expect("len"), 12_010);

        let mut out = vec![0u8; 12_010];
        overlay.read(0, &mut out).expect("read");
        let mut expected = original.clone();
        expected[4090..4110].fill(7);
        expected.resize(12_000, 0);
        expected.extend([9u8; 10]);
        assert_eq!(out, expected);
        assert_eq!(std::fs::read(&path).expect("file"), original);

        overlay.set_len(5000).expect("shrink");
        overlay.set_len(9000).expect("grow");
        let mut tail = vec![1u8; 4000];
        overlay
            .read(5000, &mut tail)
            .expect("read the regrown part");
        assert!(tail.iter().all(|b| *b == 0), "a shrink forgets the bytes");
        assert!(overlay.read(8999, &mut [0u8; 2]).is_err());
    }

    #[test]
    fn the_fault_switch_fails_writes_with_enospc_while_it_exists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let switch = dir.path().join("full");
        let file = DataFile::open(&dir.path().join("data"), Some(&switch)).expect("open");
        file.write(0, b"ok").expect("no fault yet");
        std::fs::write(&switch, "").expect("switch on");
        let err = file.write(0, b"no").expect_err("faulted");
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert!(file.sync_data().is_err());
        let mut out = [0u8; 2];
        file.read(0, &mut out).expect("reads still work");
        assert_eq!(&out, b"ok");
        std::fs::remove_file(&switch).expect("switch off");
        file.write(0, b"go").expect("writes work again");
    }
}
