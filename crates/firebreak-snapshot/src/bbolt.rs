//! bbolt's file format: a whole database read from bytes or written to
//! them, as etcd's backend (`go.etcd.io/bbolt`) lays it out on disk.
//!
//! The file is an array of pages (4096 bytes here; a file read may use
//! another power of two). Every page starts with a 16-byte header: its id
//! (u64), flags (u16: branch 0x01, leaf 0x02, meta 0x04, freelist 0x10), an
//! element count (u16) and the number of further pages it spans (u32).
//! Numbers are little-endian, as bbolt writes them on the machines etcd
//! runs on.
//! - Pages 0 and 1 are meta pages: magic `0xED0CDAED`, version 2, page size,
//!   flags, the root bucket (its root page and sequence), the freelist page,
//!   the high-water page id, the transaction id, and an FNV-1a 64 checksum
//!   of the fields before it. The valid one with the higher transaction id
//!   is current.
//! - A bucket is a B+tree: branch pages hold 16-byte elements (position of
//!   the key from the element, key size, child page), leaf pages 16-byte
//!   elements (flags, position, key size, value size); keys and values
//!   follow the elements. A leaf element with flag 0x01 is a nested bucket:
//!   its value is the bucket's root page and sequence, and if the root page
//!   is 0 an inline leaf page follows in the value itself.
//! - The root bucket's keys are the top-level buckets (etcd's `key`,
//!   `meta`, `lease`, ...).
//!
//! # Correctness
//! - [`write`] lays out a file that bbolt opens and `tx.Check()` accepts:
//!   every page below the high-water mark is a meta page, the freelist page
//!   (empty) or reachable exactly once from the root bucket; branch keys are
//!   the first keys of their children; a bucket is inline exactly when bbolt
//!   would make it so (a leaf of no buckets, at most a quarter page).
//! - [`read`] never panics and never allocates what a field claims: every
//!   offset is checked against the bytes it points into, each page may be
//!   reached once, the tree and bucket depths are bounded, and the bytes it
//!   copies out are bounded by a budget proportional to the file's size
//!   (elements that overlap cannot make it copy the file many times over).

use std::collections::{BTreeMap, HashSet};

/// The page size of the files [`write`] lays out (bbolt's default on
/// x86-64 and most of arm64).
pub const PAGE_SIZE: usize = 4096;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
/// Branch and leaf elements are both 16 bytes.
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
/// The meta fields the checksum covers: magic .. txid.
const META_SUMMED: usize = 56;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// A leaf element that is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;

/// How deep a B+tree may be before the file is taken for a loop.
const MAX_TREE_DEPTH: usize = 64;
/// How deeply buckets may nest.
const MAX_BUCKET_DEPTH: usize = 16;

/// A bucket: its key-value pairs and its nested buckets (bbolt keeps both
/// in one key space).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Key-value pairs, in ascending key order with no key twice (for
    /// [`write`]; [`read`] gives them in the file's order).
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    pub buckets: BTreeMap<Vec<u8>, Bucket>,
    /// bbolt's per-bucket sequence counter (`NextSequence`).
    pub sequence: u64,
}

/// Why bytes are not a bbolt database that can be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a bbolt database: no valid meta page (bad magic, version or checksum)")]
    NoMeta,
    #[error("damaged bbolt database: {0}")]
    Corrupt(String),
}

fn corrupt(msg: impl Into<String>) -> FormatError {
    FormatError::Corrupt(msg.into())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// FNV-1a, 64 bits (Go's `hash/fnv` New64a), the meta page's checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The fields of a meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    page_size: u32,
    flags: u32,
    root: u64,
    sequence: u64,
    freelist: u64,
    /// The high-water mark: pages at or above it are not in use.
    pgid: u64,
    txid: u64,
}

