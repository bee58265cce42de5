//! etcd's schema inside the bbolt file: its buckets, and how their keys
//! and values encode Firebreak's store and auth state.
//!
//! | bucket | key | value |
//! | --- | --- | --- |
//! | `key` | revision: main (8 bytes, big-endian), `_`, sub (8 bytes), and `t` for a delete | `mvccpb.KeyValue` (a delete's holds only the key) |
//! | `meta` | `consistent_index`, `term` | 8 bytes, big-endian |
//! | `meta` | `scheduledCompactRev`, `finishedCompactRev` | a revision (17 bytes) |
//! | `meta` | `confState` | raft's `ConfState` as JSON |
//! | `lease` | lease id (8 bytes, big-endian) | `leasepb.Lease` |
//! | `auth` | `authEnabled` (1 byte), `authRevision` (8 bytes, big-endian) | |
//! | `authUsers` / `authRoles` | name | `authpb.User` / `authpb.Role` |
//! | `alarm` | `etcdserverpb.AlarmMember` | empty |
//! | `cluster` | `clusterVersion` | e.g. `3.5.0` |
//! | `members`, `members_removed` | member id (hex) | JSON |
//!
//! Restoring, etcd and Firebreak both replace the membership and the
//! consistent index with the new cluster's, so a Firebreak snapshot leaves
//! `members` empty and what it writes in `meta` is informational.

use std::collections::BTreeMap;

use bytes::Bytes;
use firebreak_auth::{AuthState, KeyPermission, PermissionType, Role, User};
use firebreak_mvcc::{AlarmMember, AlarmType, RevisionRecord, Store};
use prost::Message;

use crate::bbolt::Bucket;
use crate::SnapshotError;

pub const KEY: &[u8] = b"key";
pub const META: &[u8] = b"meta";
pub const LEASE: &[u8] = b"lease";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const AUTH_ROLES: &[u8] = b"authRoles";
pub const ALARM: &[u8] = b"alarm";
pub const CLUSTER: &[u8] = b"cluster";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const TERM: &[u8] = b"term";
const CONF_STATE: &[u8] = b"confState";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const AUTH_ENABLED: &[u8] = b"authEnabled";
const AUTH_REVISION: &[u8] = b"authRevision";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "bytes", tag = "5")]
    pub value: Bytes,
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `leasepb.Lease`.
#[derive(Clone, PartialEq, Message)]
pub struct Lease {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// `authpb.UserAddOptions`.
#[derive(Clone, PartialEq, Message)]
pub struct UserAddOptions {
    #[prost(bool, tag = "1")]
    pub no_password: bool,
}

/// `authpb.User`.
#[derive(Clone, PartialEq, Message)]
pub struct PbUser {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub password: Vec<u8>,
    #[prost(string, repeated, tag = "3")]
    pub roles: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub options: Option<UserAddOptions>,
}

/// `authpb.Permission`.
#[derive(Clone, PartialEq, Message)]
pub struct Permission {
    #[prost(int32, tag = "1")]
    pub perm_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

/// `authpb.Role`.
#[derive(Clone, PartialEq, Message)]
pub struct PbRole {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub key_permission: Vec<Permission>,
}

/// `etcdserverpb.AlarmMember`.
#[derive(Clone, PartialEq, Message)]
pub struct PbAlarmMember {
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    #[prost(int32, tag = "2")]
    pub alarm: i32,
}

/// A revision as the `key` bucket names it.
pub fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&(main as u64).to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&(sub as u64).to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// `(main, sub, tombstone)` of a `key` bucket key.
pub fn parse_revision(k: &[u8]) -> Option<(i64, i64, bool)> {
    let tombstone = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => return None,
    };
    if k[8] != b'_' {
        return None;
    }
    let main = i64::try_from(u64::from_be_bytes(k[0..8].try_into().ok()?)).ok()?;
    let sub = i64::try_from(u64::from_be_bytes(k[9..17].try_into().ok()?)).ok()?;
    Some((main, sub, tombstone))
}

/// Where the replica stood in its Raft log when the snapshot was taken
/// (what etcd's `meta` bucket says of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The last applied log index.
    pub consistent_index: u64,
    /// The term of that entry.
    pub term: u64,
    /// The voting members.
    pub voters: Vec<u64>,
}

