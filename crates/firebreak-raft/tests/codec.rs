//! Every message that crosses the peer transport or the log survives its
//! encoding: it decodes to a value equal to the one encoded.
//!
//! Every sample sets every field to a value other than its default, so a
//! field that serde skips (it decodes as its default) or a variant that
//! decodes as another is caught.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use firebreak_auth::{AuthApplied, AuthCommand, AuthError, KeyPermission, PermissionType};
use firebreak_config::Domains;
use firebreak_mvcc::{
    AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactRequest, CompactResponse, Compare,
    CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue, KvError, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse, WriteCommand, WriteResponse,
};
use firebreak_raft::membership::{MembershipChange, MembershipError};
use firebreak_raft::transport::{ForwardError, PeerRequest, PeerResponse, SnapshotChunk, StreamAppendAnswer};
use firebreak_raft::types::{Applied, Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig, Vote};
use firebreak_raft::Member;
use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, Membership, StorageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn decode<T: Serialize + DeserializeOwned + Debug>(v: &T) -> (Vec<u8>, T) {
    let bytes = bincode::serialize(v).expect("serialize");
    let decoded = bincode::deserialize(&bytes).unwrap_or_else(|e| panic!("{v:?} does not decode: {e}"));
    (bytes, decoded)
}

/// Encodes `v` and checks that it decodes to an equal value.
fn roundtrip<T: Serialize + DeserializeOwned + Debug + PartialEq>(v: &T) {
    let (_, decoded) = decode(v);
    assert_eq!(&decoded, v, "changed by its encoding");
}

/// The same for types without `PartialEq`: `PeerRequest` and `PeerResponse`
/// (openraft's `AppendEntriesRequest` has none, nor do the transport's own
/// enums). It compares the re-encoded bytes, and also the `Debug`
/// renderings: re-encoded bytes alone cannot catch a field serde skips (it
/// is skipped by both encodings, so they agree), but `Debug` shows every
/// field, and a skipped one comes back as its default.
fn roundtrip_without_eq<T: Serialize + DeserializeOwned + Debug>(v: &T) {
    let (bytes, decoded) = decode(v);
    assert_eq!(format!("{decoded:?}"), format!("{v:?}"), "changed by its encoding");
    let again = bincode::serialize(&decoded).expect("serialize again");
    assert_eq!(again, bytes, "{v:?} encodes differently once decoded");
}

fn log_id(index: u64) -> LogId {
    firebreak_raft::types::log_id(3, 7, index)
}

fn vote() -> Vote {
    Vote::new_committed(3, 7)
}

fn kv(key: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned().into(),
        create_revision: 2,
        mod_revision: 3,
        version: 4,
        value: format!("value of {key}").into(),
        lease: 5,
    }
}

fn range() -> RangeRequest {
    RangeRequest {
        key: "a".into(),
        range_end: "z".into(),
        limit: 10,
        revision: 3,
        sort_order: SortOrder::Descend,
        sort_target: SortTarget::Mod,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    }
}

fn put() -> PutRequest {
    PutRequest {
        key: "k".into(),
        value: "v".into(),
        lease: 7,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    }
}

fn delete() -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: "d".into(),
        range_end: "e".into(),
        prev_kv: true,
    }
}

fn txn() -> TxnRequest {
    let compare = |result, target| Compare {
        key: "c".into(),
        range_end: "d".into(),
        result,
        target,
    };
    TxnRequest {
        compare: vec![
            compare(CompareResult::Equal, CompareTarget::Version(1)),
            compare(CompareResult::Greater, CompareTarget::Create(2)),
            compare(CompareResult::Less, CompareTarget::Mod(3)),
            compare(CompareResult::NotEqual, CompareTarget::Value("x".into())),
            compare(CompareResult::Equal, CompareTarget::Lease(4)),
        ],
        success: vec![
            RequestOp::Range(range()),
            RequestOp::Put(put()),
            RequestOp::DeleteRange(delete()),
            RequestOp::Txn(TxnRequest {
                compare: vec![],
                success: vec![RequestOp::Put(put())],
                failure: vec![RequestOp::Empty],
            }),
            RequestOp::Empty,
        ],
        failure: vec![RequestOp::DeleteRange(delete())],
    }
}

