//! Running the system tools the lab needs (`ip`, `nft`), with their
//! failures turned into [`DrillError::Command`].

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::DrillError;

/// Runs `program args…` and returns its stdout; a non-zero exit is an error
/// carrying stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, DrillError> {
    run_with_input(program, args, None)
}

/// Like [`run`], feeding `input` to stdin (for `nft -f -`).
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String, DrillError> {
    let line = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DrillError::Command {
            command: line.clone(),
            detail: e.to_string(),
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| DrillError::Command {
            command: line.clone(),
            detail: format!("cannot write its input: {e}"),
        })?;
    }
    let out = child.wait_with_output().map_err(|e| DrillError::Command {
        command: line.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(DrillError::Command {
            command: line,
            detail: format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command for cleanup: failures are logged, never returned.
pub fn run_quietly(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        tracing::debug!(error = %e, "cleanup command failed");
    }
}

/// Whether `program` can be started at all.
pub fn available(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
