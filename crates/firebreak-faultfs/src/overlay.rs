//! A file's volatile contents: the bytes written since its last fsync, kept
//! in memory over its durable contents, which stay in the backing file.
//!
//! [`Overlay`] holds the file's volatile size, the written extents (sorted,
//! never overlapping) and a *floor*: the smallest size the file had since
//! its last fsync. Reading a byte of the volatile file gives, in order: the
//! extent holding it; else the durable byte if it lies below the floor;
//! else zero (a truncate cut the durable byte off, and an extension or a
//! write past the end brought the offset back as a hole).
//!
//! [`Overlay::flush`] writes all that to the backing file (cut to the
//! floor, the extents written in place, then cut or extended to the size),
//! so a flush costs the dirty bytes, never a copy of the whole file.
//!
//! # Correctness
//! - Extents never overlap and lie below `size`: a write replaces what it
//!   covers, a truncate drops or trims what lies past the new size.
//! - `floor <= size` and `floor <= durable_size`: the floor starts at the
//!   durable size and only a truncate lowers it (to the new size).
//! - After `flush` the backing file holds exactly what a read of the
//!   volatile file gives, and the overlay is clean (`floor == size`, no
//!   extents), so memory holds only what was written since the last fsync.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The volatile contents of one file, over its durable contents.
#[derive(Debug, Clone)]
pub(crate) struct Overlay {
    /// The volatile size.
    size: u64,
    /// Durable bytes below this offset are still visible (unless an extent
    /// covers them); from here to `size`, what no extent covers reads as zeros.
    floor: u64,
    /// Bytes written since the last flush, by start offset.
    extents: BTreeMap<u64, Vec<u8>>,
}

impl Overlay {
    /// A clean overlay over durable contents of `durable_size` bytes.
    pub(crate) fn clean(durable_size: u64) -> Overlay {
        Overlay {
            size: durable_size,
            floor: durable_size,
            extents: BTreeMap::new(),
        }
    }

    /// The volatile size.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// True if the volatile contents differ from durable contents of
    /// `durable_size` bytes (or may: a rewrite of the same bytes counts).
    pub(crate) fn is_dirty(&self, durable_size: u64) -> bool {
        !self.extents.is_empty() || self.size != durable_size || self.floor != durable_size
    }

