//! The locks workload and its checker: two clients never believe they hold
//! the same lock at the same time.
//!
//! A client grants a lease ([`LockOp::Grant`], TTL of a few seconds),
//! keeps it alive ([`LockOp::KeepAlive`], recording each request's send
//! time and the TTL answered), takes a lock with it through etcd's v3lock
//! API ([`LockOp::Lock`]), holds it a little, and unlocks
//! ([`LockOp::Unlock`]) and revokes the lease ([`LockOp::Revoke`]), or
//! sometimes stops the keep-alives and lets the lease lapse instead.
//!
//! [`check_locks`] rebuilds every hold from the clients' own clocks
//! (`CLOCK_MONOTONIC`, shared by every process on the machine) and checks
//! mutual exclusion per lock name.
//!
//! # Correctness
//!
//! A hold is conservative, so that a correct store never shows an overlap:
//!
//! - It starts when the client *received* the Lock response (the store
//!   granted the lock no later).
//! - It ends at the earliest of: the invocation of the client's Unlock of
//!   the lock's key, whatever its outcome (from then on the client no
//!   longer acts as the holder); the invocation of the lease's Revoke; and
//!   the lease's bound: the latest *send* time of a keep-alive answered
//!   with TTL > 0 (or the grant's send time), plus the TTL answered. The
//!   store processed that request no earlier than it was sent, so the
//!   lease, and the lock key attached to it, live at least until then.
//! - Unknown outcomes never create an anomaly: a Lock of unknown outcome is
//!   never held; a keep-alive of unknown outcome (or whose TTL the client
//!   could not see) extends nothing; an Unlock or Revoke ends the hold at
//!   its invocation, which is the earliest it can take effect.
//!
//! Anomaly kind `overlapping_holds`: two holds of the same lock name, with
//! different leases, overlap; reported with both holders' Lock operations
//! and the operations that end each hold (Unlock, Revoke, or the grant or
//! keep-alive that bounds the lease). With no hold at all the verdict is
//! UNKNOWN.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::history::Outcome;
use crate::recorded::Recorded;
use crate::render::format_ns;
use crate::workload_report::{Findings, WorkloadReport};

/// Name of the workload.
pub const LOCKS: &str = "locks";

/// An operation of the locks workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LockOp {
    /// Grant a lease of `ttl` seconds.
    Grant {
        /// TTL asked for, in seconds.
        ttl: i64,
    },
    /// One keep-alive request of `lease` (invoked when sent).
    KeepAlive {
        /// The lease.
        lease: i64,
    },
    /// Lock `name` with `lease` (v3lock `Lock`).
    Lock {
        /// The lock's name.
        name: String,
        /// The lease the lock key is attached to.
        lease: i64,
    },
    /// Release the lock whose key `Lock` returned (v3lock `Unlock`).
    Unlock {
        /// The lock's name.
        name: String,
        /// The key `Lock` returned.
        key: String,
        /// Its lease.
        lease: i64,
    },
    /// Revoke `lease` (which deletes its lock keys).
    Revoke {
        /// The lease.
        lease: i64,
    },
}

/// The store's answer to a [`LockOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LockResult {
    /// The lease granted.
    Grant {
        /// Its id.
        lease: i64,
        /// Its TTL, in seconds (may exceed the one asked for).
        ttl: i64,
        /// Header revision.
        revision: u64,
    },
    /// The keep-alive's answer.
    KeepAlive {
        /// The TTL answered (0: the lease is gone); `None` when the client
        /// library did not show it (the request that opens a stream).
        ttl: Option<i64>,
    },
    /// The lock acquired.
    Lock {
        /// The lock key (`name/<lease in hex>`).
        key: String,
        /// Header revision.
        revision: u64,
    },
    /// The lock released.
    Unlock {
        /// Header revision.
        revision: u64,
    },
    /// The lease revoked.
    Revoke {
        /// Header revision.
        revision: u64,
    },
}

/// One recorded operation of the locks workload.
pub type LockEvent = Recorded<LockOp, LockResult>;

const OVERLAPPING_HOLDS: &str = "overlapping_holds";