/// What a snapshot holds, copied out of a replica (cheaply: keys and
/// values are shared) so that encoding runs without holding it.
#[derive(Debug, Clone)]
pub struct Contents {
    pub records: Vec<RevisionRecord>,
    /// The compaction revision, -1 if never compacted.
    pub compacted: i64,
    /// `(id, granted TTL)`.
    pub leases: Vec<(i64, i64)>,
    pub alarms: Vec<AlarmMember>,
    /// Users, roles, the enabled flag and the revision; no tokens.
    pub auth: AuthState,
    pub position: Position,
    /// The cluster version the snapshot records (`cluster` bucket).
    pub cluster_version: String,
}

impl Contents {
    /// Copies what a snapshot holds out of a replica's store and auth
    /// state.
    pub fn capture(store: &Store, auth: &AuthState, position: Position, cluster_version: &str) -> Contents {
        Contents {
            records: store.revision_records(),
            compacted: store.compact_revision(),
            leases: store
                .lease_ids()
                .into_iter()
                .map(|id| (id, store.lease(id).map_or(0, |l| l.ttl)))
                .collect(),
            alarms: store.alarms(),
            auth: auth.without_tokens(),
            position,
            cluster_version: cluster_version.to_string(),
        }
    }

    /// The current revision the snapshot holds (as etcd computes it on
    /// restore: the last revision written, or the compaction revision if
    /// later).
    pub fn revision(&self) -> i64 {
        self.records.last().map_or(1, |r| r.main).max(self.compacted).max(1)
    }

    /// The buckets of etcd's schema that hold these contents.
    pub fn to_buckets(&self) -> Bucket {
        let mut root = Bucket::default();
        let mut put = |name: &[u8], mut entries: Vec<(Vec<u8>, Vec<u8>)>| {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            root.buckets.insert(
                name.to_vec(),
                Bucket {
                    entries,
                    ..Bucket::default()
                },
            );
        };

        put(
            KEY,
            self.records
                .iter()
                .map(|r| {
                    let kv = if r.tombstone {
                        KeyValue {
                            key: r.key.clone(),
                            ..Default::default()
                        }
                    } else {
                        KeyValue {
                            key: r.key.clone(),
                            create_revision: r.create_revision,
                            mod_revision: r.main,
                            version: r.version,
                            value: r.value.clone(),
                            lease: r.lease,
                        }
                    };
                    (revision_key(r.main, r.sub, r.tombstone), kv.encode_to_vec())
                })
                .collect(),
        );

        let mut meta = vec![
            (
                CONSISTENT_INDEX.to_vec(),
                self.position.consistent_index.to_be_bytes().to_vec(),
            ),
            (TERM.to_vec(), self.position.term.to_be_bytes().to_vec()),
        ];
        if !self.position.voters.is_empty() {
            let voters: Vec<String> = self.position.voters.iter().map(u64::to_string).collect();
            meta.push((
                CONF_STATE.to_vec(),
                format!("{{\"voters\":[{}],\"auto_leave\":false}}", voters.join(",")).into_bytes(),
            ));
        }
        if self.compacted >= 1 {
            for name in [SCHEDULED_COMPACT, FINISHED_COMPACT] {
                meta.push((name.to_vec(), revision_key(self.compacted, 0, false)));
            }
        }
        put(META, meta);

        put(
            LEASE,
            self.leases
                .iter()
                .map(|(id, ttl)| {
                    let lease = Lease {
                        id: *id,
                        ttl: *ttl,
                        remaining_ttl: 0,
                    };
                    ((*id as u64).to_be_bytes().to_vec(), lease.encode_to_vec())
                })
                .collect(),
        );

        let auth = &self.auth;
        put(
            AUTH,
            vec![
                (AUTH_ENABLED.to_vec(), vec![u8::from(auth.is_enabled())]),
                (AUTH_REVISION.to_vec(), auth.revision().to_be_bytes().to_vec()),
            ],
        );
        put(
            AUTH_USERS,
            auth.user_names()
                .into_iter()
                .filter_map(|name| {
                    let user = auth.user(&name)?;
                    let pb = PbUser {
                        name: name.clone().into_bytes(),
                        password: user.password_hash.clone(),
                        roles: user.roles.clone(),
                        options: Some(UserAddOptions {
                            no_password: user.no_password,
                        }),
                    };
                    Some((name.into_bytes(), pb.encode_to_vec()))
                })
                .collect(),
        );
        put(
            AUTH_ROLES,
            auth.role_names()
                .into_iter()
                .filter_map(|name| {
                    let role = auth.role(&name)?;
                    let pb = PbRole {
                        name: name.clone().into_bytes(),
                        key_permission: role
                            .perms
                            .iter()
                            .map(|p| Permission {
                                perm_type: p.perm.code(),
                                key: p.key.clone(),
                                range_end: p.range_end.clone(),
                            })
                            .collect(),
                    };
                    Some((name.into_bytes(), pb.encode_to_vec()))
                })
                .collect(),
        );

        put(
            ALARM,
            self.alarms
                .iter()
                .map(|a| {
                    let pb = PbAlarmMember {
                        member_id: a.member_id,
                        alarm: alarm_code(a.alarm),
                    };
                    (pb.encode_to_vec(), Vec::new())
                })
                .collect(),
        );
        put(
            CLUSTER,
            vec![(CLUSTER_VERSION.to_vec(), self.cluster_version.clone().into_bytes())],
        );
        put(MEMBERS, Vec::new());
        put(MEMBERS_REMOVED, Vec::new());
        root
    }
}