    /// The bytes held in memory.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.extents.values().map(|v| v.len() as u64).sum()
    }

    /// Writes `data` at `offset`, extending the file if it ends past it.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // The extents overlapping [offset, end): those starting before `end`
        // whose end lies past `offset`. Extents are disjoint, so their ends
        // grow with their starts: walk back from `end` until one ends before.
        let overlapping: Vec<u64> = self
            .extents
            .range(..end)
            .rev()
            .take_while(|(&at, v)| at + v.len() as u64 > offset)
            .map(|(&at, _)| at)
            .collect();
        for at in overlapping {
            let mut bytes = self.extents.remove(&at).expect("listed above");
            let ext_end = at + bytes.len() as u64;
            if ext_end > end {
                self.extents.insert(end, bytes[(end - at) as usize..].to_vec());
            }
            if at < offset {
                bytes.truncate((offset - at) as usize);
                self.extents.insert(at, bytes);
            }
        }
        // Appending to the extent that ends where this write starts keeps
        // sequential writes (a log) in one extent.
        match self.extents.range_mut(..offset).next_back() {
            Some((&at, bytes)) if at + bytes.len() as u64 == offset => bytes.extend_from_slice(data),
            _ => {
                self.extents.insert(offset, data.to_vec());
            }
        }
        self.size = self.size.max(end);
    }

    /// Sets the volatile size: a cut drops what lies past it, an extension
    /// reads as zeros.
    pub(crate) fn truncate(&mut self, size: u64) {
        if size < self.size {
            let past: Vec<u64> = self.extents.range(size..).map(|(&at, _)| at).collect();
            for at in past {
                self.extents.remove(&at);
            }
            if let Some((&at, bytes)) = self.extents.range_mut(..size).next_back() {
                if at + bytes.len() as u64 > size {
                    bytes.truncate((size - at) as usize);
                }
            }
            self.floor = self.floor.min(size);
        }
        self.size = size;
    }

    /// Reads up to `len` bytes at `offset` of the volatile file; `durable`
    /// reads the durable contents (it is called only below the floor).
    pub(crate) fn read(
        &self,
        offset: u64,
        len: usize,
        durable: impl FnOnce(u64, &mut [u8]) -> io::Result<()>,
    ) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let end = self.size.min(offset + len as u64);
        let mut out = vec![0u8; (end - offset) as usize];
        if offset < self.floor {
            let below = self.floor.min(end);
            durable(offset, &mut out[..(below - offset) as usize])?;
        }
        // The first extent that may overlap starts at or before `offset`.
        let first = self.extents.range(..=offset).next_back().map_or(offset, |(&at, _)| at);
        for (&at, bytes) in self.extents.range(first..end) {
            let ext_end = at + bytes.len() as u64;
            if ext_end <= offset {
                continue;
            }
            let from = at.max(offset);
            let to = ext_end.min(end);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
        }
        Ok(out)
    }

    /// Makes the backing `file`, which holds `durable_size` bytes of durable
    /// contents, hold the volatile contents, and leaves the overlay clean.
    /// On an error the overlay keeps everything, so a retry rewrites it all.
    pub(crate) fn flush(&mut self, file: &File, durable_size: u64) -> io::Result<()> {
        let mut len = durable_size;
        if self.floor < len {
            file.set_len(self.floor)?;
            len = self.floor;
        }
        for (&at, bytes) in &self.extents {
            file.write_all_at(bytes, at)?;
            len = len.max(at + bytes.len() as u64);
        }
        if len != self.size {
            file.set_len(self.size)?;
        }
        self.extents.clear();
        self.floor = self.size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcg::Lcg;

    /// A reference file: the volatile contents as a plain vector, and the
    /// durable contents as another.
    struct Reference {
        volatile: Vec<u8>,
        durable: Vec<u8>,
    }

    fn read_all(overlay: &Overlay, file: &File) -> Vec<u8> {
        overlay
            .read(0, overlay.size() as usize + 10, |at, buf| file.read_exact_at(buf, at))
            .unwrap()
    }

    #[test]
    fn random_writes_truncates_and_flushes_match_a_plain_vector() {
        for seed in 1..=40 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let mut rng = Lcg(seed);
            let initial: Vec<u8> = (0..rng.next(300)).map(|i| i as u8 | 1).collect();
            file.write_all_at(&initial, 0).unwrap();
            let mut overlay = Overlay::clean(initial.len() as u64);
            let mut reference = Reference {
                volatile: initial.clone(),
                durable: initial,
            };
            for step in 0..300 {
                match rng.next(10) {
                    0..=5 => {
                        let at = rng.next(400);
                        let len = rng.next(60) as usize;
                        let data: Vec<u8> = (0..len).map(|_| rng.next(255) as u8 + 1).collect();
                        overlay.write(at, &data);
                        if len > 0 {
                            let end = at as usize + len;
                            if reference.volatile.len() < end {
                                reference.volatile.resize(end, 0);
                            }
                            reference.volatile[at as usize..end].copy_from_slice(&data);
                        }
                    }
                    6 | 7 => {
                        let size = rng.next(400);
                        overlay.truncate(size);
                        reference.volatile.resize(size as usize, 0);
                    }
                    8 => {
                        overlay.flush(&file, reference.durable.len() as u64).unwrap();
                        reference.durable = reference.volatile.clone();
                        assert!(!overlay.is_dirty(reference.durable.len() as u64));
                        assert_eq!(overlay.dirty_bytes(), 0);
                        let on_disk = std::fs::read(&path).unwrap();
                        assert_eq!(
                            on_disk, reference.durable,
                            "seed {seed} step {step}: backing after flush"
                        );
                    }
                    _ => {
                        // A power cut: back to the durable contents.
                        overlay = Overlay::clean(reference.durable.len() as u64);
                        reference.volatile = reference.durable.clone();
                    }
                }
                assert_eq!(
                    read_all(&overlay, &file),
                    reference.volatile,
                    "seed {seed} step {step}: volatile view"
                );
                let at = rng.next(450);
                let len = rng.next(100) as usize;
                let got = overlay.read(at, len, |o, buf| file.read_exact_at(buf, o)).unwrap();
                let from = (at as usize).min(reference.volatile.len());
                let to = (at as usize + len).min(reference.volatile.len());
                assert_eq!(
                    got,
                    reference.volatile[from..to],
                    "seed {seed} step {step}: partial read"
                );
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    reference.durable,
                    "backing holds only durable bytes"
                );
            }
        }
    }

    #[test]
    fn sequential_appends_stay_in_one_extent() {
        let mut overlay = Overlay::clean(0);
        for i in 0..100u64 {
            overlay.write(i * 10, &[7; 10]);
        }
        assert_eq!(overlay.extents.len(), 1);
        assert_eq!(overlay.dirty_bytes(), 1000);
    }

    #[test]
    fn a_cut_then_an_extension_reads_zeros_not_the_old_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [9u8; 100]).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut overlay = Overlay::clean(100);
        overlay.truncate(10);
        overlay.truncate(50);
        let mut expected = vec![9u8; 10];
        expected.resize(50, 0);
        assert_eq!(read_all(&overlay, &file), expected);
        overlay.flush(&file, 100).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