/// One of every write command, a batch holding several (a batch and a
/// tagged batch nested), and a tagged batch.
fn write_commands() -> Vec<WriteCommand> {
    let single = vec![
        WriteCommand::Put(put()),
        WriteCommand::DeleteRange(delete()),
        WriteCommand::Txn(txn()),
        WriteCommand::Compact(CompactRequest {
            revision: 9,
            physical: true,
        }),
        WriteCommand::LeaseGrant(LeaseGrantRequest { id: 11, ttl: 60 }),
        WriteCommand::LeaseRevoke(LeaseRevokeRequest { id: 11 }),
        WriteCommand::Alarm(AlarmRequest {
            action: AlarmAction::Activate,
            member_id: 12,
            alarm: AlarmType::NoSpace,
        }),
        WriteCommand::Alarm(AlarmRequest {
            action: AlarmAction::Deactivate,
            member_id: 13,
            alarm: AlarmType::Corrupt,
        }),
        WriteCommand::AsUser {
            user: "alice".into(),
            auth_revision: 14,
            cmd: Box::new(WriteCommand::Put(put())),
        },
        WriteCommand::AsMember(Box::new(WriteCommand::LeaseRevoke(LeaseRevokeRequest { id: 15 }))),
    ];
    let mut single = single;
    single.extend(auth_commands().into_iter().map(WriteCommand::Auth));
    let mut batch = single.clone();
    batch.push(WriteCommand::Batch(vec![WriteCommand::Put(put())]));
    let tagged = WriteCommand::Tagged {
        tag: 77,
        cmd: Box::new(WriteCommand::Batch(batch.clone())),
    };
    batch.push(tagged.clone());
    let mut all = single;
    all.push(WriteCommand::Batch(batch));
    all.push(tagged);
    all
}

/// One of every auth command.
fn auth_commands() -> Vec<AuthCommand> {
    let perm = KeyPermission {
        perm: PermissionType::ReadWrite,
        key: b"a/".to_vec(),
        range_end: b"a0".to_vec(),
    };
    vec![
        AuthCommand::Enable,
        AuthCommand::Disable,
        AuthCommand::Authenticate {
            name: "alice".into(),
            prefix: "abcdefghijklmnop".into(),
            now_ms: 16,
            ttl_ms: 17,
        },
        AuthCommand::UserAdd {
            name: "alice".into(),
            password_hash: b"$2b$10$hash".to_vec(),
            no_password: true,
        },
        AuthCommand::UserDelete { name: "bob".into() },
        AuthCommand::UserChangePassword {
            name: "carol".into(),
            password_hash: b"$2b$10$other".to_vec(),
        },
        AuthCommand::UserGrantRole {
            user: "dave".into(),
            role: "r".into(),
        },
        AuthCommand::UserRevokeRole {
            name: "erin".into(),
            role: "s".into(),
        },
        AuthCommand::RoleAdd { name: "t".into() },
        AuthCommand::RoleGrantPermission {
            name: "u".into(),
            perm: Some(perm),
        },
        AuthCommand::RoleGrantPermission {
            name: "u".into(),
            perm: Some(KeyPermission {
                perm: PermissionType::Other(7),
                key: b"k".to_vec(),
                range_end: b"\0".to_vec(),
            }),
        },
        AuthCommand::RoleRevokePermission {
            role: "v".into(),
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
        },
        AuthCommand::RoleDelete { role: "w".into() },
        AuthCommand::RenewTokens {
            now_ms: 18,
            ttl_ms: 19,
            tokens: vec!["a.1".into(), "b.2".into()],
        },
    ]
}

/// One of every write response, a batch holding answers and an error.
fn write_responses() -> Vec<WriteResponse> {
    let single = vec![
        WriteResponse::Put(PutResponse {
            revision: 5,
            prev_kv: Some(kv("p")),
        }),
        WriteResponse::DeleteRange(DeleteRangeResponse {
            revision: 6,
            deleted: 2,
            prev_kvs: vec![kv("d1"), kv("d2")],
        }),
        WriteResponse::Txn(TxnResponse {
            revision: 7,
            succeeded: true,
            responses: vec![
                ResponseOp::Range(RangeResponse {
                    revision: 7,
                    kvs: vec![kv("r")],
                    more: true,
                    count: 3,
                }),
                ResponseOp::Put(PutResponse {
                    revision: 7,
                    prev_kv: None,
                }),
                ResponseOp::DeleteRange(DeleteRangeResponse {
                    revision: 7,
                    deleted: 1,
                    prev_kvs: vec![],
                }),
                ResponseOp::Txn(TxnResponse {
                    revision: 0,
                    succeeded: false,
                    responses: vec![],
                }),
            ],
        }),
        WriteResponse::Compact(CompactResponse { revision: 8 }),
        WriteResponse::LeaseGrant(LeaseGrantResponse {
            revision: 9,
            id: 11,
            ttl: 60,
        }),
        WriteResponse::LeaseRevoke(LeaseRevokeResponse { revision: 10 }),
        WriteResponse::Alarm(AlarmResponse {
            alarms: vec![AlarmMember {
                member_id: 12,
                alarm: AlarmType::NoSpace,
            }],
        }),
    ];
    let mut batch: Vec<Result<WriteResponse, KvError>> = single.iter().cloned().map(Ok).collect();
    batch.push(Err(KvError::LeaseNotFound));
    batch.push(Err(KvError::Auth(AuthError::AuthOldRevision)));
    batch.push(Ok(WriteResponse::Auth(AuthApplied {
        revision: 20,
        token: Some("abcdefghijklmnop.21".into()),
    })));
    let mut all = single;
    all.push(WriteResponse::Batch(batch));
    all
}

