//! A store and auth state written in etcd's snapshot format read back the
//! same: every record (with its sub-revision order), the revision, the
//! compaction, leases with their keys, alarms, users, roles, the auth flag
//! and revision. Random workloads on fixed seeds.

use bytes::Bytes;
use firebreak_auth::{AuthCommand, AuthState, KeyPermission, PermissionType};
use firebreak_mvcc::*;
use firebreak_snapshot::{decode, encode, Contents, HashCheck, Position, SnapshotError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn key(rng: &mut StdRng) -> Bytes {
    // A few hot keys, and sometimes a long one or a binary one.
    match rng.gen_range(0..20) {
        0 => Bytes::from(vec![0xffu8, 0, 1, rng.gen()]),
        1 => Bytes::from(format!("long/{}", "k".repeat(rng.gen_range(100..3000)))),
        _ => Bytes::from(format!("k/{}", rng.gen_range(0..40))),
    }
}

fn value(rng: &mut StdRng) -> Bytes {
    let len = match rng.gen_range(0..30) {
        0 => rng.gen_range(4000..20_000),
        _ => rng.gen_range(0..64),
    };
    Bytes::from((0..len).map(|_| rng.gen::<u8>()).collect::<Vec<u8>>())
}

fn put(key: Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp::Put(PutRequest {
        key,
        value,
        lease,
        ..Default::default()
    })
}

/// A store after a random workload of `ops` writes.
fn workload(seed: u64, ops: usize) -> Store {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = Store::new();
    let mut leases: Vec<i64> = Vec::new();
    for _ in 0..ops {
        let cmd = match rng.gen_range(0..100) {
            0..=44 => {
                let lease = if rng.gen_bool(0.2) && !leases.is_empty() {
                    leases[rng.gen_range(0..leases.len())]
                } else {
                    0
                };
                WriteCommand::Put(PutRequest {
                    key: key(&mut rng),
                    value: value(&mut rng),
                    lease,
                    ..Default::default()
                })
            }
            45..=59 => WriteCommand::DeleteRange(DeleteRangeRequest {
                key: key(&mut rng),
                range_end: if rng.gen_bool(0.2) {
                    Bytes::from_static(b"k/3")
                } else {
                    Bytes::new()
                },
                prev_kv: false,
            }),
            // Several writes at one revision: sub-revisions 0, 1, ...
            60..=74 => {
                let mut success: Vec<RequestOp> = (0..rng.gen_range(2..6))
                    .map(|i| {
                        put(
                            Bytes::from(format!("txn/{i}/{}", rng.gen_range(0..5))),
                            value(&mut rng),
                            0,
                        )
                    })
                    .collect();
                success.dedup_by(|a, b| matches!((a, b), (RequestOp::Put(x), RequestOp::Put(y)) if x.key == y.key));
                if rng.gen_bool(0.3) {
                    // The same key twice in one revision, through a nested
                    // txn (the store allows it; etcd's sub-revisions keep
                    // both).
                    success.push(RequestOp::Txn(TxnRequest {
                        compare: Vec::new(),
                        success: vec![put(Bytes::from_static(b"txn/0/0"), value(&mut rng), 0)],
                        failure: Vec::new(),
                    }));
                }
                WriteCommand::Txn(TxnRequest {
                    compare: Vec::new(),
                    success,
                    failure: Vec::new(),
                })
            }
            75..=82 => {
                let id = rng.gen_range(1..i64::MAX);
                leases.push(id);
                WriteCommand::LeaseGrant(LeaseGrantRequest {
                    id,
                    ttl: rng.gen_range(5..10_000),
                })
            }
            83..=87 if !leases.is_empty() => {
                let id = leases.swap_remove(rng.gen_range(0..leases.len()));
                WriteCommand::LeaseRevoke(LeaseRevokeRequest { id })
            }
            88..=90 => {
                let now = store.current_revision();
                let from = store.compact_revision().max(1);
                WriteCommand::Compact(CompactRequest {
                    revision: rng.gen_range(from..=now),
                    physical: false,
                })
            }
            91 => WriteCommand::Alarm(AlarmRequest {
                action: AlarmAction::Activate,
                member_id: rng.gen_range(1..4),
                alarm: AlarmType::Corrupt,
            }),
            _ => WriteCommand::Put(PutRequest {
                key: Bytes::from_static(b"hot"),
                value: value(&mut rng),
                ..Default::default()
            }),
        };
        let _ = store.apply(&cmd);
    }
    store
}

fn auth_state() -> AuthState {
    let mut auth = AuthState::default();
    let cmds = vec![
        AuthCommand::UserAdd {
            name: "root".into(),
            password_hash: b"$2a$10$abcdefghijklmnopqrstuv".to_vec(),
            no_password: false,
        },
        AuthCommand::UserGrantRole {
            user: "root".into(),
            role: "root".into(),
        },
        AuthCommand::RoleAdd { name: "reader".into() },
        AuthCommand::RoleGrantPermission {
            name: "reader".into(),
            perm: Some(KeyPermission {
                perm: PermissionType::Read,
                key: b"k/".to_vec(),
                range_end: b"k0".to_vec(),
            }),
        },
        AuthCommand::RoleGrantPermission {
            name: "reader".into(),
            perm: Some(KeyPermission {
                perm: PermissionType::ReadWrite,
                key: b"a".to_vec(),
                range_end: b"\0".to_vec(),
            }),
        },
        AuthCommand::RoleAdd { name: "writer".into() },
        AuthCommand::UserAdd {
            name: "app".into(),
            password_hash: Vec::new(),
            no_password: true,
        },
        AuthCommand::UserGrantRole {
            user: "app".into(),
            role: "reader".into(),
        },
        AuthCommand::UserGrantRole {
            user: "app".into(),
            role: "writer".into(),
        },
        AuthCommand::Enable,
        AuthCommand::Authenticate {
            name: "root".into(),
            prefix: "tok".into(),
            now_ms: 0,
            ttl_ms: 1_000,
        },
    ];
    for (i, cmd) in cmds.iter().enumerate() {
        auth.apply(cmd, i as u64 + 1).unwrap();
    }
    auth
}

/// The first difference between two stores, briefly (a store's debug
/// output is too long to read).
fn difference(got: &Store, want: &Store) -> Option<String> {
    let (g, w) = (got.revision_records(), want.revision_records());
    if g.len() != w.len() {
        return Some(format!("{} records, want {}", g.len(), w.len()));
    }
    for (a, b) in g.iter().zip(&w) {
        if a != b {
            let brief = |r: &firebreak_mvcc::RevisionRecord| {
                format!(
                    "{:?}@{}_{} tomb {} create {} version {} lease {} value {} bytes",
                    String::from_utf8_lossy(&r.key[..r.key.len().min(20)]),
                    r.main,
                    r.sub,
                    r.tombstone,
                    r.create_revision,
                    r.version,
                    r.lease,
                    r.value.len()
                )
            };
            return Some(format!("record {} , want {}", brief(a), brief(b)));
        }
    }
    let facts = |s: &Store| {
        let leases: Vec<_> = s.lease_ids().into_iter().map(|id| (id, s.lease(id).cloned())).collect();
        (
            s.current_revision(),
            s.compact_revision(),
            s.alarms(),
            s.size_bytes(),
            leases,
        )
    };
    if facts(got) != facts(want) {
        let (a, b) = (facts(got), facts(want));
        return Some(format!(
            "revision {} / {}, compacted {} / {}, alarms {:?} / {:?}, size {} / {}, leases equal {}",
            a.0,
            b.0,
            a.1,
            b.1,
            a.2,
            b.2,
            a.3,
            b.3,
            a.4 == b.4
        ));
    }
    // Watch history: the same events. (The revision log itself may differ:
    // the original's still names keys whose tombstone at the compaction
    // revision was dropped, which give no event.)
    let from = want.compact_revision().max(1);
    let events = |s: &Store| s.events(b"\0", b"\0", from, s.current_revision());
    (events(got) != events(want)).then(|| "the watch events differ".to_string())
}

fn position() -> Position {
    Position {
        consistent_index: 1234,
        term: 7,
        voters: vec![11, 22, 33],
    }
}

#[test]
fn random_stores_read_back_the_same() {
    let auth = auth_state();
    for seed in 0..12u64 {
        let store = workload(seed, 400);
        let contents = Contents::capture(&store, &auth, position(), "3.5.0");
        let bytes = encode(&contents);
        assert_eq!(bytes.len() % 4096, 32, "whole pages and the trailer");
        let restored = decode(&bytes, HashCheck::Verify).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if let Some(d) = difference(&restored.store, &store) {
            panic!("seed {seed}: {d}");
        }
        assert_eq!(restored.auth, auth.without_tokens(), "seed {seed}");
        assert_eq!(contents.revision(), store.current_revision(), "seed {seed}");
    }
}

#[test]
fn an_empty_store_reads_back_and_a_never_compacted_store_stays_so() {
    let store = Store::new();
    let bytes = encode(&Contents::capture(
        &store,
        &AuthState::default(),
        Position::default(),
        "3.5.0",
    ));
    let restored = decode(&bytes, HashCheck::Verify).unwrap();
    assert_eq!(restored.store, store);
    assert_eq!(restored.store.compact_revision(), -1);
    assert_eq!(restored.store.current_revision(), 1);
    assert_eq!(restored.auth, AuthState::default());
}

#[test]
fn the_trailer_is_checked_unless_told_not_to() {
    let store = workload(99, 50);
    let mut bytes = encode(&Contents::capture(&store, &auth_state(), position(), "3.5.0"));
    // A flipped byte in a page nothing reads (the freelist's tail).
    bytes[2 * 4096 + 100] ^= 1;
    assert_eq!(
        decode(&bytes, HashCheck::Verify).unwrap_err(),
        SnapshotError::HashMismatch
    );
    assert_eq!(decode(&bytes, HashCheck::Skip).unwrap().store, store);
    // No trailer: refused unless skipped, as etcdutl does.
    let db = &bytes[..bytes.len() - 32];
    assert_eq!(decode(db, HashCheck::Verify).unwrap_err(), SnapshotError::MissingHash);
    assert_eq!(decode(db, HashCheck::Skip).unwrap().store, store);
}
