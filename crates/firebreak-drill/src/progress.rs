//! The terminal while a drill runs: one status line (phase, seconds left,
//! operations so far), rewritten in place on a terminal and printed every
//! few seconds otherwise, plus a line for each event.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::workload::tail::Counts;

/// Progress output on stderr.
pub struct Progress {
    tty: bool,
    label: String,
    last_plain: Option<Instant>,
    line_open: bool,
}

impl Progress {
    /// Progress for the scenario `label`.
    pub fn new(label: &str) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            label: label.to_owned(),
            last_plain: None,
            line_open: false,
        }
    }

    fn close_line(&mut self) {
        if self.line_open {
            eprintln!();
            self.line_open = false;
        }
    }

    /// An event: printed on a line of its own.
    pub fn event(&mut self, t_s: Option<f64>, text: &str) {
        self.close_line();
        match t_s {
            Some(t) => eprintln!("[{}] t={t:>6.2}s  {text}", self.label),
            None => eprintln!("[{}] {text}", self.label),
        }
    }

    /// The status line.
    pub fn status(&mut self, phase: &str, elapsed_s: f64, left_s: f64, counts: Counts) {
        let line = format!(
            "[{}] {phase:<24} t={elapsed_s:>5.1}s  {left_s:>5.1}s left  ops {} (ok {}, fail {}, unknown {})",
            self.label,
            counts.total(),
            counts.ok,
            counts.fail,
            counts.unknown
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
            self.line_open = true;
        } else if self.last_plain.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            eprintln!("{line}");
            self.last_plain = Some(Instant::now());
        }
    }

    /// Ends the status line.
    pub fn done(&mut self) {
        self.close_line();
    }
}
