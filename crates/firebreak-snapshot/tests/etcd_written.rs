//! A snapshot that etcd itself wrote reads as etcd serves it, with no etcd
//! needed: `tests/data/etcd-3.4.23.db` was saved by `etcdctl snapshot
//! save` from Debian's etcd 3.4.23 after this history (the same writes,
//! with etcd running, give the same file contents up to ids and hashes):
//!
//! ```sh
//! for i in $(seq 1 60); do etcdctl put k/$((i % 20)) value-$i; done   # revisions 2..61
//! etcdctl txn   # put t/a 1, put t/b 2, put t/c 3: revision 62, sub-revisions 0..2
//! etcdctl del --prefix k/1                                            # 63: eleven deletes
//! etcdctl put big "$(6000 x)"                                         # 64: overflow pages
//! L=$(etcdctl lease grant 3600); etcdctl put --lease=$L leased/1 a    # 65
//! etcdctl put --lease=$L leased/2 b                                   # 66
//! etcdctl lease grant 7200                                            # a lease with no keys
//! etcdctl compact 30
//! etcdctl put k/3 after-compaction; etcdctl del t/b                   # 67, 68
//! etcdctl user add root; etcdctl user grant-role root root
//! etcdctl role add reader
//! etcdctl role grant-permission reader read k/ --prefix
//! etcdctl role grant-permission reader readwrite t/a
//! etcdctl role grant-permission reader write z --from-key
//! etcdctl user add alice; etcdctl user grant-role alice reader
//! etcdctl auth enable
//! ```
//!
//! The file has what etcd's bbolt writes and Firebreak's writer never
//! does: freed pages holding stale data, no freelist page (etcd syncs
//! none), two meta pages of different transactions, inline buckets next
//! to a `key` bucket with a branch page.

use firebreak_auth::PermissionType;
use firebreak_mvcc::{RangeRequest, Store};
use firebreak_snapshot::{bbolt, decode, encode, Contents, HashCheck, Position};

const FILE: &[u8] = include_bytes!("data/etcd-3.4.23.db");

fn get(store: &Store, key: &str, revision: i64) -> Option<(String, i64, i64, i64)> {
    let r = store
        .range(&RangeRequest {
            key: key.to_string().into(),
            revision,
            ..Default::default()
        })
        .unwrap();
    r.kvs.first().map(|kv| {
        (
            String::from_utf8_lossy(&kv.value).into_owned(),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
        )
    })
}

#[test]
fn an_etcd_snapshot_reads_as_etcd_serves_it() {
    let buckets = bbolt::read(&FILE[..FILE.len() - 32]).unwrap();
    let names: Vec<String> = buckets
        .buckets
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "members_removed",
            "meta"
        ]
    );

    let r = decode(FILE, HashCheck::Verify).unwrap();
    let s = &r.store;
    assert_eq!(s.current_revision(), 68);
    assert_eq!(s.compact_revision(), 30);

    // History at and after the compaction, as etcd answers `get --rev`.
    assert_eq!(get(s, "k/0", 30), Some(("value-20".into(), 21, 21, 1)));
    assert_eq!(get(s, "k/0", 68), Some(("value-60".into(), 21, 61, 3)));
    assert_eq!(get(s, "k/3", 66), Some(("value-43".into(), 4, 44, 3)));
    assert_eq!(get(s, "k/3", 68), Some(("after-compaction".into(), 4, 67, 4)));
    assert_eq!(get(s, "k/12", 62), Some(("value-52".into(), 13, 53, 3)));
    assert_eq!(get(s, "k/12", 63), None);
    assert_eq!(get(s, "t/b", 67), Some(("2".into(), 62, 62, 1)));
    assert_eq!(get(s, "t/b", 68), None);
    assert_eq!(get(s, "big", 68).map(|v| v.0.len()), Some(6000));
    assert!(s
        .range(&RangeRequest {
            key: "k/0".into(),
            revision: 29,
            ..Default::default()
        })
        .is_err());

    // One revision, several writes: etcd's sub-revisions, in order.
    let records = s.revision_records();
    let at = |main: i64| -> Vec<(String, i64, bool)> {
        records
            .iter()
            .filter(|r| r.main == main)
            .map(|r| (String::from_utf8_lossy(&r.key).into_owned(), r.sub, r.tombstone))
            .collect()
    };
    assert_eq!(
        at(62),
        [
            ("t/a".into(), 0, false),
            ("t/b".into(), 1, false),
            ("t/c".into(), 2, false)
        ]
    );
    assert_eq!(at(63).len(), 11);
    assert!(at(63).iter().all(|(_, _, tombstone)| *tombstone));

    // Leases: TTLs, and the keys etcd attaches on restore.
    let leases = s.lease_ids();
    assert_eq!(leases.len(), 2);
    let ttls: Vec<i64> = leases.iter().map(|id| s.lease(*id).unwrap().ttl).collect();
    assert_eq!(ttls, [3600, 7200]);
    let keys: Vec<&[u8]> = s.lease(leases[0]).unwrap().keys.iter().map(|k| &k[..]).collect();
    assert_eq!(keys, [b"leased/1".as_slice(), b"leased/2"]);
    assert!(s.lease(leases[1]).unwrap().keys.is_empty());

    // Auth: enabled, etcd's revision, users with bcrypt hashes and roles.
    let a = &r.auth;
    assert!(a.is_enabled());
    assert_eq!(a.revision(), 9);
    assert_eq!(a.user_names(), ["alice", "root"]);
    assert_eq!(a.user("alice").unwrap().roles, ["reader"]);
    assert_eq!(a.user("root").unwrap().roles, ["root"]);
    assert!(a.user("alice").unwrap().password_hash.starts_with(b"$2a$10$"));
    let perms: Vec<(PermissionType, &[u8], &[u8])> = a
        .role("reader")
        .unwrap()
        .perms
        .iter()
        .map(|p| (p.perm, &p.key[..], &p.range_end[..]))
        .collect();
    assert_eq!(
        perms,
        [
            (PermissionType::Read, b"k/".as_slice(), b"k0".as_slice()),
            (PermissionType::ReadWrite, b"t/a", b""),
            (PermissionType::Write, b"z", b"\0"),
        ]
    );

    // And written back in etcd's format, it reads the same again.
    let again = encode(&Contents::capture(s, a, Position::default(), "3.5.0"));
    let back = decode(&again, HashCheck::Verify).unwrap();
    assert_eq!(back.store.revision_records(), records);
    assert_eq!(back.auth, r.auth);
}
