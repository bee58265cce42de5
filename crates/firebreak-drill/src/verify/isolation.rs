//! The isolation property: while a datacenter is cut off, its members
//! serve no linearizable result.
//!
//! # Correctness
//!
//! Every workload operation is linearizable (gets are linearizable reads;
//! puts, compare-and-sets and deletes are writes), and each needs a quorum
//! after it arrives: a read index confirmed by a quorum, or a commit. No
//! datacenter holds a quorum (the topology rule), and a client of the cut
//! datacenter can reach only its own members. So an operation of that
//! datacenter's clients that was invoked after the cut was complete and
//! completed `ok` before the heal proves a member answered without a
//! quorum. This complements the linearizability check, which would accept
//! a stale answer that happens to be consistent.

use firebreak_check::{HistoryEvent, Outcome};

use super::final_read::DRILL_CLIENT;

/// Ids of the operations of `dc`'s clients invoked at or after `cut_ns` and
/// completed `ok` before `heal_ns` (times as in the history).
pub fn served_while_cut(events: &[HistoryEvent], dc: &str, cut_ns: u64, heal_ns: u64) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.client != DRILL_CLIENT && e.dc.as_deref() == Some(dc))
        .filter(|e| e.outcome == Outcome::Ok && e.invoke_ns >= cut_ns)
        .filter(|e| e.complete_ns.is_some_and(|t| t < heal_ns))
        .map(|e| e.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_check::{OpResult, Operation};

    #[test]
    fn only_answers_entirely_inside_the_cut_count() {
        let get = |id, dc: &str, at: u64, done: u64| {
            HistoryEvent::invoked(id, 1, Some(dc), Operation::Get { key: "k".into() }, at)
                .ok(done, OpResult::get(None, 1, None))
        };
        let events = vec![
            get(1, "dc1", 90, 105),  // invoked before the cut
            get(2, "dc1", 110, 120), // served while cut
            get(3, "dc2", 110, 120), // another datacenter
            get(4, "dc1", 150, 210), // completed after the heal
            HistoryEvent::invoked(5, 1, Some("dc1"), Operation::Get { key: "k".into() }, 120).unknown(Some(130)),
        ];
        assert_eq!(served_while_cut(&events, "dc1", 100, 200), vec![2]);
    }
}
