//! openraft's storage conformance suite, run against Firebreak's Raft log
//! (append-only segment files with group commit, `wal.rs`) and its MVCC
//! state machine: the invariants every `RaftLogStorage` and
//! `RaftStateMachine` must keep (log ids, purges, truncation, membership,
//! snapshots, votes).

use std::future::Future;

use firebreak_raft::log_store::LogStore;
use firebreak_raft::state_machine::StateMachine;
use firebreak_raft::types::{TypeConfig, Vote};
use openraft::storage::RaftLogStorage;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

/// The id openraft's `Suite` uses for "this node": the votes it saves and
/// the log ids it writes all name node 0.
const SUITE_NODE: u64 = 0;

/// How the stores are opened.
#[derive(Clone, Copy)]
enum Setup {
    /// As `Node::start` opens them.
    Production,
    /// `Production`, plus a saved vote that is committed and names this
    /// node as leader: the log then appends as the leader.
    Leading,
}

struct Builder(Setup);

type FirebreakSuite = Suite<TypeConfig, LogStore, StateMachine, Builder, TempDir>;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let io = |e: std::io::Error| {
            StorageError::from_io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Write, e)
        };
        let mut log = LogStore::open(&dir.path().join("raft"), SUITE_NODE).map_err(io)?;
        let sm = StateMachine::open(&dir.path().join("snapshot")).map_err(io)?;
        if let Setup::Leading = self.0 {
            log.save_vote(&Vote::new_committed(1, SUITE_NODE)).await.map_err(io)?;
        }
        Ok((dir, log, sm))
    }
}

/// The whole suite, on stores opened as `Node::start` opens them, with
/// this node's id set to the suite's node (0).
#[test]
fn the_storage_passes_openrafts_conformance_suite() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(Suite::test_all(Builder(Setup::Production))).unwrap();
}

fn run<F, Fut>(test: F)
where
    F: FnOnce(LogStore, StateMachine) -> Fut,
    Fut: Future<Output = Result<(), std::io::Error>>,
{
    // A fresh runtime per test, as the suite's own runner does.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(async move {
            let (_dir, log, sm) = Builder(Setup::Leading).build().await.map_err(std::io::Error::other)?;
            test(log, sm).await
        })
        .unwrap();
}

/// The suite's log tests (reads, log state, purges, appends) with this
/// node leading a committed term, as a leader's log is written.
#[test]
fn log_tests_pass_while_this_node_leads() {
    run(FirebreakSuite::get_log_entries);
    run(FirebreakSuite::limited_get_log_entries);
    run(FirebreakSuite::try_get_log_entry);
    run(FirebreakSuite::initial_logs);
    run(FirebreakSuite::get_log_state);
    run(FirebreakSuite::get_log_id);
    run(FirebreakSuite::last_id_in_log);
    run(FirebreakSuite::purge_logs_upto_0);
    run(FirebreakSuite::purge_logs_upto_5);
    run(FirebreakSuite::purge_logs_upto_20);
    run(FirebreakSuite::append_to_log);
    run(FirebreakSuite::get_initial_state_log_ids);
}