/// One conservative hold of a lock.
#[derive(Debug)]
struct Hold<'a> {
    name: &'a str,
    lease: i64,
    client: u64,
    lock: &'a LockEvent,
    start: u64,
    end: u64,
    /// The operation that ends the hold and why.
    ended_by: (&'a LockEvent, &'static str),
}

fn extend<'a>(bounds: &mut HashMap<i64, (u64, &'a LockEvent)>, lease: i64, until: u64, e: &'a LockEvent) {
    let entry = bounds.entry(lease).or_insert((until, e));
    if until > entry.0 {
        *entry = (until, e);
    }
}

/// What the history says about each lease: the last instant it certainly
/// lives until, and the operation that says so.
fn lease_bounds(events: &[LockEvent]) -> HashMap<i64, (u64, &LockEvent)> {
    let mut bounds = HashMap::new();
    // Grants first, so that a keep-alive never creates a lease alone.
    for e in events {
        if let Some(LockResult::Grant { lease, ttl, .. }) = e.ok_result() {
            if *ttl > 0 {
                extend(&mut bounds, *lease, e.invoke_ns + *ttl as u64 * 1_000_000_000, e);
            }
        }
    }
    for e in events {
        if let (LockOp::KeepAlive { lease }, Some(LockResult::KeepAlive { ttl: Some(ttl) })) = (&e.op, e.ok_result()) {
            if *ttl > 0 && bounds.contains_key(lease) {
                extend(&mut bounds, *lease, e.invoke_ns + *ttl as u64 * 1_000_000_000, e);
            }
        }
    }
    bounds
}

fn holds<'a>(events: &'a [LockEvent], found: &mut Findings) -> Vec<Hold<'a>> {
    let bounds = lease_bounds(events);
    let mut out = Vec::new();
    for e in events {
        let (LockOp::Lock { name, lease }, Some(LockResult::Lock { key, .. })) = (&e.op, e.ok_result()) else {
            continue;
        };
        let Some(start) = e.complete_ns else { continue };
        let Some(&(bound, bound_op)) = bounds.get(lease) else {
            found.warnings.push(format!(
                "lock #{} uses lease {lease:x}, whose grant was not acknowledged",
                e.id
            ));
            continue;
        };
        let mut ended_by = (bound_op, "its lease's bound");
        let mut end = bound;
        for other in events
            .iter()
            .filter(|o| o.client == e.client && o.invoke_ns >= e.invoke_ns)
        {
            let why = match &other.op {
                LockOp::Unlock { key: k, .. } if k == key => "its unlock",
                LockOp::Revoke { lease: l } if l == lease => "its lease's revoke",
                _ => continue,
            };
            if other.invoke_ns < end {
                end = other.invoke_ns;
                ended_by = (other, why);
            }
        }
        if end <= start {
            found.count("holds_empty", 1);
            continue;
        }
        found.count("holds", 1);
        found.count("held_ms", (end - start) / 1_000_000);
        out.push(Hold {
            name,
            lease: *lease,
            client: e.client,
            lock: e,
            start,
            end,
            ended_by,
        });
    }
    out
}

