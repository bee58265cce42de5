//! Fuzz-style: damaged or hostile snapshot files and backups. Loading one
//! never panics and never allocates what a length field inside claims: it
//! is a clear error, or (when the damage missed everything that matters) a
//! state that decodes. A fixed seed in CI; `FIREBREAK_FUZZ_ITERATIONS`
//! runs longer by hand.

use firebreak_mvcc::{PutRequest, WriteCommand};
use firebreak_raft::maintenance::decode_backup;
use firebreak_raft::state_machine::{write_initial_snapshot, Replica, StateMachine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn iterations(default: usize) -> usize {
    std::env::var("FIREBREAK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A snapshot file of a replica with a few keys.
fn pristine_snapshot() -> Vec<u8> {
    let mut replica = Replica::default();
    for i in 0..20 {
        replica
            .store
            .apply(&WriteCommand::Put(PutRequest {
                key: format!("key/{i}").into(),
                value: vec![b'v'; 40 + i].into(),
                ..Default::default()
            }))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    write_initial_snapshot(dir.path(), &replica).unwrap();
    std::fs::read(dir.path().join("snapshot.bin")).unwrap()
}

/// Damages `bytes` the ways a disk or an attacker might.
fn damage(rng: &mut StdRng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.gen_range(0..5) {
        0 => {
            for _ in 0..rng.gen_range(1..5) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
        }
        // A length field somewhere claims a huge size.
        1 if bytes.len() > 8 => {
            let at = rng.gen_range(0..bytes.len() - 8);
            bytes[at..at + 8].copy_from_slice(&(u64::MAX >> rng.gen_range(0..40)).to_le_bytes());
        }
        2 => bytes.truncate(rng.gen_range(0..bytes.len())),
        3 => bytes.extend((0..rng.gen_range(1..64)).map(|_| rng.gen::<u8>())),
        _ => bytes = (0..rng.gen_range(0..400)).map(|_| rng.gen()).collect(),
    }
    bytes
}

#[test]
fn damaged_snapshot_files_are_refused_cleanly() {
    let pristine = pristine_snapshot();
    let mut rng = StdRng::seed_from_u64(0x5aab_5107);
    let n = iterations(1_500);
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot.bin"), damage(&mut rng, &pristine)).unwrap();
        match StateMachine::open(dir.path()) {
            Ok(_) => opened += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    eprintln!("{n} damaged snapshots: {opened} opened, {refused} refused");
    assert!(refused > n / 2, "the damage was too gentle to test anything");
    // The pristine one still opens: the refusals come from the damage.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snapshot.bin"), &pristine).unwrap();
    StateMachine::open(dir.path()).expect("an undamaged snapshot opens");
}

#[test]
fn hostile_backups_are_refused_cleanly() {
    let mut rng = StdRng::seed_from_u64(0xbac_c0ff);
    let n = iterations(3_000);
    let mut refused = 0;
    for _ in 0..n {
        let len = rng.gen_range(0..2_000);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) && bytes.len() > 16 {
            // Something that starts like a backup.
            bytes[..8].copy_from_slice(firebreak_raft::maintenance::SNAPSHOT_MAGIC);
        }
        if decode_backup(&bytes).is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, n, "random bytes were taken for a backup");
}
