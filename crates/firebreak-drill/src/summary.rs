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

/// One scenario's line of a sweep (`--runs N`), as in `sweep.json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct SweepLine {
    /// Scenario.
    pub scenario: String,
    /// Drills run.
    pub runs: usize,
    /// Verdicts.
    pub pass: usize,
    pub fail: usize,
    pub unknown: usize,
    /// Acknowledged writes lost, over all runs.
    pub lost_writes: usize,
    /// Median and 99th percentile of the runs' headline RTO, ms, over the
    /// runs that have one (a run whose client never recovered has none and
    /// FAILs).
    pub rto_p50_ms: Option<f64>,
    pub rto_p99_ms: Option<f64>,
    /// The runs' report directories that did not PASS, relative to the sweep.
    pub not_passed: Vec<String>,
    /// Runs that ended in an error before a verdict (the lab did not come
    /// up, a member could not be started...): counted in `runs` and
    /// `unknown`, listed here with the error.
    pub errors: Vec<RunError>,
}

/// A run of a sweep that ended in an error instead of a verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunError {
    /// Scenario.
    pub scenario: String,
    /// The run's directory, relative to the sweep.
    pub dir: String,
    /// What went wrong.
    pub error: String,
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The sweep's lines, one per scenario in the order first run.
pub fn sweep_lines(out: &Path, reports: &[(Report, PathBuf)], errors: &[RunError]) -> Vec<SweepLine> {
    let mut order: Vec<String> = Vec::new();
    for scenario in reports
        .iter()
        .map(|(r, _)| &r.scenario)
        .chain(errors.iter().map(|e| &e.scenario))
    {
        if !order.contains(scenario) {
            order.push(scenario.clone());
        }
    }
    order
        .into_iter()
        .map(|scenario| {
            let mine: Vec<&(Report, PathBuf)> = reports.iter().filter(|(r, _)| r.scenario == scenario).collect();
            let count = |v: firebreak_check::Verdict| mine.iter().filter(|(r, _)| r.verdict == v).count();
            let mut rtos: Vec<f64> = mine.iter().filter_map(|(r, _)| r.rto_ms).collect();
            rtos.sort_by(f64::total_cmp);
            let errored: Vec<RunError> = errors.iter().filter(|e| e.scenario == scenario).cloned().collect();
            SweepLine {
                runs: mine.len() + errored.len(),
                pass: count(firebreak_check::Verdict::Pass),
                fail: count(firebreak_check::Verdict::Fail),
                unknown: count(firebreak_check::Verdict::Unknown) + errored.len(),
                lost_writes: mine.iter().map(|(r, _)| r.acknowledged_writes_lost).sum(),
                rto_p50_ms: percentile(&rtos, 0.50),
                rto_p99_ms: percentile(&rtos, 0.99),
                not_passed: mine
                    .iter()
                    .filter(|(r, _)| r.verdict != firebreak_check::Verdict::Pass)
                    .map(|(_, dir)| {
                        dir.strip_prefix(out)
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|_| dir.display().to_string())
                    })
                    .chain(errored.iter().map(|e| e.dir.clone()))
                    .collect(),
                errors: errored,
                scenario,
            }
        })
        .collect()
}

/// Writes `sweep.json` and `sweep.md` into `out` and prints the table.
pub fn write_sweep(out: &Path, reports: &[(Report, PathBuf)], errors: &[RunError]) -> Result<(), DrillError> {
    let lines = sweep_lines(out, reports, errors);
    let json_path = out.join("sweep.json");
    let text = serde_json::to_string_pretty(&lines).expect("a sweep always serializes");
    std::fs::write(&json_path, text + "\n").map_err(DrillError::io("cannot write the sweep", &json_path))?;
    let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}"));
    let mut table = String::from(
        "| scenario | runs | PASS | FAIL | UNKNOWN | lost writes | RTO p50 ms | RTO p99 ms |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for l in &lines {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            l.scenario,
            l.runs,
            l.pass,
            l.fail,
            l.unknown,
            l.lost_writes,
            ms(l.rto_p50_ms),
            ms(l.rto_p99_ms)
        );
    }
    let not_passed: Vec<&String> = lines
        .iter()
        .flat_map(|l| &l.not_passed)
        .filter(|dir| !errors.iter().any(|e| &e.dir == *dir))
        .collect();
    if !not_passed.is_empty() {
        table.push_str("\nRuns that did not pass:\n\n");
        for dir in &not_passed {
            let _ = writeln!(table, "- {dir}/report.html");
        }
    }
    if !errors.is_empty() {
        table.push_str("\nRuns that ended in an error, without a verdict (counted as UNKNOWN):\n\n");
        for e in errors {
            let _ = writeln!(table, "- {} ({}): {}", e.dir, e.scenario, e.error);
        }
    }
    let md_path = out.join("sweep.md");
    std::fs::write(&md_path, &table).map_err(DrillError::io("cannot write the sweep", &md_path))?;
    eprintln!();
    eprint!("{table}");
    eprintln!("sweep: {}", md_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{percentile, sweep_lines, RunError};

    #[test]
    fn a_run_that_ended_in_an_error_counts_as_unknown_and_is_listed() {
        let error = RunError {
            scenario: "restart".into(),
            dir: "run-002".into(),
            error: "cluster: dc1-1 serves no linearizable read after 30s".into(),
        };
        let lines = sweep_lines(std::path::Path::new("/sweep"), &[], std::slice::from_ref(&error));
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(
            (l.scenario.as_str(), l.runs, l.pass, l.fail, l.unknown),
            ("restart", 1, 0, 0, 1)
        );
        assert_eq!(l.not_passed, ["run-002"]);
        assert_eq!(l.errors, [error]);
        assert_eq!(l.rto_p50_ms, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
