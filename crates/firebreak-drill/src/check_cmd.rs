//! `firebreak check FILE`: re-checks a saved `history.jsonl` and prints the
//! verdict.
//!
//! It recomputes, from the history alone, every check the drill marks
//! `from_history` ([`crate::verdict`]): linearizability, revision order,
//! and the final read showing every acknowledged write. When the file sits
//! in a drill's report directory, the checks that need the live cluster
//! (replica agreement, the store's history, recovery time, isolation) are
//! read from the `report.json` beside it and shown as recorded, and the
//! verdict combines both, as the drill's did.

use std::process::ExitCode;
use std::time::Duration;

use firebreak_check::{check_history, read_history_jsonl, Budget, Verdict};

use crate::args::CheckArgs;
use crate::error::DrillError;
use crate::report::{verdict_of, CheckResult, Status};
use crate::verdict::history_checks;

/// A check recorded in `report.json`.
fn recorded_checks(value: &serde_json::Value) -> Vec<CheckResult> {
    value["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["from_history"] == serde_json::Value::Bool(false))
        .filter_map(|c| {
            let status = match c["status"].as_str()? {
                "pass" => Status::Pass,
                "fail" => Status::Fail,
                _ => Status::Unknown,
            };
            Some(CheckResult {
                name: c["name"].as_str()?.to_owned(),
                status,
                from_history: false,
                detail: c["detail"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Runs `firebreak check`.
pub fn run(args: CheckArgs) -> Result<ExitCode, DrillError> {
    let events = read_history_jsonl(&args.file)?;
    let report = check_history(&events, Budget::with_duration(Duration::from_secs(args.budget)));
    if args.json {
        println!("{}", report.to_json_pretty());
    } else {
        print!("{}", report.render_text());
    }
    let checks = history_checks(&events, &report);
    let history_verdict = verdict_of(&checks);
    println!();
    println!("from the history ({}):", args.file.display());
    for c in &checks {
        println!("  {:<28} {:<7} {}", c.name, c.status.as_str().to_uppercase(), c.detail);
    }
    let mut verdict = history_verdict;
    let beside = args.file.parent().map(|p| p.join("report.json"));
    if let Some(path) = beside.filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path).map_err(DrillError::io("cannot read the report", &path))?;
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let recorded = recorded_checks(&value);
            if !recorded.is_empty() {
                println!(
                    "recorded by the drill in {} (they need the live cluster):",
                    path.display()
                );
                for c in &recorded {
                    println!("  {:<28} {:<7} {}", c.name, c.status.as_str().to_uppercase(), c.detail);
                }
                verdict = verdict_of(checks.iter().chain(&recorded));
            }
            if let Some(drill) = value["history_verdict"].as_str() {
                if drill != history_verdict.as_str() {
                    println!("note: the drill's own check of this history said {drill} (a different search budget?)");
                }
            }
        }
    }
    println!("verdict: {verdict}");
    Ok(match verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::from(1),
        Verdict::Unknown => ExitCode::from(2),
    })
}
