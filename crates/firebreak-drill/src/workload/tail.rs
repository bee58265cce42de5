//! Live counts for the progress line: reads what the clients appended to
//! their history files since the last look.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use firebreak_check::{HistoryEvent, Outcome};

/// Completed operations so far, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `ok` completions.
    pub ok: u64,
    /// `fail` completions.
    pub fail: u64,
    /// `unknown` completions (timeouts, lost connections).
    pub unknown: u64,
}

impl Counts {
    /// All completions.
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.unknown
    }
}

/// Follows a set of growing history files.
#[derive(Default)]
pub struct Tail {
    files: Vec<(PathBuf, u64, Vec<u8>)>,
    counts: Counts,
}

impl Tail {
    /// Starts following `path` (which may not exist yet).
    pub fn follow(&mut self, path: PathBuf) {
        self.files.push((path, 0, Vec::new()));
    }

    /// Reads what was appended and returns the counts so far.
    pub fn poll(&mut self) -> Counts {
        for (path, offset, partial) in &mut self.files {
            let Ok(mut file) = File::open(&*path) else { continue };
            if file.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut fresh = Vec::new();
            let Ok(n) = file.read_to_end(&mut fresh) else { continue };
            *offset += n as u64;
            partial.extend_from_slice(&fresh);
            let Some(last_newline) = partial.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let complete: Vec<u8> = partial.drain(..=last_newline).collect();
            for line in complete.split(|b| *b == b'\n') {
                let Ok(event) = serde_json::from_slice::<HistoryEvent>(line) else {
                    continue;
                };
                if event.complete_ns.is_none() {
                    continue;
                }
                match event.outcome {
                    Outcome::Ok => self.counts.ok += 1,
                    Outcome::Fail => self.counts.fail += 1,
                    Outcome::Unknown => self.counts.unknown += 1,
                }
            }
        }
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_check::{to_jsonl_line, OpResult, Operation};
    use std::io::Write;

    #[test]
    fn counts_completions_as_they_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let mut tail = Tail::default();
        tail.follow(path.clone());
        assert_eq!(tail.poll().total(), 0);
        let invoked = HistoryEvent::invoked(1, 1, None, Operation::Get { key: "k".into() }, 1);
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(file, "{}", to_jsonl_line(&invoked).unwrap()).unwrap();
        assert_eq!(tail.poll().total(), 0);
        let line = to_jsonl_line(&invoked.ok(2, OpResult::get(None, 1, None))).unwrap();
        write!(file, "{}", &line[..10]).unwrap();
        assert_eq!(tail.poll().total(), 0);
        writeln!(file, "{}", &line[10..]).unwrap();
        assert_eq!(
            tail.poll(),
            Counts {
                ok: 1,
                fail: 0,
                unknown: 0
            }
        );
    }
}
