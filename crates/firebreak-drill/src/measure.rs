//! What the clients experienced, computed from the history alone: recovery
//! time (RTO) per client, unavailability and errors per datacenter,
//! throughput and latency before, during and after the fault, and time
//! series for the report's plots. Pure functions, no I/O.
//!
//! Times are nanoseconds since the load started, as in `history.jsonl`.
//!
//! # Correctness
//!
//! - A client's RTO counts only operations *invoked* at or after the fault,
//!   so a request that the old leader committed just before dying cannot
//!   make recovery look instant. A write is a put, delete or
//!   compare-and-set answered `ok`; a read is a linearizable get answered
//!   `ok`.
//! - The headline `rto_ms` is the worst RTO over the clients of the
//!   datacenters that were not faulted (a client that invoked nothing after
//!   the fault, killed by an earlier one, does not count); it is `null` when one of them never
//!   recovered (listed in `unrecovered_clients`), never a flattering number.

use std::collections::BTreeMap;

use firebreak_check::{HistoryEvent, Operation, Outcome};
use serde::Serialize;

use crate::verify::final_read::DRILL_CLIENT;

/// The drill's timeline, in nanoseconds since the load started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The fault began.
    pub fault_ns: u64,
    /// Every action of the fault was applied.
    pub fault_done_ns: u64,
    /// The datacenter came back, if it did during the load.
    pub restore_ns: Option<u64>,
    /// The load ended.
    pub end_ns: u64,
}

/// Recovery of one client of a surviving datacenter.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientRto {
    /// Client number.
    pub client: u64,
    /// Its datacenter.
    pub dc: String,
    /// Fault → first successful write invoked after it, ms.
    pub write_ms: Option<f64>,
    /// Fault → first successful linearizable read invoked after it, ms.
    pub read_ms: Option<f64>,
}

/// RTO as clients saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Rto {
    /// The headline: the worst of `write_ms` and `read_ms` (see the module docs).
    pub rto_ms: Option<f64>,
    /// Worst fault → first successful write.
    pub write_ms: Option<f64>,
    /// Worst fault → first successful linearizable read.
    pub read_ms: Option<f64>,
    /// Per client of the surviving datacenters.
    pub clients: Vec<ClientRto>,
    /// Surviving clients with no successful write or read after the fault.
    pub unrecovered_clients: Vec<u64>,
}

/// Counts and latency over a set of operations.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Stats {
    /// Operations answered `ok`.
    pub ok: u64,
    /// Operations that certainly failed.
    pub fail: u64,
    /// Operations with an unknown outcome.
    pub unknown: u64,
    /// `ok` operations per second.
    pub throughput_ops_s: f64,
    /// Median latency of `ok` operations, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of `ok` operations, ms.
    pub p99_ms: Option<f64>,
}

/// One phase of the drill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Phase {
    /// `before`, `during` or `after` the fault.
    pub name: String,
    /// Start, seconds.
    pub from_s: f64,
    /// End, seconds.
    pub to_s: f64,
    /// All clients.
    pub all: Stats,
    /// Per client datacenter.
    pub datacenters: BTreeMap<String, Stats>,
}

/// One datacenter's view of the drill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DcMeasure {
    /// Datacenter.
    pub dc: String,
    /// Whether it is the faulted one.
    pub faulted: bool,
    /// Its clients.
    pub clients: Vec<u64>,
    /// All its operations.
    pub total: Stats,
    /// `fail` and `unknown` outcomes of operations invoked from the fault
    /// until the restore (or the end).
    pub errors_during_fault: u64,
    /// Start of the unavailability window around the fault: the last `ok`
    /// completion before the fault, seconds.
    pub unavailable_from_s: Option<f64>,
    /// End of it: the completion of the first `ok` operation invoked after
    /// the fault (`null`: none before the end), seconds.
    pub unavailable_to_s: Option<f64>,
    /// Its length, ms (to the end of the load if service never came back).
    pub unavailable_ms: Option<f64>,
}

/// One bin of a time series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bin {
    /// Bin start, seconds.
    pub t_s: f64,
    /// Operations invoked in the bin, by outcome, and latency of the `ok` ones.
    #[serde(flatten)]
    pub stats: Stats,
}

/// A datacenter's time series (`all` for every client).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    /// Datacenter, or `all`.
    pub dc: String,
    /// Bins of `bin_s` seconds.
    pub bins: Vec<Bin>,
}