fn membership() -> Membership<u64, Member> {
    let member = |i: u64| Member {
        name: format!("m{i}"),
        peer_addr: format!("10.0.0.{i}:2380"),
        peer_url: format!("http://10.0.0.{i}:2380"),
        client_url: format!("http://10.0.0.{i}:2379"),
        domains: Domains {
            datacenter: format!("dc{i}"),
            room: Some("r1".into()),
            rack: Some("k2".into()),
            host: Some(format!("h{i}")),
        },
    };
    // A joint configuration, and node 5 a learner.
    Membership::new(
        vec![BTreeSet::from([1u64, 2, 3]), BTreeSet::from([2u64, 3, 4])],
        (1..=5).map(|i| (i, member(i))).collect::<BTreeMap<_, _>>(),
    )
    .expect("a valid membership")
}

/// Log entries of every payload kind, one per write command.
fn entries() -> Vec<Entry> {
    let mut entries = vec![
        Entry {
            log_id: log_id(40),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(41),
            payload: EntryPayload::Membership(membership()),
        },
    ];
    for (i, cmd) in write_commands().into_iter().enumerate() {
        entries.push(Entry {
            log_id: log_id(42 + i as u64),
            payload: EntryPayload::Normal(cmd),
        });
    }
    entries
}

fn storage_error() -> StorageError<TypeConfig> {
    StorageError::from_io_error(
        ErrorSubject::Logs,
        ErrorVerb::Write,
        std::io::Error::other("disk on fire"),
    )
}

fn peer_requests() -> Vec<PeerRequest> {
    let mut requests = vec![
        PeerRequest::AppendEntries(AppendEntriesRequest {
            vote: vote(),
            prev_log_id: Some(log_id(39)),
            entries: entries(),
            leader_commit: Some(log_id(38)),
        }),
        PeerRequest::Vote(VoteRequest::new(vote(), Some(log_id(42)))),
        PeerRequest::PreVote(VoteRequest::new(Vote::new(4, 3), Some(log_id(42)))),
        PeerRequest::SnapshotChunk(SnapshotChunk {
            vote: vote(),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(42)),
                last_membership: StoredMembership::new(Some(log_id(41)), membership()),
            },
            offset: 4096,
            data: vec![1, 2, 3],
            done: true,
        }),
        PeerRequest::StreamAppend,
        PeerRequest::TransferLeader(TransferLeaderRequest::new(vote(), 2, Some(log_id(42)))),
        PeerRequest::ReadIndex,
        PeerRequest::LeaseKeepAlive(11),
        PeerRequest::LeaseTimeToLive(12),
        PeerRequest::Campaign,
        PeerRequest::Membership(MembershipChange::Add {
            peer_url: "http://10.0.4.5:2380?name=dc4-a&datacenter=dc4".into(),
            learner: true,
        }),
        PeerRequest::Membership(MembershipChange::Remove { id: 3 }),
        PeerRequest::Membership(MembershipChange::Promote { id: 4 }),
        PeerRequest::Membership(MembershipChange::Update {
            id: 5,
            peer_url: "http://10.0.0.9:2380".into(),
        }),
        PeerRequest::Report,
        PeerRequest::Ping,
        PeerRequest::Join(firebreak_raft::membership::JoinRequest {
            peer_url: "http://10.0.4.5:2380".into(),
            name: "dc4-1".into(),
            client_url: "http://10.0.4.5:2379".into(),
            domains: Domains {
                datacenter: "dc4".into(),
                room: None,
                rack: Some("r2".into()),
                host: None,
            },
        }),
    ];
    requests.extend(write_commands().into_iter().map(PeerRequest::Write));
    requests
}

