//! The bank workload and its checker: multi-key transactions must keep a
//! total.
//!
//! N accounts (`drill/bank/a00`, …) are created once, atomically, each
//! with the same balance ([`BankOp::Init`]: one Txn that creates them all
//! only if none exists, so any number of clients may run it, any number of
//! times). Clients then move amounts between two accounts
//! ([`BankOp::Transfer`]: read both, then one Txn that compares both
//! accounts' mod revisions with what was read and puts both new balances;
//! a failed comparison is a clean `fail`) and read every account in one
//! Range at one revision ([`BankOp::Read`]).
//!
//! [`check_bank`] judges the reads, and, given the store's history, every
//! revision of the store.
//!
//! # Correctness
//!
//! Anomaly kinds (each read is reported once, under the first kind that
//! applies, with every problem in its message, its revision, and the
//! transfers around it: the last two acknowledged before its revision, the
//! first two after, and transfers of unknown outcome running at the time):
//!
//! - `missing_account`: a read shows some accounts but not all, or none at
//!   a revision at which they are known to exist (an acknowledged `init`
//!   at or below it). Creation is one Txn, so no correct read shows part.
//! - `invalid_balance`: a balance that is not an integer.
//! - `negative_balance`: a balance below zero (a transfer never takes more
//!   than the balance it read, and the Txn's comparison ensures that
//!   balance is still current).
//! - `wrong_total`: every account present, but the sum differs from
//!   `accounts × initial balance`.
//! - `unexpected_account`: a key under the accounts' prefix that is not an
//!   account.
//! - `store_invalid`: with the store's history, a revision at which the
//!   store itself held a partial set of accounts, a negative balance or the
//!   wrong total (a Txn applied in part), reported once per run of bad
//!   revisions.
//!
//! A read that sees no account at a revision below every acknowledged
//! `init` is fine (a stale serializable read from before the creation).
//! Operations with an unknown outcome are never judged; only `ok` reads
//! are. With no `init` recorded, the total is unknown and the verdict is
//! UNKNOWN.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::history::Outcome;
use crate::recorded::Recorded;
use crate::store_log::{Kv, StoreLog};
use crate::workload_report::{Findings, WorkloadReport};

/// Name of the workload.
pub const BANK: &str = "bank";

/// An operation of the bank workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BankOp {
    /// Create every account with `balance`, in one Txn, unless any exists.
    Init {
        /// The account keys.
        accounts: Vec<String>,
        /// Each account's initial balance.
        balance: i64,
    },
    /// Move `amount` from `from` to `to`, if neither account changed since
    /// it was read at `read_revision`.
    Transfer {
        /// Account debited.
        from: String,
        /// Account credited.
        to: String,
        /// Amount moved (positive).
        amount: i64,
        /// Header revision of the read of both accounts.
        read_revision: u64,
        /// `from`'s balance as read.
        from_balance: i64,
        /// `to`'s balance as read.
        to_balance: i64,
        /// `from`'s mod revision as read (compared by the Txn).
        from_mod_revision: u64,
        /// `to`'s mod revision as read (compared by the Txn).
        to_mod_revision: u64,
    },
    /// Read every account in one Range over `prefix`.
    Read {
        /// The accounts' prefix.
        prefix: String,
        /// Whether the Range was serializable (served by any member,
        /// possibly stale) rather than linearizable.
        serializable: bool,
    },
}

/// The store's answer to a [`BankOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BankResult {
    /// The init Txn: `created` if this one created the accounts.
    Init {
        /// Whether the comparison held (no account existed).
        created: bool,
        /// Header revision (the creation's, if `created`).
        revision: u64,
    },
    /// The transfer Txn.
    Transfer {
        /// Whether both comparisons held and both puts happened.
        succeeded: bool,
        /// Header revision (the transfer's, if `succeeded`).
        revision: u64,
    },
    /// The Range.
    Read {
        /// Header revision: the revision the read saw.
        revision: u64,
        /// The keys returned.
        kvs: Vec<Kv>,
    },
}

/// One recorded bank operation.
pub type BankEvent = Recorded<BankOp, BankResult>;

