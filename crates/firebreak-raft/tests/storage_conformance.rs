//! openraft's storage conformance suite, run against Firebreak's redb log
//! and its MVCC state machine: the invariants every `RaftLogStorage` and
//! `RaftStateMachine` must keep (log ids, purges, truncation, membership,
//! snapshots, votes).

use firebreak_raft::log_store::LogStore;
use firebreak_raft::state_machine::StateMachine;
use firebreak_raft::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = LogStore::open(&dir.path().join("raft"), None)?;
        let sm = StateMachine::open(&dir.path().join("snapshot"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn the_storage_passes_openrafts_conformance_suite() {
    Suite::test_all(Builder).unwrap();
}
