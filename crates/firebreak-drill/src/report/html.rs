//! `report.html`: the report for a person, offline and self-contained
//! (inline CSS and SVG, no script, no fetch). Verdict and hypothesis first,
//! then throughput and latency over time per datacenter with the fault
//! window shaded (after Jepsen's plots), the checks, the counterexample if
//! any, recovery figures, and the settings.

use std::fmt::Write as _;

use firebreak_check::{HistoryEvent, Outcome, Verdict};

use super::svg::{esc, Chart};
use super::{Report, Status};
use crate::verify::final_read::DRILL_CLIENT;

const DC_COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#555555"];
const FAULT_COLOR: &str = "#d62728";
const RESTORE_COLOR: &str = "#2ca02c";
/// Most dots per latency chart (the rest are sampled out; errors are kept).
const MAX_DOTS: usize = 4000;

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

fn opt_f(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}{unit}"))
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Unknown => "unknown",
    }
}

fn shade_fault(chart: &mut Chart, report: &Report) {
    let t = &report.timeline;
    let until = t.restore_s.unwrap_or(t.end_s);
    chart.shade(
        t.fault_s,
        until,
        FAULT_COLOR,
        &format!("fault: {} ({})", report.fault_dc, report.scenario),
    );
    chart.vline(
        t.fault_s,
        FAULT_COLOR,
        &format!("{} {}", report.scenario, report.fault_dc),
    );
    if let Some(r) = t.restore_s {
        chart.vline(r, RESTORE_COLOR, "restore");
    }
}

fn throughput_chart(report: &Report) -> String {
    let m = &report.measurements;
    let max = m
        .series
        .iter()
        .flat_map(|s| s.bins.iter().map(|b| b.stats.throughput_ops_s))
        .fold(1.0, f64::max);
    let mut chart = Chart::new((0.0, report.timeline.end_s), (0.0, max * 1.1), false);
    shade_fault(&mut chart, report);
    for (i, series) in m.series.iter().enumerate() {
        let points: Vec<(f64, Option<f64>)> = series
            .bins
            .iter()
            .map(|b| (b.t_s + m.bin_s / 2.0, Some(b.stats.throughput_ops_s)))
            .collect();
        let label = if series.dc == "all" {
            "all clients".to_owned()
        } else {
            format!("clients in {}", series.dc)
        };
        chart.line(&points, DC_COLORS[i.min(3)], &label, series.dc == "all");
    }
    chart.finish("seconds since the load started", "ok operations / s")
}

fn latency_chart(report: &Report, events: &[HistoryEvent], dc: &str, color: &str) -> String {
    let mine: Vec<&HistoryEvent> = events
        .iter()
        .filter(|e| e.client != DRILL_CLIENT && e.dc.as_deref() == Some(dc))
        .collect();
    let latency = |e: &HistoryEvent| e.complete_ns.map(|c| (c.saturating_sub(e.invoke_ns)) as f64 / 1e6);
    let ok: Vec<&HistoryEvent> = mine.iter().copied().filter(|e| e.outcome == Outcome::Ok).collect();
    let stride = ok.len().div_ceil(MAX_DOTS).max(1);
    let ok_dots: Vec<(f64, f64)> = ok
        .iter()
        .step_by(stride)
        .filter_map(|e| Some((e.invoke_ns as f64 / 1e9, latency(e)?)))
        .collect();
    let dots_of = |outcome: Outcome| -> Vec<(f64, f64)> {
        mine.iter()
            .filter(|e| e.outcome == outcome)
            .filter_map(|e| Some((e.invoke_ns as f64 / 1e9, latency(e)?.max(0.01))))
            .collect()
    };
    let (fail_dots, unknown_dots) = (dots_of(Outcome::Fail), dots_of(Outcome::Unknown));
    let max = ok_dots
        .iter()
        .chain(&fail_dots)
        .chain(&unknown_dots)
        .map(|p| p.1)
        .fold(10.0, f64::max);
    let mut chart = Chart::new((0.0, report.timeline.end_s), (0.1, max * 1.5), true);
    shade_fault(&mut chart, report);
    chart.dots(&ok_dots, color, "ok");
    chart.dots(&fail_dots, "#9467bd", "fail");
    chart.dots(&unknown_dots, FAULT_COLOR, "unknown (timeout, lost)");
    if let Some(series) = report.measurements.series.iter().find(|s| s.dc == dc) {
        let half = report.measurements.bin_s / 2.0;
        let p50: Vec<(f64, Option<f64>)> = series.bins.iter().map(|b| (b.t_s + half, b.stats.p50_ms)).collect();
        let p99: Vec<(f64, Option<f64>)> = series.bins.iter().map(|b| (b.t_s + half, b.stats.p99_ms)).collect();
        chart.line(&p50, "#000000", "p50", false);
        chart.line(&p99, "#7f7f7f", "p99", true);
    }
    chart.finish(
        "seconds since the load started (operation invoked)",
        "latency (ms, log)",
    )
}