const MISSING_ACCOUNT: &str = "missing_account";
const INVALID_BALANCE: &str = "invalid_balance";
const NEGATIVE_BALANCE: &str = "negative_balance";
const WRONG_TOTAL: &str = "wrong_total";
const UNEXPECTED_ACCOUNT: &str = "unexpected_account";
const STORE_INVALID: &str = "store_invalid";

/// What the accounts look like in one read (or one store revision).
#[derive(Debug, Default)]
struct Audit {
    missing: Vec<String>,
    unexpected: Vec<String>,
    invalid: Vec<String>,
    negative: Vec<String>,
    total: i64,
    present: usize,
}

impl Audit {
    fn of<'a>(accounts: &BTreeSet<String>, kvs: impl Iterator<Item = (&'a str, &'a str)>) -> Audit {
        let mut audit = Audit::default();
        let mut seen = BTreeSet::new();
        for (key, value) in kvs {
            if !accounts.contains(key) {
                audit.unexpected.push(key.to_owned());
                continue;
            }
            seen.insert(key.to_owned());
            audit.present += 1;
            match value.trim().parse::<i64>() {
                Ok(balance) => {
                    audit.total += balance;
                    if balance < 0 {
                        audit.negative.push(format!("{key}={balance}"));
                    }
                }
                Err(_) => audit.invalid.push(format!("{key}={value:?}")),
            }
        }
        audit.missing = accounts.difference(&seen).cloned().collect();
        audit
    }

    /// The first kind that applies and every problem, or `None` if the
    /// accounts are consistent with `total`.
    fn problems(&self, total: i64) -> Option<(&'static str, Vec<String>)> {
        let mut kinds = Vec::new();
        let mut what = Vec::new();
        if !self.missing.is_empty() {
            kinds.push(MISSING_ACCOUNT);
            what.push(format!("missing {}", self.missing.join(", ")));
        }
        if !self.invalid.is_empty() {
            kinds.push(INVALID_BALANCE);
            what.push(format!("not a balance: {}", self.invalid.join(", ")));
        }
        if !self.negative.is_empty() {
            kinds.push(NEGATIVE_BALANCE);
            what.push(format!("negative: {}", self.negative.join(", ")));
        }
        if self.missing.is_empty() && self.invalid.is_empty() && self.total != total {
            kinds.push(WRONG_TOTAL);
            what.push(format!("total {} instead of {total}", self.total));
        }
        if !self.unexpected.is_empty() {
            kinds.push(UNEXPECTED_ACCOUNT);
            what.push(format!("unexpected keys {}", self.unexpected.join(", ")));
        }
        kinds.first().map(|k| (*k, what))
    }
}

