//! Every message that crosses the peer transport or the log survives its
//! encoding.

use std::collections::{BTreeMap, BTreeSet};

use firebreak_config::Domains;
use firebreak_mvcc::{PutRequest, WriteCommand};
use firebreak_raft::transport::{PeerRequest, PeerResponse};
use firebreak_raft::types::{Entry, TypeConfig};
use firebreak_raft::Member;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Membership, Vote};

fn roundtrip<T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug>(v: &T) -> T {
    let bytes = bincode::serialize(v).expect("serialize");
    bincode::deserialize(&bytes).unwrap_or_else(|e| panic!("{v:?} does not decode: {e}"))
}

#[test]
fn raft_messages_roundtrip() {
    let log_id = LogId::new(CommittedLeaderId::new(3, 7), 42);
    let entry = Entry {
        log_id,
        payload: EntryPayload::<TypeConfig>::Normal(WriteCommand::Put(PutRequest::default())),
    };
    roundtrip(&entry);
    let vote = Vote::new_committed(3, 7);
    roundtrip(&vote);
    let req = PeerRequest::AppendEntries(AppendEntriesRequest {
        vote,
        prev_log_id: Some(log_id),
        entries: vec![entry],
        leader_commit: Some(log_id),
    });
    roundtrip(&req);
    roundtrip(&PeerRequest::Vote(VoteRequest::new(vote, Some(log_id))));
    roundtrip(&PeerResponse::AppendEntries(Ok(AppendEntriesResponse::Success)));

    // A membership entry carries every member with its failure domains.
    let member = Member {
        name: "a".into(),
        domains: Domains {
            datacenter: "dc1".into(),
            room: Some("r1".into()),
            rack: None,
            host: None,
        },
        ..Default::default()
    };
    let membership = Membership::new(vec![BTreeSet::from([1u64])], BTreeMap::from([(1u64, member)]));
    roundtrip(&Entry {
        log_id,
        payload: EntryPayload::<TypeConfig>::Membership(membership),
    });
}