/// Checks a merged locks history for mutual exclusion. See the module
/// documentation for the rules.
pub fn check_locks(events: &[LockEvent]) -> WorkloadReport {
    let mut found = Findings::default();
    for e in events {
        let kind = match e.op {
            LockOp::Grant { .. } => "grant",
            LockOp::KeepAlive { .. } => "keep_alive",
            LockOp::Lock { .. } => "lock",
            LockOp::Unlock { .. } => "unlock",
            LockOp::Revoke { .. } => "revoke",
        };
        let outcome = match e.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        found.count(&format!("{kind}_{outcome}"), 1);
    }
    let all = holds(events, &mut found);
    let mut by_name: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for hold in &all {
        by_name.entry(hold.name).or_default().push(hold);
    }
    for holds in by_name.values_mut() {
        holds.sort_by_key(|h| (h.start, h.lock.id));
        // Sweep: every hold still running when the next one starts.
        let mut running: Vec<&Hold> = Vec::new();
        for b in holds.iter() {
            running.retain(|a| a.end > b.start);
            for a in &running {
                if a.lease == b.lease {
                    continue;
                }
                let overlap_ms = (a.end.min(b.end) - b.start) as f64 / 1e6;
                found.anomaly(
                    OVERLAPPING_HOLDS,
                    format!(
                        "lock {}: client {} held it from {} to {} (lock #{}, until {} #{}) and client {} from {} to {} \
                         (lock #{}, until {} #{}): {overlap_ms:.1} ms together",
                        a.name,
                        a.client,
                        format_ns(a.start),
                        format_ns(a.end),
                        a.lock.id,
                        a.ended_by.1,
                        a.ended_by.0.id,
                        b.client,
                        format_ns(b.start),
                        format_ns(b.end),
                        b.lock.id,
                        b.ended_by.1,
                        b.ended_by.0.id
                    ),
                    vec![
                        a.lock.to_value(),
                        a.ended_by.0.to_value(),
                        b.lock.to_value(),
                        b.ended_by.0.to_value(),
                    ],
                );
            }
            running.push(b);
        }
    }
    let detail = format!(
        "{} holds of {} lock names ({} ms held in all; {} locks acquired, {} unknown, {} failed), {} keep-alives \
         answered; {} overlapping",
        found.get("holds"),
        by_name.len(),
        found.get("held_ms"),
        found.get("lock_ok"),
        found.get("lock_unknown"),
        found.get("lock_fail"),
        found.get("keep_alive_ok"),
        found.found()
    );
    let undecided = (found.get("holds") == 0).then(|| "no lock was held".to_owned());
    found.finish(LOCKS, detail, undecided)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;

    const MS: u64 = 1_000_000;

    #[derive(Default)]
    struct H(Vec<LockEvent>);

    impl H {
        fn push(&mut self, client: u64, op: LockOp, t: (u64, Option<u64>), result: Option<LockResult>) -> u64 {
            let id = self.0.len() as u64 + 1;
            let e = LockEvent::invoked(id, client, None, op, t.0 * MS);
            self.0.push(match (t.1, result) {
                (Some(done), Some(r)) => e.ok(done * MS, r),
                (done, _) => e.unknown(done.map(|d| d * MS)),
            });
            id
        }
        fn grant(&mut self, client: u64, lease: i64, ttl: i64, t: (u64, u64)) {
            let r = LockResult::Grant {
                lease,
                ttl,
                revision: 1,
            };
            self.push(client, LockOp::Grant { ttl }, (t.0, Some(t.1)), Some(r));
        }
        fn keep_alive(&mut self, client: u64, lease: i64, t: (u64, u64), ttl: Option<i64>) {
            let r = LockResult::KeepAlive { ttl };
            self.push(client, LockOp::KeepAlive { lease }, (t.0, Some(t.1)), Some(r));
        }
        fn lock(&mut self, client: u64, lease: i64, t: (u64, Option<u64>)) {
            let op = LockOp::Lock {
                name: "L".into(),
                lease,
            };
            let r = LockResult::Lock {
                key: format!("L/{lease:x}"),
                revision: 2,
            };
            self.push(client, op, t, Some(r));
        }
        fn unlock(&mut self, client: u64, lease: i64, t: (u64, Option<u64>)) {
            let op = LockOp::Unlock {
                name: "L".into(),
                key: format!("L/{lease:x}"),
                lease,
            };
            self.push(client, op, t, Some(LockResult::Unlock { revision: 3 }));
        }
    }

    /// Client 1 holds L from 100 ms to 500 ms (unlock); client 2 waits and
    /// holds it from 520 ms; client 3 lets its lease lapse (TTL 1 s from
    /// its last keep-alive at 2000 ms) and client 4 takes L at 3100 ms.
    fn healthy() -> H {
        let mut h = H::default();
        h.grant(1, 0xa, 2, (0, 10));
        h.lock(1, 0xa, (20, Some(100)));
        h.grant(2, 0xb, 2, (0, 10));
        h.lock(2, 0xb, (30, Some(520)));
        h.unlock(1, 0xa, (500, Some(510)));
        h.unlock(2, 0xb, (700, Some(710)));
        h.grant(3, 0xc, 1, (800, 810));
        h.lock(3, 0xc, (820, Some(830)));
        h.keep_alive(3, 0xc, (1200, 1210), Some(1));
        h.keep_alive(3, 0xc, (1210, 1220), None);
        h.keep_alive(3, 0xc, (2000, 2010), Some(1));
        h.grant(4, 0xd, 5, (900, 910));
        h.lock(4, 0xd, (920, Some(3100)));
        // A lock of unknown outcome is never held.
        h.grant(5, 0xe, 5, (900, 910));
        h.lock(5, 0xe, (920, None));
        h
    }

    #[test]
    fn exclusive_holds_pass() {
        let report = check_locks(&healthy().0);
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        assert_eq!(report.counts["holds"], 4);
        assert_eq!(report.counts["lock_unknown"], 1);
    }

    #[test]
    fn overlapping_holds_are_reported_with_both_holders() {
        let mut h = healthy();
        // Client 6 takes L while client 4 holds it.
        h.grant(6, 0xf, 5, (3000, 3010));
        h.lock(6, 0xf, (3020, Some(3200)));
        h.unlock(6, 0xf, (3300, None));
        // Client 7's last answered keep-alive (sent at 1900 ms, TTL 1 s)
        // bounds its hold at 2900 ms, after client 3's lease ended, but it
        // took L while client 3 still held it.
        h.grant(7, 0x7, 1, (1000, 1010));
        h.keep_alive(7, 0x7, (1900, 1905), Some(1));
        h.lock(7, 0x7, (1020, Some(2500)));
        let report = check_locks(&h.0);
        assert_eq!(report.verdict, Verdict::Fail);
        assert_eq!(report.anomalies.len(), 2, "{:#?}", report.anomalies);
        let first = &report.anomalies[0];
        assert_eq!(first.kind, OVERLAPPING_HOLDS);
        assert!(
            first.message.contains("client 3 held it from 0.830s to 3.000s"),
            "{}",
            first.message
        );
        assert!(
            first.message.contains("client 7 from 2.500s to 2.900s"),
            "{}",
            first.message
        );
        // Both locks and what ends each hold (client 3's last keep-alive, client 7's).
        let ids: Vec<u64> = first.ops.iter().map(|o| o["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, [8, 11, 21, 20]);
        let second = &report.anomalies[1];
        assert!(
            second.message.contains("client 4") && second.message.contains("client 6"),
            "{}",
            second.message
        );
        assert!(second.message.contains("until its unlock"), "{}", second.message);
    }

    #[test]
    fn unknown_outcomes_never_make_an_overlap() {
        let mut h = H::default();
        h.grant(1, 0xa, 5, (0, 10));
        h.lock(1, 0xa, (20, Some(100)));
        // An unlock that timed out still ends the hold at its invocation.
        h.unlock(1, 0xa, (200, Some(1200)));
        h.0.last_mut().unwrap().outcome = Outcome::Unknown;
        h.grant(2, 0xb, 5, (0, 10));
        h.lock(2, 0xb, (30, Some(300)));
        h.unlock(2, 0xb, (400, Some(410)));
        // A keep-alive of unknown outcome extends nothing: client 3's hold
        // ends at 1000 ms (grant at 0 + 1 s), before client 4's starts.
        h.grant(3, 0xc, 1, (0, 10));
        h.keep_alive(3, 0xc, (450, 455), Some(5));
        h.0.last_mut().unwrap().outcome = Outcome::Unknown;
        h.lock(3, 0xc, (20, Some(500)));
        h.grant(4, 0xd, 5, (0, 10));
        h.lock(4, 0xd, (30, Some(1010)));
        let report = check_locks(&h.0);
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        assert_eq!(report.counts["holds"], 4);
        // Counting that keep-alive would overlap: the rule is what passes.
        h.0[7].outcome = Outcome::Ok;
        assert_eq!(check_locks(&h.0).verdict, Verdict::Fail);
        assert_eq!(check_locks(&[]).verdict, Verdict::Unknown);
    }
}