fn short(kvs: &[Kv]) -> String {
    kvs.iter()
        .map(|kv| format!("{}={}", kv.key.rsplit('/').next().unwrap_or(&kv.key), kv.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The transfers around revision `rev` and the real-time interval
/// `[from, to]`: the last two acknowledged at or below `rev`, the first
/// two above, and up to three of unknown outcome overlapping the interval.
fn transfers_around(events: &[BankEvent], rev: u64, from: u64, to: u64) -> Vec<serde_json::Value> {
    let mut acked: Vec<(u64, &BankEvent)> = events
        .iter()
        .filter_map(|e| match (&e.op, e.ok_result()) {
            (
                BankOp::Transfer { .. },
                Some(BankResult::Transfer {
                    succeeded: true,
                    revision,
                }),
            ) => Some((*revision, e)),
            _ => None,
        })
        .collect();
    acked.sort_by_key(|(r, e)| (*r, e.id));
    let split = acked.partition_point(|(r, _)| *r <= rev);
    let mut out: Vec<serde_json::Value> = acked[split.saturating_sub(2)..split]
        .iter()
        .chain(acked[split..].iter().take(2))
        .map(|(_, e)| e.to_value())
        .collect();
    out.extend(
        events
            .iter()
            .filter(|e| {
                matches!(e.op, BankOp::Transfer { .. }) && e.outcome == Outcome::Unknown && e.overlaps(from, to)
            })
            .take(3)
            .map(BankEvent::to_value),
    );
    out
}

/// Checks a merged bank history (and, if given, the store's history of the
/// accounts). See the module documentation for the rules.
pub fn check_bank(events: &[BankEvent], store: Option<&StoreLog>) -> WorkloadReport {
    let mut found = Findings::default();
    for e in events {
        let kind = match e.op {
            BankOp::Init { .. } => "init",
            BankOp::Transfer { .. } => "transfer",
            BankOp::Read { .. } => "read",
        };
        let outcome = match e.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        found.count(&format!("{kind}_{outcome}"), 1);
    }
    let Some((accounts, balance)) = events.iter().find_map(|e| match &e.op {
        BankOp::Init { accounts, balance } => Some((accounts.clone(), *balance)),
        _ => None,
    }) else {
        let detail = format!("{} bank operations and no initialisation", events.len());
        return found.finish(
            BANK,
            detail,
            Some("no init recorded: the expected total is unknown".into()),
        );
    };
    for e in events {
        if let BankOp::Init {
            accounts: a,
            balance: b,
        } = &e.op
        {
            if *a != accounts || *b != balance {
                found.warnings.push(format!(
                    "op #{}: an init with other accounts or balance (ignored)",
                    e.id
                ));
            }
        }
    }
    let total = balance * accounts.len() as i64;
    let account_set: BTreeSet<String> = accounts.iter().cloned().collect();
    // The lowest revision at which the accounts are known to exist.
    let mut exists_by = events
        .iter()
        .filter_map(|e| match e.ok_result() {
            Some(BankResult::Init { revision, .. }) => Some(*revision),
            _ => None,
        })
        .min();

    if let Some(store) = store.filter(|s| accounts.iter().all(|a| s.covers(a))) {
        let created = check_store(events, store, &account_set, total, &mut found);
        exists_by = match (exists_by, created) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    for e in events {
        match (&e.op, e.ok_result()) {
            (BankOp::Read { serializable, .. }, Some(BankResult::Read { revision, kvs })) => {
                let audit = Audit::of(&account_set, kvs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())));
                if audit.present == 0 && audit.unexpected.is_empty() {
                    match exists_by {
                        Some(by) if *revision >= by => {}
                        Some(_) => {
                            found.count("reads_before_creation", 1);
                            continue;
                        }
                        None => {
                            found.count("reads_unverifiable", 1);
                            continue;
                        }
                    }
                }
                found.count("reads_checked", 1);
                if let Some((kind, what)) = audit.problems(total) {
                    let mut ops = vec![e.to_value()];
                    ops.extend(transfers_around(
                        events,
                        *revision,
                        e.invoke_ns,
                        e.complete_ns.unwrap_or(e.invoke_ns),
                    ));
                    found.anomaly(
                        kind,
                        format!(
                            "read #{} (client {}, {}) at revision {revision} saw [{}]: {}",
                            e.id,
                            e.client,
                            if *serializable { "serializable" } else { "linearizable" },
                            short(kvs),
                            what.join("; ")
                        ),
                        ops,
                    );
                }
            }
            (
                BankOp::Transfer {
                    from,
                    to,
                    from_balance,
                    to_balance,
                    read_revision,
                    ..
                },
                _,
            ) if (*from_balance < 0 || *to_balance < 0) => {
                found.anomaly(
                    NEGATIVE_BALANCE,
                    format!(
                        "transfer #{} (client {}) read {from}={from_balance} and {to}={to_balance} at revision \
                         {read_revision}",
                        e.id, e.client
                    ),
                    std::iter::once(e.to_value())
                        .chain(transfers_around(events, *read_revision, e.invoke_ns, e.invoke_ns))
                        .collect(),
                );
            }
            _ => {}
        }
    }

    let reads_ok = found.get("read_ok");
    let detail = format!(
        "{} accounts, total {total}: {} of {reads_ok} ok reads checked, {} transfers acknowledged ({} refused by \
         their comparison, {} unknown){}{}",
        accounts.len(),
        found.get("reads_checked"),
        events
            .iter()
            .filter(|e| matches!(e.ok_result(), Some(BankResult::Transfer { succeeded: true, .. })))
            .count(),
        found.get("transfer_fail"),
        found.get("transfer_unknown"),
        if found.get("store_revisions_checked") > 0 {
            format!("; {} store revisions checked", found.get("store_revisions_checked"))
        } else {
            String::new()
        },
        found.anomalies_suffix()
    );
    let undecided = if found.get("reads_unverifiable") > 0 {
        Some(format!(
            "{} reads saw no account and no init says whether the accounts existed then",
            found.get("reads_unverifiable")
        ))
    } else if found.get("reads_checked") == 0 {
        Some("no read of the accounts completed".into())
    } else {
        None
    };
    found.finish(BANK, detail, undecided)
}

/// Checks every revision of the store: once an account exists, all do, and
/// they hold the total with no negative balance. Returns the revision at
/// which the accounts first appear.
fn check_store(
    events: &[BankEvent],
    store: &StoreLog,
    accounts: &BTreeSet<String>,
    total: i64,
    found: &mut Findings,
) -> Option<u64> {
    let mut replay = store.replay();
    let mut created = None;
    let mut bad_run: Option<String> = None;
    for rev in 2..=store.final_revision {
        let Some(state) = replay.state_at(rev) else {
            found.count("store_revisions_unverifiable", store.final_revision - rev + 1);
            break;
        };
        let audit = Audit::of(
            accounts,
            accounts
                .iter()
                .filter_map(|a| state.get(a))
                .map(|kv| (kv.key.as_str(), kv.value.as_str())),
        );
        if audit.present == 0 && created.is_none() {
            continue;
        }
        created.get_or_insert(rev);
        found.count("store_revisions_checked", 1);
        match audit.problems(total) {
            None => bad_run = None,
            Some((_, what)) => {
                let what = what.join("; ");
                if bad_run.as_deref() == Some(what.as_str()) {
                    continue;
                }
                let changes = store
                    .changes_at(rev)
                    .map(|c| c.iter().map(|c| c.describe()).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                let ops = events
                    .iter()
                    .filter(|e| match e.ok_result() {
                        Some(BankResult::Transfer { revision, .. }) | Some(BankResult::Init { revision, .. }) => {
                            revision.abs_diff(rev) <= 1
                        }
                        _ => false,
                    })
                    .map(BankEvent::to_value)
                    .collect();
                found.anomaly(
                    STORE_INVALID,
                    format!("from revision {rev} ({changes}) the store's accounts are wrong: {what}"),
                    ops,
                );
                bad_run = Some(what);
            }
        }
    }
    created
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;
    use crate::store_log::KeyChange;

    const MS: u64 = 1_000_000;

    fn accounts() -> Vec<String> {
        (0..3).map(|i| format!("b/a{i:02}")).collect()
    }

    struct H(Vec<BankEvent>);

    impl H {
        fn push(&mut self, client: u64, op: BankOp, t: (u64, u64), outcome: Outcome, result: Option<BankResult>) {
            let e = BankEvent::invoked(self.0.len() as u64 + 1, client, None, op, t.0 * MS);
            self.0.push(match (outcome, result) {
                (Outcome::Ok, Some(r)) => e.ok(t.1 * MS, r),
                (Outcome::Fail, r) => e.fail_with(t.1 * MS, r),
                _ => e.unknown(None),
            });
        }
        fn init(&mut self, client: u64, t: (u64, u64), created: bool, revision: u64) {
            let op = BankOp::Init {
                accounts: accounts(),
                balance: 10,
            };
            self.push(client, op, t, Outcome::Ok, Some(BankResult::Init { created, revision }));
        }
        fn transfer(&mut self, client: u64, t: (u64, u64), outcome: Outcome, succeeded: bool, revision: u64) {
            let op = BankOp::Transfer {
                from: "b/a00".into(),
                to: "b/a01".into(),
                amount: 3,
                read_revision: revision.saturating_sub(1),
                from_balance: 10,
                to_balance: 10,
                from_mod_revision: 2,
                to_mod_revision: 2,
            };
            let result = BankResult::Transfer { succeeded, revision };
            self.push(client, op, t, outcome, Some(result));
        }
        fn read(&mut self, client: u64, t: (u64, u64), serializable: bool, revision: u64, values: &[(&str, &str)]) {
            let kvs = values
                .iter()
                .map(|(k, v)| Kv {
                    key: format!("b/{k}"),
                    value: v.to_string(),
                    mod_revision: revision,
                    create_revision: 2,
                })
                .collect();
            let op = BankOp::Read {
                prefix: "b/".into(),
                serializable,
            };
            self.push(client, op, t, Outcome::Ok, Some(BankResult::Read { revision, kvs }));
        }
    }

    fn healthy() -> H {
        let mut h = H(Vec::new());
        h.init(1, (0, 1), true, 2);
        h.init(2, (0, 2), false, 2);
        h.transfer(1, (3, 4), Outcome::Ok, true, 3);
        h.transfer(2, (3, 5), Outcome::Fail, false, 3);
        h.transfer(2, (6, 7), Outcome::Unknown, false, 0);
        h.read(1, (5, 6), false, 3, &[("a00", "7"), ("a01", "13"), ("a02", "10")]);
        // A stale serializable read from before the creation sees nothing.
        h.read(2, (8, 9), true, 1, &[]);
        h
    }

    fn store() -> StoreLog {
        let put = |k: &str, v: &str| KeyChange::put(format!("b/{k}"), v);
        StoreLog::from_changes(
            "b/",
            [
                (2, vec![put("a00", "10"), put("a01", "10"), put("a02", "10")]),
                (3, vec![put("a00", "7"), put("a01", "13")]),
            ],
        )
    }

    fn kinds(report: &WorkloadReport) -> Vec<&str> {
        report.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_healthy_history_passes() {
        let report = check_bank(&healthy().0, Some(&store()));
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        assert_eq!(report.counts["reads_checked"], 1);
        assert_eq!(report.counts["reads_before_creation"], 1);
        assert_eq!(report.counts["store_revisions_checked"], 2);
        assert_eq!(check_bank(&healthy().0, None).verdict, Verdict::Pass);
    }

    #[test]
    fn bad_reads_are_reported_with_the_transfers_around_them() {
        let mut h = healthy();
        h.read(1, (10, 11), false, 3, &[("a00", "7"), ("a01", "10"), ("a02", "10")]);
        h.read(2, (10, 11), false, 3, &[("a00", "7"), ("a01", "13")]);
        h.read(3, (10, 11), false, 3, &[("a00", "-1"), ("a01", "21"), ("a02", "10")]);
        h.read(3, (12, 13), true, 3, &[("a00", "x"), ("a01", "13"), ("a02", "10")]);
        h.read(
            3,
            (12, 13),
            true,
            3,
            &[("a00", "7"), ("a01", "13"), ("a02", "10"), ("zz", "1")],
        );
        // Nothing at a revision where the accounts are known to exist.
        h.read(3, (14, 15), false, 4, &[]);
        let report = check_bank(&h.0, None);
        assert_eq!(report.verdict, Verdict::Fail);
        assert_eq!(
            kinds(&report),
            [
                WRONG_TOTAL,
                MISSING_ACCOUNT,
                NEGATIVE_BALANCE,
                INVALID_BALANCE,
                UNEXPECTED_ACCOUNT,
                MISSING_ACCOUNT
            ]
        );
        let first = &report.anomalies[0];
        assert!(first.message.contains("revision 3"), "{}", first.message);
        assert!(first.message.contains("total 27 instead of 30"), "{}", first.message);
        // The read itself, the acknowledged transfer at revision 3, and the unknown one running then.
        let ids: Vec<u64> = first.ops.iter().map(|o| o["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, [8, 3, 5]);
        assert!(report.detail.contains("wrong_total: 1"), "{}", report.detail);
    }

    #[test]
    fn a_store_that_applied_half_a_transfer_fails() {
        let mut log = store();
        log.revisions.insert(3, vec![KeyChange::put("b/a00", "7")]);
        let report = check_bank(&healthy().0, Some(&log));
        assert_eq!(kinds(&report), [STORE_INVALID]);
        assert!(
            report.anomalies[0].message.contains("from revision 3"),
            "{:?}",
            report.anomalies
        );
        assert_eq!(
            report.anomalies[0].ops.len(),
            3,
            "the transfers at revisions 2 to 4 and the init"
        );
    }

    #[test]
    fn without_init_or_reads_the_verdict_is_unknown() {
        let mut h = H(Vec::new());
        h.transfer(1, (1, 2), Outcome::Ok, true, 3);
        assert_eq!(check_bank(&h.0, None).verdict, Verdict::Unknown);
        let mut h = H(Vec::new());
        h.init(1, (0, 1), true, 2);
        assert_eq!(check_bank(&h.0, None).verdict, Verdict::Unknown);
    }
}