/// A report with every optional field set, and a lagging follower.
fn member_report() -> firebreak_raft::report::MemberReport {
    use firebreak_raft::report::*;
    let domains = Domains {
        datacenter: "dc1".into(),
        room: Some("ups-2".into()),
        rack: Some("r1".into()),
        host: Some("h1".into()),
    };
    MemberReport {
        id: 1,
        name: "dc1-1".into(),
        domains: domains.clone(),
        role: Role::Leader,
        term: 7,
        leader: Some(1),
        leader_has_quorum: Some(true),
        last_log_index: 120,
        durable_index: 119,
        commit_index: 118,
        applied_index: 117,
        revision: 99,
        db_size: 4096,
        alarms: vec!["memberID:1 alarm:NOSPACE".into()],
        members: vec![ConfiguredMember {
            id: 1,
            name: "dc1-1".into(),
            domains,
            client_url: "http://10.0.1.1:2379".into(),
            peer_url: "http://10.0.1.1:2380".into(),
            is_learner: false,
        }],
        peers: vec![PeerLink {
            id: 2,
            rtt_ms: Some(4.2),
            rtt_max_ms: Some(9.5),
            rtt_measured_ms_ago: Some(300),
            last_ack_ms_ago: Some(40),
        }],
        replication: Some(vec![
            FollowerProgress {
                id: 2,
                durable_index: Some(100),
                lag_entries: Some(20),
                lag_seconds: Some(1.5),
            },
            FollowerProgress {
                id: 3,
                durable_index: None,
                lag_entries: None,
                lag_seconds: None,
            },
        ]),
        election_timeout_ms: 1000,
        election_timeout_effective_ms: Some(420),
        heartbeat_gap_max_ms: Some(57.5),
        heartbeat_interval_ms: 100,
        fsync: FsyncStats {
            count: 10,
            mean_ms: Some(1.25),
            p99_ms: Some(4.0),
        },
        leader_changes: vec![
            LeaderChange {
                at_unix_ms: 1,
                term: 6,
                leader: None,
            },
            LeaderChange {
                at_unix_ms: 2,
                term: 7,
                leader: Some(1),
            },
        ],
        uptime_seconds: 12.5,
        etcd_version: "3.5.0".into(),
        firebreak_version: "0.1.0".into(),
    }
}

fn peer_responses() -> Vec<PeerResponse> {
    let mut responses = vec![
        PeerResponse::AppendEntries(Ok(AppendEntriesResponse::Success)),
        PeerResponse::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(43))))),
        PeerResponse::AppendEntries(Ok(AppendEntriesResponse::Conflict)),
        PeerResponse::AppendEntries(Ok(AppendEntriesResponse::HigherVote(Vote::new(4, 2)))),
        PeerResponse::AppendEntries(Err(RaftError::Fatal(Fatal::StorageError(storage_error())))),
        PeerResponse::AppendEntries(Err(RaftError::Fatal(Fatal::Panicked))),
        PeerResponse::Vote(Ok(VoteResponse::new(vote(), Some(log_id(42)), true))),
        PeerResponse::Vote(Err(RaftError::Fatal(Fatal::Stopped))),
        PeerResponse::SnapshotChunk(Ok(None)),
        PeerResponse::SnapshotChunk(Ok(Some(SnapshotResponse::new(vote())))),
        PeerResponse::SnapshotChunk(Err("out of order".into())),
        PeerResponse::TransferLeader(Ok(Ok(()))),
        PeerResponse::TransferLeader(Err("stopped".into())),
        PeerResponse::Write(Ok(Err(KvError::Compacted))),
        PeerResponse::Write(Err(ForwardError::NotLeader)),
        PeerResponse::Write(Err(ForwardError::Unavailable("timed out".into()))),
        PeerResponse::ReadIndex(Ok(42)),
        PeerResponse::ReadIndex(Err(ForwardError::NotLeader)),
        PeerResponse::LeaseKeepAlive(Ok(60)),
        PeerResponse::LeaseTimeToLive(Ok(-1)),
        PeerResponse::Campaign(Ok(())),
        PeerResponse::Campaign(Err(ForwardError::Unavailable("no quorum".into()))),
        PeerResponse::Membership(Ok(Ok(5))),
        PeerResponse::Membership(Ok(Err(MembershipError::Topology("dc1 would hold a quorum".into())))),
        PeerResponse::Membership(Err(ForwardError::NotLeader)),
        PeerResponse::Report(Box::new(member_report())),
        PeerResponse::Pong,
        PeerResponse::Join(Ok(Ok(firebreak_raft::membership::Joined {
            id: 0xabc,
            cluster_id: 0xdef,
        }))),
        PeerResponse::Join(Ok(Err(MembershipError::NotAdded("http://10.0.4.5:2380".into())))),
        PeerResponse::Join(Err(ForwardError::NotLeader)),
        PeerResponse::PreVote(Ok(VoteResponse::new(Vote::new(4, 3), Some(log_id(42)), true))),
        PeerResponse::PreVote(Err(RaftError::Fatal(Fatal::Stopped))),
    ];
    responses.extend(write_responses().into_iter().map(|r| PeerResponse::Write(Ok(Ok(r)))));
    responses
}