impl Meta {
    fn encode(&self) -> [u8; META_SUMMED + 8] {
        let mut m = [0u8; META_SUMMED + 8];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        m[12..16].copy_from_slice(&self.flags.to_le_bytes());
        m[16..24].copy_from_slice(&self.root.to_le_bytes());
        m[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        m[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        m[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        m[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv1a64(&m[..META_SUMMED]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        m
    }

    /// The meta of the page at `at`, if it is a valid one.
    fn decode(db: &[u8], at: usize) -> Option<Meta> {
        let m = db.get(at.checked_add(PAGE_HEADER)?..)?.get(..META_SUMMED + 8)?;
        if u16_at(db, at + 8)? & META_PAGE == 0 || u32_at(m, 0)? != MAGIC || u32_at(m, 4)? != VERSION {
            return None;
        }
        if u64_at(m, 56)? != fnv1a64(&m[..META_SUMMED]) {
            return None;
        }
        Some(Meta {
            page_size: u32_at(m, 8)?,
            flags: u32_at(m, 12)?,
            root: u64_at(m, 16)?,
            sequence: u64_at(m, 24)?,
            freelist: u64_at(m, 32)?,
            pgid: u64_at(m, 40)?,
            txid: u64_at(m, 48)?,
        })
    }
}

/// Whether `bytes` start like a bbolt file (a meta page's magic).
pub fn looks_like_bbolt(bytes: &[u8]) -> bool {
    u32_at(bytes, PAGE_HEADER) == Some(MAGIC)
}

// ---------------------------------------------------------------- writing

/// One element of a leaf node being written.
struct LeafItem<'a> {
    flags: u32,
    key: &'a [u8],
    value: std::borrow::Cow<'a, [u8]>,
}

impl LeafItem<'_> {
    fn size(&self) -> usize {
        ELEMENT + self.key.len() + self.value.len()
    }
}

/// Serializes a leaf node as a page with id `id`, padded to `pad_to`
/// bytes (0 for an inline page, which is not padded).
fn leaf_bytes(id: u64, items: &[LeafItem<'_>], pad_to: usize) -> Vec<u8> {
    let size = PAGE_HEADER + items.iter().map(LeafItem::size).sum::<usize>();
    let mut p = vec![0u8; size.max(pad_to)];
    header(&mut p, id, LEAF_PAGE, items.len(), pad_to);
    let mut data = PAGE_HEADER + items.len() * ELEMENT;
    for (i, item) in items.iter().enumerate() {
        let elem = PAGE_HEADER + i * ELEMENT;
        p[elem..elem + 4].copy_from_slice(&item.flags.to_le_bytes());
        p[elem + 4..elem + 8].copy_from_slice(&((data - elem) as u32).to_le_bytes());
        p[elem + 8..elem + 12].copy_from_slice(&(item.key.len() as u32).to_le_bytes());
        p[elem + 12..elem + 16].copy_from_slice(&(item.value.len() as u32).to_le_bytes());
        p[data..data + item.key.len()].copy_from_slice(item.key);
        data += item.key.len();
        p[data..data + item.value.len()].copy_from_slice(&item.value);
        data += item.value.len();
    }
    p
}

/// Serializes a branch node: each child's first key and page.
fn branch_bytes(id: u64, children: &[(Vec<u8>, u64)], pad_to: usize) -> Vec<u8> {
    let size = PAGE_HEADER + children.iter().map(|(k, _)| ELEMENT + k.len()).sum::<usize>();
    let mut p = vec![0u8; size.max(pad_to)];
    header(&mut p, id, BRANCH_PAGE, children.len(), pad_to);
    let mut data = PAGE_HEADER + children.len() * ELEMENT;
    for (i, (key, child)) in children.iter().enumerate() {
        let elem = PAGE_HEADER + i * ELEMENT;
        p[elem..elem + 4].copy_from_slice(&((data - elem) as u32).to_le_bytes());
        p[elem + 4..elem + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
        p[elem + 8..elem + 16].copy_from_slice(&child.to_le_bytes());
        p[data..data + key.len()].copy_from_slice(key);
        data += key.len();
    }
    p
}

/// Writes a page header; `span` is the bytes the page occupies (0 for an
/// inline page: no overflow).
fn header(p: &mut [u8], id: u64, flags: u16, count: usize, span: usize) {
    let count = u16::try_from(count).expect("a node of at most one page's elements");
    let overflow = (span / PAGE_SIZE).saturating_sub(1) as u32;
    p[0..8].copy_from_slice(&id.to_le_bytes());
    p[8..10].copy_from_slice(&flags.to_le_bytes());
    p[10..12].copy_from_slice(&count.to_le_bytes());
    p[12..16].copy_from_slice(&overflow.to_le_bytes());
}

/// Splits elements of the given sizes into nodes that each fit a page,
/// or hold no more than `min` elements (bbolt's `minKeysPerPage` is 2: a
/// branch level of two or more per node always shrinks, whatever the key
/// sizes); a node over a page overflows. No elements give one empty node.
fn pack(sizes: &[usize], min: usize) -> Vec<std::ops::Range<usize>> {
    let mut nodes = Vec::new();
    let (mut start, mut used) = (0, PAGE_HEADER);
    for (i, size) in sizes.iter().enumerate() {
        if i >= start + min && used + size > PAGE_SIZE {
            nodes.push(start..i);
            start = i;
            used = PAGE_HEADER;
        }
        used += size;
    }
    nodes.push(start..sizes.len());
    nodes
}

/// The file being written: pages appended in order.
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn next_pgid(&self) -> u64 {
        (self.out.len() / PAGE_SIZE) as u64
    }

    /// Appends a node of `size` bytes built by `build(id, padded size)`.
    fn append(&mut self, size: usize, build: impl FnOnce(u64, usize) -> Vec<u8>) -> u64 {
        let id = self.next_pgid();
        let span = size.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let page = build(id, span);
        debug_assert_eq!(page.len(), span);
        self.out.extend_from_slice(&page);
        id
    }

    /// Writes a bucket's tree; returns its root page.
    fn tree(&mut self, items: &[LeafItem<'_>]) -> u64 {
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        let sizes: Vec<usize> = items.iter().map(LeafItem::size).collect();
        for range in pack(&sizes, 1) {
            let node = &items[range];
            let size = PAGE_HEADER + node.iter().map(LeafItem::size).sum::<usize>();
            let id = self.append(size, |id, span| leaf_bytes(id, node, span));
            level.push((node.first().map_or_else(Vec::new, |i| i.key.to_vec()), id));
        }
        while level.len() > 1 {
            let mut up = Vec::new();
            let sizes: Vec<usize> = level.iter().map(|(k, _)| ELEMENT + k.len()).collect();
            for range in pack(&sizes, 2) {
                let node = &level[range];
                let size = PAGE_HEADER + node.iter().map(|(k, _)| ELEMENT + k.len()).sum::<usize>();
                let id = self.append(size, |id, span| branch_bytes(id, node, span));
                up.push((node[0].0.clone(), id));
            }
            level = up;
        }
        level[0].1
    }

    /// The leaf elements of a bucket: its entries and its nested buckets
    /// (written first, so that their values are known), in key order.
    fn items<'a>(&mut self, bucket: &'a Bucket) -> Vec<LeafItem<'a>> {
        debug_assert!(
            bucket.entries.windows(2).all(|w| w[0].0 < w[1].0),
            "bucket entries must be sorted and unique"
        );
        let mut nested: Vec<LeafItem<'a>> = bucket
            .buckets
            .iter()
            .map(|(name, b)| LeafItem {
                flags: BUCKET_LEAF,
                key: name,
                value: self.bucket_value(b).into(),
            })
            .collect();
        let mut items: Vec<LeafItem<'a>> = bucket
            .entries
            .iter()
            .map(|(k, v)| LeafItem {
                flags: 0,
                key: k,
                value: std::borrow::Cow::Borrowed(&v[..]),
            })
            .collect();
        if !nested.is_empty() {
            items.append(&mut nested);
            items.sort_by(|a, b| a.key.cmp(b.key));
        }
        items
    }

    /// A nested bucket's value in its parent: its header, and the inline
    /// page if bbolt would inline it.
    fn bucket_value(&mut self, bucket: &Bucket) -> Vec<u8> {
        let items = self.items(bucket);
        let size = PAGE_HEADER + items.iter().map(LeafItem::size).sum::<usize>();
        let mut value = Vec::with_capacity(BUCKET_HEADER + size);
        if bucket.buckets.is_empty() && size <= PAGE_SIZE / 4 {
            value.extend_from_slice(&0u64.to_le_bytes());
            value.extend_from_slice(&bucket.sequence.to_le_bytes());
            value.extend_from_slice(&leaf_bytes(0, &items, 0));
        } else {
            let root = self.tree(&items);
            value.extend_from_slice(&root.to_le_bytes());
            value.extend_from_slice(&bucket.sequence.to_le_bytes());
        }
        value
    }
}

/// The bbolt file that holds `root`'s buckets (and entries), with `txid`
/// as its transaction id.
pub fn write(root: &Bucket, txid: u64) -> Vec<u8> {
    // Pages 0 and 1: meta; 2: the (empty) freelist; the trees after.
    let mut w = Writer {
        out: vec![0u8; 3 * PAGE_SIZE],
    };
    header(&mut w.out[2 * PAGE_SIZE..], 2, FREELIST_PAGE, 0, PAGE_SIZE);
    let items = w.items(root);
    let root_page = w.tree(&items);
    let meta = Meta {
        page_size: PAGE_SIZE as u32,
        flags: 0,
        root: root_page,
        sequence: root.sequence,
        freelist: 2,
        pgid: w.next_pgid(),
        txid,
    };
    for id in 0..2u64 {
        let at = id as usize * PAGE_SIZE;
        header(&mut w.out[at..], id, META_PAGE, 0, PAGE_SIZE);
        w.out[at + PAGE_HEADER..at + PAGE_HEADER + META_SUMMED + 8].copy_from_slice(&meta.encode());
    }
    w.out
}

// ---------------------------------------------------------------- reading

struct Reader<'a> {
    db: &'a [u8],
    page_size: usize,
    high_water: u64,
    /// Pages already reached (each may be reached once).
    seen: HashSet<u64>,
    /// Bytes still allowed to be copied out (and elements to be read).
    budget: usize,
}

/// A page header as read.
struct PageHeader {
    flags: u16,
    count: usize,
}

fn page_header(p: &[u8]) -> Option<PageHeader> {
    Some(PageHeader {
        flags: u16_at(p, 8)?,
        count: usize::from(u16_at(p, 10)?),
    })
}

impl<'a> Reader<'a> {
    fn charge(&mut self, bytes: usize) -> Result<(), FormatError> {
        self.budget = self
            .budget
            .checked_sub(bytes)
            .ok_or_else(|| corrupt("elements overlap: more bytes referenced than the file holds"))?;
        Ok(())
    }

    /// The bytes of page `id` and the pages it overflows into, marking
    /// them reached.
    fn page(&mut self, id: u64) -> Result<&'a [u8], FormatError> {
        if id < 2 || id >= self.high_water {
            return Err(corrupt(format!(
                "page {id} is referenced but is not a data page below the high-water mark {}",
                self.high_water
            )));
        }
        let db = self.db;
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .filter(|s| s.saturating_add(PAGE_HEADER) <= db.len())
            .ok_or_else(|| corrupt(format!("page {id} lies past the end of the file")))?;
        if u64_at(db, start) != Some(id) {
            return Err(corrupt(format!("page {id} names itself {:?}", u64_at(db, start))));
        }
        let overflow = u32_at(db, start + 12).unwrap_or(0) as usize;
        let end = overflow
            .checked_add(1)
            .and_then(|n| n.checked_mul(self.page_size))
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= db.len())
            .ok_or_else(|| corrupt(format!("page {id} overflows past the end of the file")))?;
        if id + overflow as u64 >= self.high_water {
            return Err(corrupt(format!("page {id} overflows past the high-water mark")));
        }
        for p in id..=id + overflow as u64 {
            if !self.seen.insert(p) {
                return Err(corrupt(format!("page {p} is referenced twice")));
            }
        }
        Ok(&db[start..end])
    }

