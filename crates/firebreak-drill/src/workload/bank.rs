//! The bank workload's client task: transfers between accounts in
//! multi-key Txns, and reads of every account at one revision (checked by
//! [`firebreak_check::bank`]).
//!
//! [`ACCOUNTS`] accounts `<prefix>bank/a00`, … hold [`INITIAL_BALANCE`]
//! each. Every client first runs the init Txn until it is acknowledged:
//! it creates all accounts only if none exists, so it is idempotent and
//! race-free however many clients run it. Then, paced: 60 % transfers
//! (read two accounts in one Txn, then one Txn that compares both mod
//! revisions and puts both balances), 40 % reads of every account in one
//! Range (a third of them serializable).
//!
//! # Correctness
//!
//! - A transfer never moves more than the balance it read, and only if
//!   neither account changed since (the Txn's comparison), so no correct
//!   store ever shows a negative balance or another total.
//! - A transfer whose comparison fails is recorded as `fail` with the
//!   store's answer: it certainly did nothing.
//! - Every record follows [`super::recorder`]'s discipline.

use std::sync::Arc;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use firebreak_check::bank::{BankEvent, BankOp, BankResult};
use rand::Rng;

use super::context::{Ctx, Pacer};
use super::endpoints::{back_off, call, complete, kv_of, revision_of, Answer, Endpoints};
use super::recorder::LineRecorder;
use crate::clock::{monotonic_ns, sleep_until_ns};
use crate::error::DrillError;

/// Accounts in the bank.
pub const ACCOUNTS: u32 = 5;
/// Each account's balance at creation.
pub const INITIAL_BALANCE: i64 = 100;
/// Largest amount of one transfer.
const MAX_AMOUNT: i64 = 20;
const SALT: u64 = 0xba4c;

/// The account keys under `prefix`.
pub fn account_keys(prefix: &str) -> Vec<String> {
    (0..ACCOUNTS).map(|i| format!("{prefix}bank/a{i:02}")).collect()
}

/// Records the completion of `event` from `answer`; a transfer whose
/// comparison failed is a `fail` that keeps the store's answer.
fn complete_bank(event: BankEvent, answer: Answer<BankResult>) -> BankEvent {
    match answer {
        Answer::Ok(refused @ BankResult::Transfer { succeeded: false, .. }) => {
            event.fail_with(monotonic_ns(), Some(refused))
        }
        other => complete(event, other),
    }
}

/// Runs the bank workload until the stop instant.
pub async fn run(ctx: Ctx, recorder: Arc<LineRecorder>) -> Result<(), DrillError> {
    let accounts = account_keys(&ctx.prefix);
    let prefix = format!("{}bank/", ctx.prefix);
    let mut rng = ctx.rng(SALT);
    let mut endpoints = Endpoints::new(&ctx.urls, ctx.unary_options());
    sleep_until_ns(ctx.start_ns).await;
    let mut pacer = Pacer::new(ctx.rate);
    let mut initialised = false;
    while pacer.wait(ctx.stop_ns).await {
        let Some(client) = endpoints.client().await else {
            continue;
        };
        let op = if !initialised {
            BankOp::Init {
                accounts: accounts.clone(),
                balance: INITIAL_BALANCE,
            }
        } else if rng.gen_bool(0.6) {
            let a = rng.gen_range(0..accounts.len());
            let b = (a + rng.gen_range(1..accounts.len())) % accounts.len();
            let read = call(ctx.op_timeout, read_two(client.clone(), &accounts[a], &accounts[b])).await;
            let Answer::Ok(((a_bal, a_mod), (b_bal, b_mod), read_revision)) = read else {
                back_off(endpoints.after("bank read", &read)).await;
                continue;
            };
            let ((from, from_balance, from_mod), (to, to_balance, to_mod)) = if a_bal > 0 {
                ((a, a_bal, a_mod), (b, b_bal, b_mod))
            } else {
                ((b, b_bal, b_mod), (a, a_bal, a_mod))
            };
            if from_balance <= 0 {
                continue;
            }
            BankOp::Transfer {
                from: accounts[from].clone(),
                to: accounts[to].clone(),
                amount: rng.gen_range(1..=from_balance.min(MAX_AMOUNT)),
                read_revision,
                from_balance,
                to_balance,
                from_mod_revision: from_mod,
                to_mod_revision: to_mod,
            }
        } else {
            BankOp::Read {
                prefix: prefix.clone(),
                serializable: rng.gen_bool(1.0 / 3.0),
            }
        };
        let event: BankEvent = recorder.invoke(&ctx, op.clone())?;
        let answer = call(ctx.op_timeout, execute(client, &op)).await;
        let pause = endpoints.after("bank", &answer);
        let event = complete_bank(event, answer);
        recorder.record(&event)?;
        if matches!(event.op, BankOp::Init { .. }) && event.outcome == firebreak_check::Outcome::Ok {
            initialised = true;
        }
        back_off(pause).await;
    }
    Ok(())
}

