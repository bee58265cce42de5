//! Fuzz-style: damaged, truncated and hostile snapshot files. Reading one
//! never panics and never allocates what a field inside claims: it is a
//! clear error, or (when the damage missed everything that is read) a
//! state. Fixed seeds; `FIREBREAK_FUZZ_ITERATIONS` runs longer by hand.
//!
//! One test in this binary, so that the counting allocator sees only it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use firebreak_auth::{AuthCommand, AuthState};
use firebreak_mvcc::*;
use firebreak_snapshot::{decode, encode, Contents, HashCheck, Position};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = IN_USE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn iterations(default: usize) -> usize {
    std::env::var("FIREBREAK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A snapshot with keys (one large enough for overflow pages, enough for
/// branch pages), history, a compaction, leases and auth.
fn pristine() -> Vec<u8> {
    let mut store = Store::new();
    let mut apply = |cmd: WriteCommand| {
        store.apply(&cmd).unwrap();
    };
    apply(WriteCommand::LeaseGrant(LeaseGrantRequest { id: 77, ttl: 60 }));
    for i in 0..400u32 {
        apply(WriteCommand::Put(PutRequest {
            key: Bytes::from(format!("key/{}", i % 150)),
            value: Bytes::from(vec![b'v'; (i % 50) as usize]),
            lease: if i % 9 == 0 { 77 } else { 0 },
            ..Default::default()
        }));
    }
    apply(WriteCommand::Put(PutRequest {
        key: Bytes::from_static(b"big"),
        value: Bytes::from(vec![7u8; 10_000]),
        ..Default::default()
    }));
    apply(WriteCommand::DeleteRange(DeleteRangeRequest {
        key: Bytes::from_static(b"key/1"),
        range_end: Bytes::from_static(b"key/2"),
        prev_kv: false,
    }));
    apply(WriteCommand::Compact(CompactRequest {
        revision: 200,
        physical: false,
    }));
    let mut auth = AuthState::default();
    auth.apply(
        &AuthCommand::UserAdd {
            name: "root".into(),
            password_hash: b"$2a$04$hash".to_vec(),
            no_password: false,
        },
        1,
    )
    .unwrap();
    encode(&Contents::capture(&store, &auth, Position::default(), "3.5.0"))
}

/// Damages `bytes` the ways a disk or an attacker might.
fn damage(rng: &mut StdRng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let pages = bytes.len() / 4096;
    match rng.gen_range(0..10) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
        }
        // A length, offset, count or page id claims something huge.
        1 => {
            let at = rng.gen_range(0..bytes.len() - 8);
            let width = [2usize, 4, 8][rng.gen_range(0..3)];
            let big = (u64::MAX >> rng.gen_range(0..60)).to_le_bytes();
            bytes[at..at + width].copy_from_slice(&big[..width]);
        }
        // A field of a page header or an element, precisely.
        2 => {
            let page = rng.gen_range(0..pages);
            let at = page * 4096 + [0usize, 8, 10, 12, 16, 20, 24, 28, 32][rng.gen_range(0..9)];
            let v: u32 = match rng.gen_range(0..3) {
                0 => rng.gen(),
                1 => rng.gen_range(0..pages as u32 + 2),
                _ => u32::MAX,
            };
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        3 => bytes.truncate(rng.gen_range(0..bytes.len())),
        4 => bytes.extend((0..rng.gen_range(1..5000)).map(|_| rng.gen::<u8>())),
        // One page copied over another: loops and double references.
        5 => {
            let (from, to) = (rng.gen_range(2..pages), rng.gen_range(2..pages));
            let page = bytes[from * 4096..(from + 1) * 4096].to_vec();
            bytes[to * 4096..(to + 1) * 4096].copy_from_slice(&page);
        }
        6 => {
            let page = rng.gen_range(0..pages);
            bytes[page * 4096..(page + 1) * 4096].fill(0);
        }
        // The structure itself: a branch whose child is another page (a
        // loop, an ancestor, a meta page), a leaf element whose key or
        // value overlaps others or runs off the page.
        7 | 8 => {
            let page = rng.gen_range(2..pages);
            let at = page * 4096;
            let flags = u16::from_le_bytes([bytes[at + 8], bytes[at + 9]]);
            let count = u16::from_le_bytes([bytes[at + 10], bytes[at + 11]]).max(1) as usize;
            let elem = at + 16 + 16 * rng.gen_range(0..count);
            match flags {
                0x01 => {
                    let child = rng.gen_range(0..pages as u64 + 1);
                    bytes[elem + 8..elem + 16].copy_from_slice(&child.to_le_bytes());
                }
                0x02 => {
                    let field = elem + [4usize, 8, 12][rng.gen_range(0..3)];
                    let v: u32 = rng.gen_range(0..9000);
                    bytes[field..field + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {
                    let f = [0x01u16, 0x02, 0x04, 0x10][rng.gen_range(0..4)];
                    bytes[at + 8..at + 10].copy_from_slice(&f.to_le_bytes());
                }
            }
        }
        _ => bytes = (0..rng.gen_range(0..20_000)).map(|_| rng.gen()).collect(),
    }
    bytes
}

#[test]
fn damaged_and_hostile_snapshots_are_refused_cleanly() {
    let pristine = pristine();
    assert!(decode(&pristine, HashCheck::Verify).is_ok());
    let mut rng = StdRng::seed_from_u64(0x0e7c_d5a9);
    let n = iterations(3_000);
    let (mut read, mut refused, mut worst) = (0, 0, 0f64);
    for _ in 0..n {
        let bytes = damage(&mut rng, &pristine);
        // The trailer would catch nearly everything: skip it, so that the
        // damage reaches the page reader.
        let before = IN_USE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let result = decode(&bytes, HashCheck::Skip);
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        // Allocation is bounded by the input, whatever a field claims.
        let limit = 16 * bytes.len() + (256 << 10);
        assert!(
            used <= limit,
            "{used} bytes allocated for {} bytes of input",
            bytes.len()
        );
        worst = worst.max(used as f64 / (bytes.len() + 1) as f64);
        match result {
            Ok(_) => read += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
        // With the trailer checked, damage is always refused.
        if bytes != pristine {
            assert!(decode(&bytes, HashCheck::Verify).is_err());
        }
    }
    eprintln!(
        "{n} damaged snapshots: {read} read, {refused} refused; at most {worst:.1} bytes allocated per input byte"
    );
    assert!(
        refused > n / 3,
        "the damage was too gentle to test anything ({refused} of {n} refused)"
    );
}
