//! `--scenario all`: one line per scenario in `summary.json` and
//! `summary.html`, next to each scenario's own report directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::DrillError;
use crate::report::Report;

/// One scenario's result, as in `summary.json`.
#[derive(Debug, Serialize)]
pub struct SummaryLine {
    /// Scenario.
    pub scenario: String,
    /// Faulted datacenter.
    pub fault_dc: String,
    /// PASS, FAIL or UNKNOWN.
    pub verdict: String,
    /// Linearizable.
    pub linearizable: Option<bool>,
    /// Lost acknowledged writes.
    pub acknowledged_writes_lost: usize,
    /// Headline RTO, ms.
    pub rto_ms: Option<f64>,
    /// Its report directory, relative to the summary.
    pub report: String,
}

/// Writes `summary.json` and `summary.html` into `out` and prints the table.
pub fn write(out: &Path, reports: &[(Report, PathBuf)]) -> Result<(), DrillError> {
    let lines: Vec<SummaryLine> = reports
        .iter()
        .map(|(r, dir)| SummaryLine {
            scenario: r.scenario.clone(),
            fault_dc: r.fault_dc.clone(),
            verdict: r.verdict.to_string(),
            linearizable: r.linearizable,
            acknowledged_writes_lost: r.acknowledged_writes_lost,
            rto_ms: r.rto_ms,
            report: dir
                .strip_prefix(out)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| dir.display().to_string()),
        })
        .collect();
    let json_path = out.join("summary.json");
    let text = serde_json::to_string_pretty(&lines).expect("a summary always serializes");
    std::fs::write(&json_path, text + "\n").map_err(DrillError::io("cannot write the summary", &json_path))?;

    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Firebreak drills</title>\
         <style>body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:collapse}\
         td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}.PASS{color:#2e7d32}.FAIL{color:#c62828}\
         .UNKNOWN{color:#f9a825}</style></head><body><h1>Firebreak drills</h1><table><tr><th>scenario</th>\
         <th>datacenter</th><th>verdict</th><th>linearizable</th><th>writes lost</th><th>RTO</th><th>report</th></tr>",
    );
    eprintln!();
    eprintln!(
        "{:<12} {:<6} {:<8} {:<13} {:<12} {:<10} report",
        "scenario", "dc", "verdict", "linearizable", "writes lost", "RTO"
    );
    for l in &lines {
        let lin = match l.linearizable {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "undecided",
        };
        let rto = l.rto_ms.map_or("n/a".to_owned(), |v| format!("{v:.0} ms"));
        eprintln!(
            "{:<12} {:<6} {:<8} {:<13} {:<12} {:<10} {}",
            l.scenario,
            l.fault_dc,
            l.verdict,
            lin,
            l.acknowledged_writes_lost,
            rto,
            out.join(&l.report).join("report.html").display()
        );
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\"><b>{}</b></td><td>{lin}</td><td>{}</td><td>{rto}</td>\
             <td><a href=\"{}/report.html\">{}</a></td></tr>",
            l.scenario, l.fault_dc, l.verdict, l.verdict, l.acknowledged_writes_lost, l.report, l.report
        );
    }
    html.push_str("</table></body></html>\n");
    let html_path = out.join("summary.html");
    std::fs::write(&html_path, html).map_err(DrillError::io("cannot write the summary", &html_path))?;
    eprintln!("summary: {}", html_path.display());
    Ok(())
}