/// What the clients of the datacenters that were not faulted saw when the
/// faulted one came back: a member rejoining with a stale view must not
/// disturb the majority (Raft's pre-vote is what prevents it).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealMeasure {
    /// The restore (heal, or restart), seconds.
    pub heal_s: f64,
    /// The longest wait of one of those clients across or after the heal:
    /// the largest span between the completions of its successive `ok`
    /// operations, where the later one completed after the heal, ms.
    pub max_gap_ms: Option<f64>,
    /// The same before the fault (from one second into the load), for
    /// comparison: what an undisturbed cluster shows on this machine.
    pub before_fault_max_gap_ms: Option<f64>,
    /// Operations of those clients invoked after the heal.
    pub ok: u64,
    /// Of those, `fail` and `unknown` outcomes.
    pub errors: u64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measurements {
    /// RTO.
    pub rto: Rto,
    /// After the restore, if there was one.
    pub heal: Option<HealMeasure>,
    /// Per datacenter.
    pub datacenters: Vec<DcMeasure>,
    /// Before, during, after.
    pub phases: Vec<Phase>,
    /// Bin width of `series`, seconds.
    pub bin_s: f64,
    /// Per datacenter and `all`.
    pub series: Vec<Series>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn is_write(op: &Operation) -> bool {
    matches!(
        op,
        Operation::Put { .. } | Operation::Cas { .. } | Operation::Delete { .. }
    )
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Stats of `events` over a span of `span_ns`.
pub fn stats<'a>(events: impl IntoIterator<Item = &'a HistoryEvent>, span_ns: u64) -> Stats {
    let mut out = Stats::default();
    let mut latencies = Vec::new();
    for e in events {
        match e.outcome {
            Outcome::Ok => {
                out.ok += 1;
                if let Some(done) = e.complete_ns {
                    latencies.push(ms(done.saturating_sub(e.invoke_ns)));
                }
            }
            Outcome::Fail => out.fail += 1,
            Outcome::Unknown => out.unknown += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    out.throughput_ops_s = if span_ns == 0 {
        0.0
    } else {
        out.ok as f64 / secs(span_ns)
    };
    out.p50_ms = percentile(&latencies, 0.5);
    out.p99_ms = percentile(&latencies, 0.99);
    out
}

fn client_events(events: &[HistoryEvent]) -> impl Iterator<Item = &HistoryEvent> {
    events.iter().filter(|e| e.client != DRILL_CLIENT)
}

/// The clients of each datacenter, by the datacenter their events name.
fn clients_by_dc(events: &[HistoryEvent], dcs: &[String]) -> BTreeMap<String, Vec<u64>> {
    let mut clients_by_dc: BTreeMap<String, Vec<u64>> = dcs.iter().map(|d| (d.clone(), Vec::new())).collect();
    for e in client_events(events) {
        let list = clients_by_dc.entry(e.dc.clone().unwrap_or_default()).or_default();
        if !list.contains(&e.client) {
            list.push(e.client);
        }
    }
    for list in clients_by_dc.values_mut() {
        list.sort_unstable();
    }
    clients_by_dc
}

/// Recovery after a fault at `from_ns` of the clients of every datacenter
/// not in `skip` (see the module docs for what counts).
pub fn rto_after(events: &[HistoryEvent], dcs: &[String], skip: &[&str], from_ns: u64) -> Rto {
    rto_of(events, &clients_by_dc(events, dcs), skip, from_ns)
}

fn rto_of(events: &[HistoryEvent], clients_by_dc: &BTreeMap<String, Vec<u64>>, skip: &[&str], from_ns: u64) -> Rto {
    let mut rto = Rto::default();
    for (dc, clients) in clients_by_dc {
        if skip.contains(&dc.as_str()) {
            continue;
        }
        for &client in clients {
            // A client that invoked nothing after the fault was gone (killed
            // with its datacenter by an earlier fault): it has nothing to
            // recover.
            if !client_events(events).any(|e| e.client == client && e.invoke_ns >= from_ns) {
                continue;
            }
            let after: Vec<&HistoryEvent> = client_events(events)
                .filter(|e| e.client == client && e.invoke_ns >= from_ns && e.outcome == Outcome::Ok)
                .collect();
            let first = |pred: &dyn Fn(&Operation) -> bool| {
                after
                    .iter()
                    .filter(|e| pred(&e.op))
                    .filter_map(|e| e.complete_ns)
                    .min()
                    .map(|done| ms(done.saturating_sub(from_ns)))
            };
            let write_ms = first(&is_write);
            let read_ms = first(&|op| matches!(op, Operation::Get { .. }));
            if write_ms.is_none() || read_ms.is_none() {
                rto.unrecovered_clients.push(client);
            }
            rto.clients.push(ClientRto {
                client,
                dc: dc.clone(),
                write_ms,
                read_ms,
            });
        }
    }
    let worst = |f: fn(&ClientRto) -> Option<f64>| rto.clients.iter().filter_map(f).reduce(f64::max);
    rto.write_ms = worst(|c| c.write_ms);
    rto.read_ms = worst(|c| c.read_ms);
    rto.rto_ms = if rto.unrecovered_clients.is_empty() && !rto.clients.is_empty() {
        rto.write_ms.into_iter().chain(rto.read_ms).reduce(f64::max)
    } else {
        None
    };
    rto
}

/// The largest span between the completions of successive `ok` operations
/// of one client, over the clients of `clients`, counting a span only if
/// its later completion lies in `[from, to)`.
fn max_ok_gap(events: &[HistoryEvent], clients: &[u64], from: u64, to: u64) -> Option<f64> {
    let mut worst: Option<u64> = None;
    for &client in clients {
        let mut done: Vec<u64> = client_events(events)
            .filter(|e| e.client == client && e.outcome == Outcome::Ok)
            .filter_map(|e| e.complete_ns)
            .collect();
        done.sort_unstable();
        for pair in done.windows(2) {
            if pair[1] >= from && pair[1] < to {
                let gap = pair[1] - pair[0];
                worst = Some(worst.map_or(gap, |w| w.max(gap)));
            }
        }
    }
    worst.map(ms)
}

/// [`HealMeasure`] for the clients of every datacenter but `fault_dc`.
fn heal_of(
    events: &[HistoryEvent],
    clients_by_dc: &BTreeMap<String, Vec<u64>>,
    fault_dc: &str,
    t: Timeline,
) -> Option<HealMeasure> {
    let restore = t.restore_ns?;
    let survivors: Vec<u64> = clients_by_dc
        .iter()
        .filter(|(dc, _)| *dc != fault_dc)
        .flat_map(|(_, clients)| clients.iter().copied())
        .collect();
    let after: Vec<&HistoryEvent> = client_events(events)
        .filter(|e| survivors.contains(&e.client) && e.invoke_ns >= restore)
        .collect();
    Some(HealMeasure {
        heal_s: secs(restore),
        max_gap_ms: max_ok_gap(events, &survivors, restore, u64::MAX),
        before_fault_max_gap_ms: max_ok_gap(events, &survivors, 1_000_000_000, t.fault_ns),
        ok: after.iter().filter(|e| e.outcome == Outcome::Ok).count() as u64,
        errors: after.iter().filter(|e| e.outcome != Outcome::Ok).count() as u64,
    })
}

/// Computes every measurement. `dcs` lists the datacenters in order;
/// `fault_dc` is the faulted one.
pub fn measure(events: &[HistoryEvent], dcs: &[String], fault_dc: &str, t: Timeline, bin_ns: u64) -> Measurements {
    let dc_of = |e: &HistoryEvent| e.dc.clone().unwrap_or_default();
    let clients_by_dc = clients_by_dc(events, dcs);

    // RTO of the surviving datacenters' clients.
    let rto = rto_of(events, &clients_by_dc, &[fault_dc], t.fault_ns);

    // Per datacenter.
    let fault_end = t.restore_ns.unwrap_or(t.end_ns);
    let datacenters = clients_by_dc
        .iter()
        .map(|(dc, clients)| {
            let mine: Vec<&HistoryEvent> = client_events(events).filter(|e| dc_of(e) == *dc).collect();
            let errors_during_fault = mine
                .iter()
                .filter(|e| e.invoke_ns >= t.fault_ns && e.invoke_ns < fault_end && e.outcome != Outcome::Ok)
                .count() as u64;
            let last_ok_before = mine
                .iter()
                .filter(|e| e.outcome == Outcome::Ok)
                .filter_map(|e| e.complete_ns)
                .filter(|&c| c <= t.fault_ns)
                .max();
            let first_ok_after = mine
                .iter()
                .filter(|e| e.outcome == Outcome::Ok && e.invoke_ns >= t.fault_ns)
                .filter_map(|e| e.complete_ns)
                .min();
            let from = last_ok_before.unwrap_or(t.fault_ns);
            DcMeasure {
                dc: dc.clone(),
                faulted: dc == fault_dc,
                clients: clients.clone(),
                total: stats(mine.iter().copied(), t.end_ns),
                errors_during_fault,
                unavailable_from_s: (!mine.is_empty()).then(|| secs(from)),
                unavailable_to_s: first_ok_after.map(secs),
                unavailable_ms: (!mine.is_empty()).then(|| ms(first_ok_after.unwrap_or(t.end_ns).saturating_sub(from))),
            }
        })
        .collect();

    // Phases.
    let mut bounds = vec![("before", 0, t.fault_ns), ("during", t.fault_ns, fault_end)];
    if let Some(restore) = t.restore_ns {
        bounds.push(("after", restore, t.end_ns));
    }
    let phases = bounds
        .into_iter()
        .map(|(name, from, to)| {
            let inside = |e: &&HistoryEvent| e.invoke_ns >= from && e.invoke_ns < to;
            Phase {
                name: name.to_owned(),
                from_s: secs(from),
                to_s: secs(to),
                all: stats(client_events(events).filter(inside), to.saturating_sub(from)),
                datacenters: dcs
                    .iter()
                    .map(|dc| {
                        let s = stats(
                            client_events(events).filter(inside).filter(|e| dc_of(e) == *dc),
                            to.saturating_sub(from),
                        );
                        (dc.clone(), s)
                    })
                    .collect(),
            }
        })
        .collect();

    // Time series.
    let bin_ns = bin_ns.max(1);
    let bins = t.end_ns.div_ceil(bin_ns).max(1);
    let series_of = |filter: &dyn Fn(&HistoryEvent) -> bool, name: String| Series {
        dc: name,
        bins: (0..bins)
            .map(|b| {
                let (from, to) = (b * bin_ns, (b + 1) * bin_ns);
                Bin {
                    t_s: secs(from),
                    stats: stats(
                        client_events(events).filter(|e| filter(e) && e.invoke_ns >= from && e.invoke_ns < to),
                        bin_ns,
                    ),
                }
            })
            .collect(),
    };
    let mut series: Vec<Series> = dcs
        .iter()
        .map(|dc| series_of(&|e: &HistoryEvent| dc_of(e) == *dc, dc.clone()))
        .collect();
    series.push(series_of(&|_| true, "all".to_owned()));

    Measurements {
        rto,
        heal: heal_of(events, &clients_by_dc, fault_dc, t),
        datacenters,
        phases,
        bin_s: secs(bin_ns),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_check::OpResult;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn op(id: u64, client: u64, dc: &str, write: bool, at: u64, dur: u64, outcome: Outcome) -> HistoryEvent {
        let op = if write {
            Operation::Put {
                key: "k".into(),
                value: format!("v{id}"),
            }
        } else {
            Operation::Get { key: "k".into() }
        };
        let e = HistoryEvent::invoked(id, client, Some(dc), op, at);
        match outcome {
            Outcome::Ok => e.ok(at + dur, OpResult::put(id)),
            Outcome::Fail => e.fail(at + dur),
            Outcome::Unknown => e.unknown(Some(at + dur)),
        }
    }

    #[test]
    fn rto_counts_operations_invoked_after_the_fault() {
        let fault = 10 * S;
        let events = vec![
            op(1, 1, "dc1", true, 9 * S, 10 * MS, Outcome::Ok),
            // Invoked before the fault, answered after: does not count.
            op(2, 1, "dc1", true, fault - MS, 2 * MS, Outcome::Ok),
            op(3, 1, "dc1", true, fault + MS, 1000 * MS, Outcome::Unknown),
            op(4, 1, "dc1", false, fault + 1200 * MS, 5 * MS, Outcome::Ok),
            op(5, 1, "dc1", true, fault + 1300 * MS, 100 * MS, Outcome::Ok),
            op(6, 2, "dc2", true, fault + MS, 4 * MS, Outcome::Ok),
            op(7, 2, "dc2", false, fault + 10 * MS, 4 * MS, Outcome::Ok),
            // The faulted datacenter's client is not a survivor.
            op(8, 3, "dc3", true, 5 * S, MS, Outcome::Ok),
        ];
        let t = Timeline {
            fault_ns: fault,
            fault_done_ns: fault + MS,
            restore_ns: Some(15 * S),
            end_ns: 20 * S,
        };
        let dcs: Vec<String> = ["dc1", "dc2", "dc3"].iter().map(|s| s.to_string()).collect();
        let m = measure(&events, &dcs, "dc3", t, S);
        assert_eq!(m.rto.clients.len(), 2);
        assert_eq!(m.rto.write_ms, Some(1400.0));
        assert_eq!(m.rto.read_ms, Some(1205.0));
        assert_eq!(m.rto.rto_ms, Some(1400.0));
        assert!(m.rto.unrecovered_clients.is_empty());
        let dc1 = &m.datacenters[0];
        assert_eq!(dc1.errors_during_fault, 1);
        assert_eq!(dc1.unavailable_to_s, Some(11.205));
        assert_eq!(m.phases.len(), 3);
        assert_eq!(m.phases[0].all.ok, 3);
        assert_eq!(m.series.len(), 4);
        assert_eq!(m.series[0].bins.len(), 20);
    }

    #[test]
    fn a_survivor_that_never_recovers_leaves_no_headline() {
        let events = vec![
            op(1, 1, "dc1", true, 0, MS, Outcome::Ok),
            op(2, 1, "dc1", true, 6 * S, 1000 * MS, Outcome::Unknown),
        ];
        let t = Timeline {
            fault_ns: 5 * S,
            fault_done_ns: 5 * S,
            restore_ns: None,
            end_ns: 10 * S,
        };
        let m = measure(&events, &["dc1".to_string(), "dc2".to_string()], "dc2", t, S);
        assert_eq!(m.rto.rto_ms, None);
        assert_eq!(m.rto.unrecovered_clients, vec![1]);
        assert_eq!(m.datacenters[0].unavailable_ms, Some(9_999.0));
    }

    #[test]
    fn the_heal_figure_is_the_longest_wait_of_a_survivor_after_the_restore() {
        let (fault, restore) = (10 * S, 20 * S);
        let events = vec![
            // Before the fault: completions 100 ms apart, then one 300 ms gap.
            op(1, 1, "dc1", true, 2 * S, MS, Outcome::Ok),
            op(2, 1, "dc1", true, 2 * S + 100 * MS, MS, Outcome::Ok),
            op(3, 1, "dc1", true, 2 * S + 400 * MS, MS, Outcome::Ok),
            // Across the heal: the last ok before it at 19.9 s, the next
            // one 900 ms later, after a failure.
            op(4, 2, "dc2", true, restore - 100 * MS - MS, MS, Outcome::Ok),
            op(5, 2, "dc2", true, restore + 10 * MS, 500 * MS, Outcome::Fail),
            op(6, 2, "dc2", false, restore + 600 * MS, 200 * MS, Outcome::Ok),
            op(7, 2, "dc2", false, restore + 900 * MS, 10 * MS, Outcome::Ok),
            // The faulted datacenter's client does not count.
            op(8, 3, "dc3", true, restore + 5 * S, MS, Outcome::Ok),
            op(9, 3, "dc3", true, restore + 9 * S, MS, Outcome::Ok),
        ];
        let t = Timeline {
            fault_ns: fault,
            fault_done_ns: fault,
            restore_ns: Some(restore),
            end_ns: 30 * S,
        };
        let dcs: Vec<String> = ["dc1", "dc2", "dc3"].iter().map(|s| s.to_string()).collect();
        let heal = measure(&events, &dcs, "dc3", t, S)
            .heal
            .expect("a restore was measured");
        assert_eq!(heal.heal_s, 20.0);
        assert_eq!(heal.max_gap_ms, Some(900.0));
        assert_eq!(heal.before_fault_max_gap_ms, Some(300.0));
        assert_eq!((heal.ok, heal.errors), (2, 1));
        // Without a restore there is no heal figure.
        let never = Timeline { restore_ns: None, ..t };
        assert_eq!(measure(&events, &dcs, "dc3", never, S).heal, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