fn alarm_code(alarm: AlarmType) -> i32 {
    match alarm {
        AlarmType::NoSpace => 1,
        AlarmType::Corrupt => 2,
    }
}

fn schema(msg: impl Into<String>) -> SnapshotError {
    SnapshotError::Schema(msg.into())
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn be_u64(bucket: &str, key: &[u8], v: &[u8]) -> Result<u64, SnapshotError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| schema(format!("{bucket}/{}: {} bytes, not 8", show(key), v.len())))
}

fn utf8(what: &str, bytes: &[u8]) -> Result<String, SnapshotError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| schema(format!("{what} {} is not UTF-8", show(bytes))))
}

/// What a restore starts from.
#[derive(Debug, Clone)]
pub struct Restored {
    pub store: Store,
    pub auth: AuthState,
}

/// The store and auth state that etcd's buckets hold.
pub fn from_buckets(root: &Bucket) -> Result<Restored, SnapshotError> {
    let empty = Bucket::default();
    let bucket = |name: &[u8]| root.buckets.get(name).unwrap_or(&empty);
    if !root.buckets.contains_key(KEY) || !root.buckets.contains_key(META) {
        return Err(schema(
            "no `key` or `meta` bucket: a bbolt database, but not an etcd v3 backend",
        ));
    }

    let mut records = Vec::with_capacity(bucket(KEY).entries.len());
    for (k, v) in &bucket(KEY).entries {
        let (main, sub, tombstone) =
            parse_revision(k).ok_or_else(|| schema(format!("key bucket: {} is not a revision", show(k))))?;
        let kv = KeyValue::decode(&v[..])
            .map_err(|e| schema(format!("key bucket: the record at revision {main}_{sub}: {e}")))?;
        if kv.key.is_empty() {
            return Err(schema(format!(
                "key bucket: the record at revision {main}_{sub} has no key"
            )));
        }
        if !tombstone && kv.mod_revision != main {
            return Err(schema(format!(
                "key bucket: the record at revision {main}_{sub} says its mod revision is {}",
                kv.mod_revision
            )));
        }
        records.push(RevisionRecord {
            key: kv.key,
            main,
            sub,
            tombstone,
            create_revision: kv.create_revision,
            version: kv.version,
            value: kv.value,
            lease: kv.lease,
        });
    }

    // The compaction etcd finished, or the one it scheduled and redoes on
    // start-up.
    let mut compacted = -1;
    for (k, v) in &bucket(META).entries {
        if k == SCHEDULED_COMPACT || k == FINISHED_COMPACT {
            let (main, _, _) = parse_revision(v)
                .filter(|(_, _, t)| !t)
                .ok_or_else(|| schema(format!("meta/{}: {} is not a revision", show(k), show(v))))?;
            compacted = compacted.max(main);
        }
    }

    let mut leases = Vec::with_capacity(bucket(LEASE).entries.len());
    for (k, v) in &bucket(LEASE).entries {
        let lease = Lease::decode(&v[..]).map_err(|e| schema(format!("lease bucket: lease {}: {e}", show(k))))?;
        if lease.id == 0 {
            return Err(schema(format!("lease bucket: lease {} has id 0", show(k))));
        }
        leases.push((lease.id, lease.ttl));
    }

    let mut alarms = Vec::new();
    for (k, _) in &bucket(ALARM).entries {
        let a = PbAlarmMember::decode(&k[..]).map_err(|e| schema(format!("alarm bucket: {e}")))?;
        let alarm = match a.alarm {
            1 => AlarmType::NoSpace,
            2 => AlarmType::Corrupt,
            _ => continue,
        };
        alarms.push(AlarmMember {
            member_id: a.member_id,
            alarm,
        });
    }

    let store = Store::from_revision_records(records, leases, alarms, compacted)
        .map_err(|e| schema(format!("key bucket: {e}")))?;

    let (mut enabled, mut revision) = (false, 0);
    for (k, v) in &bucket(AUTH).entries {
        if k == AUTH_ENABLED {
            enabled = v[..] == [1];
        } else if k == AUTH_REVISION {
            revision = be_u64("auth", k, v)?;
        }
    }
    let mut users = BTreeMap::new();
    for (k, v) in &bucket(AUTH_USERS).entries {
        let name = utf8("user name", k)?;
        let pb = PbUser::decode(&v[..]).map_err(|e| schema(format!("authUsers/{name}: {e}")))?;
        let user = User {
            password_hash: pb.password,
            no_password: pb.options.is_some_and(|o| o.no_password),
            roles: pb.roles,
        };
        users.insert(name, user);
    }
    let mut roles = BTreeMap::new();
    for (k, v) in &bucket(AUTH_ROLES).entries {
        let name = utf8("role name", k)?;
        let pb = PbRole::decode(&v[..]).map_err(|e| schema(format!("authRoles/{name}: {e}")))?;
        let role = Role {
            perms: pb
                .key_permission
                .into_iter()
                .map(|p| KeyPermission {
                    perm: PermissionType::from_code(p.perm_type),
                    key: p.key,
                    range_end: p.range_end,
                })
                .collect(),
        };
        roles.insert(name, role);
    }
    // etcd commits revision 1 when it finds none.
    let auth = AuthState::from_parts(enabled, revision.max(1), users, roles);
    Ok(Restored { store, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_encode_as_etcd_names_them() {
        let k = revision_key(3, 1, false);
        assert_eq!(k, b"\0\0\0\0\0\0\0\x03_\0\0\0\0\0\0\0\x01");
        assert_eq!(parse_revision(&k), Some((3, 1, false)));
        let t = revision_key(5, 0, true);
        assert_eq!(t.last(), Some(&b't'));
        assert_eq!(parse_revision(&t), Some((5, 0, true)));
        assert_eq!(parse_revision(b"short"), None);
        let mut bad = k.clone();
        bad[8] = b'-';
        assert_eq!(parse_revision(&bad), None);
        let mut neg = k;
        neg[0] = 0x80;
        assert_eq!(parse_revision(&neg), None);
    }
}