// The kinds below are matched without a wildcard, so a new variant does not
// compile until it is named here, and the tests then ask for a sample of it.

fn request_kind(r: &PeerRequest) -> &'static str {
    match r {
        PeerRequest::AppendEntries(_) => "AppendEntries",
        PeerRequest::Vote(_) => "Vote",
        PeerRequest::SnapshotChunk(_) => "SnapshotChunk",
        PeerRequest::TransferLeader(_) => "TransferLeader",
        PeerRequest::StreamAppend => "StreamAppend",
        PeerRequest::Write(_) => "Write",
        PeerRequest::ReadIndex => "ReadIndex",
        PeerRequest::LeaseKeepAlive(_) => "LeaseKeepAlive",
        PeerRequest::LeaseTimeToLive(_) => "LeaseTimeToLive",
        PeerRequest::Campaign => "Campaign",
        PeerRequest::Membership(_) => "Membership",
        PeerRequest::Report => "Report",
        PeerRequest::Ping => "Ping",
        PeerRequest::Join(_) => "Join",
        PeerRequest::PreVote(_) => "PreVote",
    }
}

fn response_kind(r: &PeerResponse) -> &'static str {
    match r {
        PeerResponse::AppendEntries(_) => "AppendEntries",
        PeerResponse::Vote(_) => "Vote",
        PeerResponse::SnapshotChunk(_) => "SnapshotChunk",
        PeerResponse::TransferLeader(_) => "TransferLeader",
        PeerResponse::Write(_) => "Write",
        PeerResponse::ReadIndex(_) => "ReadIndex",
        PeerResponse::LeaseKeepAlive(_) => "LeaseKeepAlive",
        PeerResponse::LeaseTimeToLive(_) => "LeaseTimeToLive",
        PeerResponse::Campaign(_) => "Campaign",
        PeerResponse::Membership(_) => "Membership",
        PeerResponse::Report(_) => "Report",
        PeerResponse::Pong => "Pong",
        PeerResponse::Join(_) => "Join",
        PeerResponse::PreVote(_) => "PreVote",
    }
}

fn command_kind(c: &WriteCommand) -> &'static str {
    match c {
        WriteCommand::Put(_) => "Put",
        WriteCommand::DeleteRange(_) => "DeleteRange",
        WriteCommand::Txn(_) => "Txn",
        WriteCommand::Compact(_) => "Compact",
        WriteCommand::LeaseGrant(_) => "LeaseGrant",
        WriteCommand::LeaseRevoke(_) => "LeaseRevoke",
        WriteCommand::Alarm(_) => "Alarm",
        WriteCommand::Batch(_) => "Batch",
        WriteCommand::Tagged { .. } => "Tagged",
        WriteCommand::Auth(_) => "Auth",
        WriteCommand::AsUser { .. } => "AsUser",
        WriteCommand::AsMember(_) => "AsMember",
    }
}

/// The kinds of peer requests that have a response of the same kind.
const PEER_CALL_KINDS: [&str; 13] = [
    "AppendEntries",
    "Vote",
    "SnapshotChunk",
    "TransferLeader",
    "Write",
    "ReadIndex",
    "LeaseKeepAlive",
    "LeaseTimeToLive",
    "Campaign",
    "Membership",
    "Report",
    "Join",
    "PreVote",
];