    /// Reads the tree rooted at page `id` into `out`.
    fn tree(&mut self, id: u64, out: &mut Bucket, depth: usize, nesting: usize) -> Result<(), FormatError> {
        if depth > MAX_TREE_DEPTH {
            return Err(corrupt("a bucket's tree is too deep"));
        }
        let page = self.page(id)?;
        let h = page_header(page).ok_or_else(|| corrupt(format!("page {id} is truncated")))?;
        match h.flags {
            LEAF_PAGE => self.leaf(page, h.count, out, nesting).map_err(|e| match e {
                FormatError::Corrupt(m) => corrupt(format!("leaf page {id}: {m}")),
                other => other,
            }),
            BRANCH_PAGE => {
                self.elements(page, h.count)?;
                for i in 0..h.count {
                    let elem = PAGE_HEADER + i * ELEMENT;
                    let child = u64_at(page, elem + 8).ok_or_else(|| corrupt("truncated branch element"))?;
                    self.tree(child, out, depth + 1, nesting)?;
                }
                Ok(())
            }
            other => Err(corrupt(format!(
                "page {id} is in a bucket's tree but has flags {other:#x}, not a branch or leaf"
            ))),
        }
    }

    /// Checks that `count` elements fit in `page`, charging them.
    fn elements(&mut self, page: &[u8], count: usize) -> Result<(), FormatError> {
        let end = count
            .checked_mul(ELEMENT)
            .and_then(|n| n.checked_add(PAGE_HEADER))
            .ok_or_else(|| corrupt("element count overflows"))?;
        if end > page.len() {
            return Err(corrupt(format!("{count} elements do not fit in {} bytes", page.len())));
        }
        self.charge(count * ELEMENT)
    }