fn table(out: &mut String, head: &[&str], rows: Vec<Vec<String>>) {
    out.push_str("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

const STYLE: &str = "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}\
header{padding:1em 1.2em;border-radius:8px;margin-bottom:1em}\
header h1{margin:0 0 .2em;font-size:2.2em}\
.pass{background:#e6f4ea;border:2px solid #2e7d32}.fail{background:#fdecea;border:2px solid #c62828}.unknown{background:#fff8e1;border:2px solid #f9a825}\
td.pass,td.fail,td.unknown{border-width:0 0 1px 0;font-weight:bold}\
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.figures td{font-size:1.15em}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}\
.note{background:#fff8e1;padding:.6em;border-left:4px solid #f9a825}h2{margin-top:1.6em;border-bottom:1px solid #ddd}";

/// Renders the report.
pub fn render(report: &Report, events: &[HistoryEvent]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Firebreak drill: {} {} — {}</title><style>{STYLE}</style></head><body>",
        esc(&report.scenario),
        esc(&report.fault_dc),
        report.verdict
    );
    let _ = write!(
        h,
        "<header class=\"{}\"><h1>{}</h1><div><b>{}</b> in <b>{}</b> · seed {} · {} · {} lab</div><p>{}</p></header>",
        verdict_class(report.verdict),
        report.verdict,
        esc(&report.scenario),
        esc(&report.fault_dc),
        report.seed,
        esc(&report.started_at),
        esc(&report.mode),
        esc(&report.summary)
    );
    if let Some(note) = &report.mode_note {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(note));
    }
    let _ = write!(h, "<h2>Hypothesis</h2><p>{}</p>", esc(&report.hypothesis));
    if let Some(heal) = &report.measurements.heal {
        let _ = write!(
            h,
            "<p>After the restore at {:.1} s, the longest wait of a client of the datacenters not faulted was <b>{}</b> \
             (before the fault: {}); {} of their {} operations invoked after it failed or timed out.</p>",
            heal.heal_s,
            opt_ms(heal.max_gap_ms),
            opt_ms(heal.before_fault_max_gap_ms),
            heal.errors,
            heal.ok + heal.errors
        );
    }
    let m = &report.measurements;
    table(
        &mut h,
        &[
            "RTO (worst surviving client)",
            "acknowledged writes lost",
            "linearizable",
            "operations",
            "relay CPU",
        ],
        vec![vec![
            opt_ms(report.rto_ms),
            report.acknowledged_writes_lost.to_string(),
            match report.linearizable {
                Some(true) => "yes".into(),
                Some(false) => "<b>no</b>".into(),
                None => "undecided".into(),
            },
            format!(
                "{} ({} ok, {} fail, {} unknown)",
                report.history.events, report.history.ok, report.history.fail, report.history.unknown
            ),
            format!("{} of one core", opt_f(report.relay.load_cpu_percent_of_one_core, " %")),
        ]],
    );
    h = h.replacen("<table>", "<table class=\"figures\">", 1);

    h.push_str("<h2>Checks</h2>");
    table(
        &mut h,
        &["check", "result", "detail"],
        report
            .checks
            .iter()
            .map(|c| {
                vec![
                    esc(&c.name),
                    format!(
                        "<span class=\"{}\">{}</span>",
                        match c.status {
                            Status::Pass => "pass",
                            Status::Fail => "fail",
                            Status::Unknown => "unknown",
                        },
                        c.status.as_str().to_uppercase()
                    ),
                    esc(&c.detail),
                ]
            })
            .collect(),
    );

    let _ = write!(
        h,
        "<h2>Throughput</h2><p>Operations answered <code>ok</code> per second, by the datacenter the client runs in; the fault window is shaded.</p>{}",
        throughput_chart(report)
    );
    h.push_str("<h2>Latency</h2><p>Every operation by invocation time (ok operations sampled to at most 4000 per chart; every failure shown), with the p50 and p99 of each second.</p>");
    let dcs: Vec<String> = report.topology.datacenters.iter().map(|d| d.name.clone()).collect();
    for (i, dc) in dcs.iter().enumerate() {
        let faulted = if *dc == report.fault_dc { " (faulted)" } else { "" };
        let _ = write!(
            h,
            "<h3>Clients in {}{faulted}</h3>{}",
            esc(dc),
            latency_chart(report, events, dc, DC_COLORS[i.min(3)])
        );
    }

    h.push_str("<h2>Before, during, after</h2>");
    let mut rows = Vec::new();
    for phase in &m.phases {
        for (dc, s) in phase
            .datacenters
            .iter()
            .chain(std::iter::once((&"all".to_owned(), &phase.all)))
        {
            rows.push(vec![
                format!("{} ({:.1}–{:.1} s)", esc(&phase.name), phase.from_s, phase.to_s),
                esc(dc),
                format!("{:.1}", s.throughput_ops_s),
                opt_f(s.p50_ms, " ms"),
                opt_f(s.p99_ms, " ms"),
                s.ok.to_string(),
                s.fail.to_string(),
                s.unknown.to_string(),
            ]);
        }
    }
    table(
        &mut h,
        &["phase", "clients in", "ok ops/s", "p50", "p99", "ok", "fail", "unknown"],
        rows,
    );

    h.push_str("<h2>Recovery</h2>");
    let _ = write!(
        h,
        "<p>RTO as clients saw it: from the fault to the first write and the first linearizable read answered <code>ok</code> among operations invoked after the fault, for each client of a datacenter that was not faulted. Headline: <b>{}</b> (worst write {}, worst read {}).</p>",
        opt_ms(m.rto.rto_ms),
        opt_ms(m.rto.write_ms),
        opt_ms(m.rto.read_ms)
    );
    table(
        &mut h,
        &["client", "datacenter", "first write after", "first read after"],
        m.rto
            .clients
            .iter()
            .map(|c| vec![c.client.to_string(), esc(&c.dc), opt_ms(c.write_ms), opt_ms(c.read_ms)])
            .collect(),
    );
    table(
        &mut h,
        &[
            "datacenter",
            "unavailable",
            "window (s)",
            "errors during the fault",
            "ok",
            "fail",
            "unknown",
        ],
        m.datacenters
            .iter()
            .map(|d| {
                vec![
                    format!("{}{}", esc(&d.dc), if d.faulted { " (faulted)" } else { "" }),
                    opt_ms(d.unavailable_ms),
                    format!(
                        "{} → {}",
                        opt_f(d.unavailable_from_s, ""),
                        opt_f(d.unavailable_to_s, "")
                    ),
                    d.errors_during_fault.to_string(),
                    d.total.ok.to_string(),
                    d.total.fail.to_string(),
                    d.total.unknown.to_string(),
                ]
            })
            .collect(),
    );
    if let Some(c) = &report.catch_up {
        let _ = write!(
            h,
            "<p>Catch-up of {} after it came back at {:.1} s (target: revision {}): slowest member <b>{}</b>.</p>",
            esc(&report.fault_dc),
            c.restored_s,
            c.target_revision.map_or("?".into(), |r| r.to_string()),
            opt_ms(c.max_ms)
        );
    }

    if !report.lost_writes.is_empty() {
        let _ = write!(h, "<h2>Lost writes ({})</h2>", report.lost_writes.len());
        table(
            &mut h,
            &["op", "client", "write", "acknowledged", "evidence"],
            report
                .lost_writes
                .iter()
                .map(|w| {
                    vec![
                        format!("#{}", w.op),
                        format!("c{} {}", w.client, esc(w.dc.as_deref().unwrap_or(""))),
                        esc(&format!(
                            "{} {}{}",
                            w.kind,
                            w.key,
                            w.value.as_ref().map(|v| format!("={v}")).unwrap_or_default()
                        )),
                        format!(
                            "rev {} at {}",
                            w.acknowledged_revision.map_or("?".into(), |r| r.to_string()),
                            opt_f(w.acknowledged_s, " s")
                        ),
                        esc(&w.evidence.join(" · ")),
                    ]
                })
                .collect(),
        );
    }

    let counterexamples: Vec<_> = report
        .check
        .keys
        .iter()
        .filter_map(|k| k.counterexample.as_ref())
        .collect();
    if !counterexamples.is_empty() || !report.check.anomalies.is_empty() {
        h.push_str("<h2>Counterexample</h2><p>Times are seconds since the load started; <code>#id</code> is the operation's id in <code>history.jsonl</code>.</p>");
        for cx in counterexamples {
            let _ = write!(h, "<h3>Key {}</h3>", esc(&cx.key));
            if let Some(why) = &cx.explanation {
                let _ = write!(h, "<p>{}</p>", esc(why));
            }
            let _ = write!(h, "<pre>{}</pre>", esc(&cx.text.join("\n")));
        }
        if !report.check.anomalies.is_empty() {
            h.push_str("<h3>Anomalies</h3><ul>");
            for a in &report.check.anomalies {
                let _ = write!(h, "<li>{}</li>", esc(&a.message));
            }
            h.push_str("</ul>");
        }
    }

    if let Some(r) = &report.replicas {
        let _ = write!(h, "<h2>Replicas</h2><p>{}</p>", esc(&r.detail));
        table(
            &mut h,
            &[
                "member",
                "revision",
                "state hash (FNV-1a 64, drill)",
                "HashKV (member)",
                "keys",
            ],
            r.members
                .iter()
                .map(|s| {
                    vec![
                        esc(&s.member),
                        s.revision.to_string(),
                        esc(&s.hash),
                        s.hash_kv.map_or("–".to_owned(), |h| format!("{h:08x}")),
                        s.keys.to_string(),
                    ]
                })
                .collect(),
        );
    }

    h.push_str("<h2>Timeline</h2>");
    table(
        &mut h,
        &["t (s)", "event"],
        report
            .timeline
            .events
            .iter()
            .map(|e| vec![format!("{:.3}", e.t_s), esc(&e.what)])
            .collect(),
    );

    h.push_str("<h2>Settings</h2>");
    let settings = serde_json::to_value(&report.settings).unwrap_or_default();
    let mut rows = vec![vec!["seed".into(), report.seed.to_string()]];
    if let Some(map) = settings.as_object() {
        for (k, v) in map {
            rows.push(vec![esc(k), esc(&v.to_string())]);
        }
    }
    table(&mut h, &["setting", "value"], rows);
    h.push_str("<h2>Topology</h2>");
    let _ = write!(
        h,
        "<p>{} lab; every path between datacenters crosses the WAN relay (one-way delay {:.1} ms asked, {} measured p50, {} p99; {} relayed, relay CPU {} during the load){}.</p>",
        esc(&report.mode),
        report.relay.one_way_ms,
        opt_f(report.relay.stats.delay_p50_ms, " ms"),
        opt_f(report.relay.stats.delay_p99_ms, " ms"),
        human_bytes(report.relay.stats.bytes),
        opt_ms(report.relay.load_cpu_ms),
        report
            .topology
            .nftables_table
            .as_ref()
            .map(|t| format!("; nftables table <code>inet {}</code> keeps traffic on it", esc(t)))
            .unwrap_or_default()
    );
    let mut rows = Vec::new();
    for dc in &report.topology.datacenters {
        for m in &dc.members {
            rows.push(vec![
                esc(&dc.name),
                esc(dc.namespace.as_deref().unwrap_or("–")),
                esc(&m.name),
                esc(&m.listen_client.to_string()),
                esc(&m.client_url),
                esc(&m.peer_url),
            ]);
        }
    }
    table(
        &mut h,
        &[
            "datacenter",
            "namespace",
            "member",
            "listens on",
            "client URL (relay)",
            "peer URL (relay)",
        ],
        rows,
    );
    h.push_str("<h2>Files</h2><ul><li><a href=\"report.json\">report.json</a></li><li><a href=\"history.jsonl\">history.jsonl</a> (re-check with <code>firebreak check history.jsonl</code>)</li>");
    for dc in &report.topology.datacenters {
        for m in &dc.members {
            let _ = write!(h, "<li><a href=\"logs/{0}.log\">logs/{0}.log</a></li>", esc(&m.name));
        }
    }
    h.push_str("</ul></body></html>\n");
    h
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