/// Every kind of peer request (`ping`: "Ping") or response ("Pong").
fn peer_kinds(ping: &'static str) -> BTreeSet<&'static str> {
    PEER_CALL_KINDS.into_iter().chain([ping]).collect()
}

const COMMAND_KINDS: [&str; 12] = [
    "Put",
    "DeleteRange",
    "Txn",
    "Compact",
    "LeaseGrant",
    "LeaseRevoke",
    "Alarm",
    "Batch",
    "Tagged",
    "Auth",
    "AsUser",
    "AsMember",
];

#[test]
fn log_entries_roundtrip() {
    let entries = entries();
    let kinds: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Normal(cmd) => Some(command_kind(cmd)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(COMMAND_KINDS),
        "a write command kind has no sample"
    );
    for entry in &entries {
        roundtrip(entry);
    }
    roundtrip(&entries);
    roundtrip(&vote());
    for response in write_responses() {
        roundtrip(&Applied(Some(Ok(response))));
    }
    roundtrip(&Applied(Some(Err(KvError::NoSpace))));
    roundtrip(&Applied(None));
}

#[test]
fn peer_requests_roundtrip() {
    let requests = peer_requests();
    let kinds: BTreeSet<&str> = requests.iter().map(request_kind).collect();
    let mut expected = peer_kinds("Ping");
    // Answered by a stream of `StreamAppendAnswer`s, not a response.
    expected.insert("StreamAppend");
    assert_eq!(kinds, expected, "a request kind has no sample");
    for request in &requests {
        roundtrip_without_eq(request);
    }
}

#[test]
fn peer_responses_roundtrip() {
    let responses = peer_responses();
    let kinds: BTreeSet<&str> = responses.iter().map(response_kind).collect();
    assert_eq!(kinds, peer_kinds("Pong"), "a response kind has no sample");
    for response in &responses {
        roundtrip_without_eq(response);
    }
}

/// A type with a field serde skips, to show that each helper catches one.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SkipsAField {
    kept: u64,
    #[serde(skip)]
    skipped: u64,
}

#[test]
#[should_panic(expected = "changed by its encoding")]
fn roundtrip_catches_a_field_serde_skips() {
    roundtrip(&SkipsAField { kept: 1, skipped: 2 });
}

#[test]
#[should_panic(expected = "changed by its encoding")]
fn roundtrip_without_eq_catches_a_field_serde_skips() {
    roundtrip_without_eq(&SkipsAField { kept: 1, skipped: 2 });
}

#[test]
fn replication_stream_answers_roundtrip() {
    let answers: Vec<StreamAppendAnswer> = vec![
        Ok(Ok(Some(log_id(44)))),
        Ok(Ok(None)),
        Ok(Err(StreamAppendError::Conflict(log_id(40)))),
        Ok(Err(StreamAppendError::HigherVote(Vote::new(4, 2)))),
        Err("raft stopped".into()),
    ];
    for answer in &answers {
        roundtrip(answer);
    }
}

/// The Raft log on disk keeps the byte layout openraft 0.9 gave it, so a
/// member upgraded from a release built on openraft 0.9 reads its log:
/// a log id is (term, node id, index) as little-endian u64s, a vote adds a
/// committed flag, and an entry's payload is tagged 0 (blank), 1 (normal)
/// or 2 (membership), as bincode encodes openraft 0.9's types.
#[test]
fn log_records_keep_the_layout_of_openraft_0_9() {
    let le = |v: u64| v.to_le_bytes().to_vec();
    let id = log_id(9);
    assert_eq!(bincode::serialize(&id).unwrap(), [le(3), le(7), le(9)].concat());
    let mut vote_bytes = [le(3), le(7)].concat();
    vote_bytes.push(1);
    assert_eq!(bincode::serialize(&vote()).unwrap(), vote_bytes);
    let blank = Entry {
        log_id: log_id(9),
        payload: EntryPayload::Blank,
    };
    let mut blank_bytes = [le(3), le(7), le(9)].concat();
    blank_bytes.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(bincode::serialize(&blank).unwrap(), blank_bytes);
    let membership = Entry {
        log_id: log_id(9),
        payload: EntryPayload::Membership(membership()),
    };
    let encoded = bincode::serialize(&membership).unwrap();
    assert_eq!(&encoded[24..28], &2u32.to_le_bytes(), "membership is payload variant 2");
    // Then the configurations: a length-prefixed list of sets of ids.
    assert_eq!(&encoded[28..36], &le(2)[..], "two configurations (joint)");
    assert_eq!(&encoded[36..44], &le(3)[..], "three voters in the first");
}