/// Reads two accounts in one Txn: ((balance, mod revision) of each, header
/// revision). A missing or unparsable account reads as balance 0.
async fn read_two(client: Client, a: &str, b: &str) -> Result<((i64, u64), (i64, u64), u64), etcd_client::Error> {
    let txn = Txn::new().and_then([TxnOp::get(a, None), TxnOp::get(b, None)]);
    let resp = client.kv_client().txn(txn).await?;
    let mut read = [(0i64, 0u64); 2];
    for (slot, op) in read.iter_mut().zip(resp.op_responses()) {
        if let TxnOpResponse::Get(get) = op {
            if let Some(kv) = get.kvs().first() {
                let kv = kv_of(kv);
                *slot = (kv.value.parse().unwrap_or(0), kv.mod_revision);
            }
        }
    }
    Ok((read[0], read[1], revision_of(resp.header())))
}

async fn execute(client: Client, op: &BankOp) -> Result<BankResult, etcd_client::Error> {
    let mut kv = client.kv_client();
    match op {
        BankOp::Init { accounts, balance } => {
            let absent: Vec<Compare> = accounts
                .iter()
                .map(|a| Compare::create_revision(a.as_str(), CompareOp::Equal, 0))
                .collect();
            let puts: Vec<TxnOp> = accounts
                .iter()
                .map(|a| TxnOp::put(a.as_str(), balance.to_string(), None))
                .collect();
            let resp = kv.txn(Txn::new().when(absent).and_then(puts)).await?;
            Ok(BankResult::Init {
                created: resp.succeeded(),
                revision: revision_of(resp.header()),
            })
        }
        BankOp::Transfer {
            from,
            to,
            amount,
            from_balance,
            to_balance,
            from_mod_revision,
            to_mod_revision,
            ..
        } => {
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(from.as_str(), CompareOp::Equal, *from_mod_revision as i64),
                    Compare::mod_revision(to.as_str(), CompareOp::Equal, *to_mod_revision as i64),
                ])
                .and_then([
                    TxnOp::put(from.as_str(), (from_balance - amount).to_string(), None),
                    TxnOp::put(to.as_str(), (to_balance + amount).to_string(), None),
                ]);
            let resp = kv.txn(txn).await?;
            Ok(BankResult::Transfer {
                succeeded: resp.succeeded(),
                revision: revision_of(resp.header()),
            })
        }
        BankOp::Read { prefix, serializable } => {
            let mut options = GetOptions::new().with_prefix();
            if *serializable {
                options = options.with_serializable();
            }
            let resp = kv.get(prefix.as_str(), Some(options)).await?;
            Ok(BankResult::Read {
                revision: revision_of(resp.header()),
                kvs: resp.kvs().iter().map(kv_of).collect(),
            })
        }
    }
}