    /// Reads the elements of a leaf page (or an inline bucket's page).
    fn leaf(&mut self, page: &'a [u8], count: usize, out: &mut Bucket, nesting: usize) -> Result<(), FormatError> {
        self.elements(page, count)?;
        for i in 0..count {
            let elem = PAGE_HEADER + i * ELEMENT;
            let field = |at: usize| u32_at(page, elem + at).map(|v| v as usize);
            let (flags, pos, ksize, vsize) = match (field(0), field(4), field(8), field(12)) {
                (Some(f), Some(p), Some(k), Some(v)) => (f, p, k, v),
                _ => return Err(corrupt("truncated leaf element")),
            };
            let key_start = elem.checked_add(pos);
            let key_end = key_start.and_then(|s| s.checked_add(ksize));
            let value_end = key_end.and_then(|s| s.checked_add(vsize));
            let (Some(key_start), Some(key_end), Some(value_end)) = (key_start, key_end, value_end) else {
                return Err(corrupt("element offsets overflow"));
            };
            if value_end > page.len() {
                return Err(corrupt(format!(
                    "element {i} runs past its page ({value_end} > {} bytes)",
                    page.len()
                )));
            }
            let key = &page[key_start..key_end];
            let value = &page[key_end..value_end];
            if flags as u32 & BUCKET_LEAF != 0 {
                self.charge(key.len())?;
                let bucket = self.bucket(value, nesting + 1)?;
                if out.buckets.insert(key.to_vec(), bucket).is_some() {
                    return Err(corrupt(format!(
                        "bucket {:?} appears twice",
                        String::from_utf8_lossy(key)
                    )));
                }
            } else {
                self.charge(key.len() + value.len())?;
                out.entries.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(())
    }

    /// Reads a nested bucket from its value in the parent.
    fn bucket(&mut self, value: &'a [u8], nesting: usize) -> Result<Bucket, FormatError> {
        if nesting > MAX_BUCKET_DEPTH {
            return Err(corrupt("buckets nest too deeply"));
        }
        let (Some(root), Some(sequence)) = (u64_at(value, 0), u64_at(value, 8)) else {
            return Err(corrupt("a bucket's value is shorter than its header"));
        };
        let mut bucket = Bucket {
            sequence,
            ..Bucket::default()
        };
        if root == 0 {
            let page = &value[BUCKET_HEADER..];
            let h = page_header(page).ok_or_else(|| corrupt("an inline bucket's page is truncated"))?;
            if h.flags != LEAF_PAGE {
                return Err(corrupt(format!("an inline bucket's page has flags {:#x}", h.flags)));
            }
            self.leaf(page, h.count, &mut bucket, nesting)?;
        } else {
            self.tree(root, &mut bucket, 0, nesting)?;
        }
        Ok(bucket)
    }
}

/// The current meta page of a file: the valid one of pages 0 and 1 with
/// the higher transaction id.
fn current_meta(db: &[u8]) -> Result<Meta, FormatError> {
    let first = Meta::decode(db, 0);
    // Page 1 sits one page in; if page 0 is damaged, try the usual sizes.
    let sizes: Vec<usize> = match first {
        Some(m) => vec![m.page_size as usize],
        None => (9..=16).map(|s| 1usize << s).collect(),
    };
    let second = sizes
        .into_iter()
        .filter_map(|size| Meta::decode(db, size).filter(|m| m.page_size as usize == size))
        .next();
    let meta = match (first, second) {
        (Some(a), Some(b)) => {
            if b.txid > a.txid {
                b
            } else {
                a
            }
        }
        (Some(m), None) | (None, Some(m)) => m,
        (None, None) => return Err(FormatError::NoMeta),
    };
    let size = meta.page_size as usize;
    if !size.is_power_of_two() || !(512..=65536).contains(&size) {
        return Err(corrupt(format!(
            "page size {size} is not a power of two from 512 to 65536"
        )));
    }
    Ok(meta)
}

/// Reads every bucket of a bbolt file (the file alone: no trailer).
pub fn read(db: &[u8]) -> Result<Bucket, FormatError> {
    let meta = current_meta(db)?;
    let mut reader = Reader {
        db,
        page_size: meta.page_size as usize,
        high_water: meta.pgid,
        seen: HashSet::new(),
        budget: db.len().saturating_mul(2).saturating_add(1 << 16),
    };
    let mut root = Bucket {
        sequence: meta.sequence,
        ..Bucket::default()
    };
    if meta.root == 0 {
        return Err(corrupt("the root bucket has no root page"));
    }
    reader.tree(meta.root, &mut root, 0, 0)?;
    if !root.entries.is_empty() {
        return Err(corrupt(
            "the root bucket holds key-value pairs (only buckets belong there)",
        ));
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(entries: &[(&[u8], &[u8])]) -> Bucket {
        Bucket {
            entries: entries.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            ..Bucket::default()
        }
    }

    #[test]
    fn fnv_matches_go() {
        // Go: fnv.New64a() of "" and of "a".
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn small_buckets_round_trip_inline() {
        let mut root = Bucket::default();
        root.buckets
            .insert(b"meta".to_vec(), bucket(&[(b"a", b"1"), (b"b", b"2")]));
        root.buckets.insert(b"empty".to_vec(), Bucket::default());
        let file = write(&root, 1);
        // meta, meta, freelist, the root's leaf: everything else inline.
        assert_eq!(file.len(), 4 * PAGE_SIZE);
        assert!(looks_like_bbolt(&file));
        assert_eq!(read(&file).unwrap(), root);
    }

    #[test]
    fn large_buckets_round_trip_through_branches_and_overflow() {
        let mut big = Bucket::default();
        for i in 0..20_000u32 {
            big.entries
                .push((i.to_be_bytes().to_vec(), vec![(i % 251) as u8; (i % 97) as usize]));
        }
        // Values larger than a page overflow.
        big.entries
            .push((b"\xff\xff\xff\xff huge".to_vec(), vec![7u8; 3 * PAGE_SIZE + 5]));
        let mut root = Bucket::default();
        root.buckets.insert(b"key".to_vec(), big);
        root.buckets.insert(b"lease".to_vec(), bucket(&[(b"x", b"y")]));
        let mut nested = bucket(&[(b"n", b"v")]);
        nested.buckets.insert(b"inner".to_vec(), bucket(&[(b"i", b"j")]));
        root.buckets.insert(b"nested".to_vec(), nested);
        let file = write(&root, 7);
        assert_eq!(file.len() % PAGE_SIZE, 0);
        assert_eq!(read(&file).unwrap(), root);
    }

    #[test]
    fn keys_larger_than_a_page_still_build_a_tree() {
        let mut names = Bucket::default();
        for i in 0..40u8 {
            names.entries.push((vec![i; 5000], vec![i; 10]));
        }
        let mut root = Bucket::default();
        root.buckets.insert(b"authUsers".to_vec(), names);
        let file = write(&root, 1);
        assert_eq!(read(&file).unwrap(), root);
    }

    #[test]
    fn the_meta_with_the_higher_txid_wins_and_a_damaged_one_is_skipped() {
        let mut root = Bucket::default();
        root.buckets.insert(b"b".to_vec(), bucket(&[(b"k", b"v")]));
        let mut file = write(&root, 3);
        // Damage meta 0: meta 1 still serves.
        file[PAGE_HEADER + 20] ^= 0xff;
        assert_eq!(read(&file).unwrap(), root);
        // Damage both: no meta.
        file[PAGE_SIZE + PAGE_HEADER + 20] ^= 0xff;
        assert_eq!(read(&file), Err(FormatError::NoMeta));
    }
}
