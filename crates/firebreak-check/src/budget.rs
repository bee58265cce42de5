//! How much work a check may do: the [`Budget`] callers pass in, and the
//! internal `Meter` that the search consults as it goes.
//!
//! # Correctness
//!
//! - Running out of budget can only ever turn a verdict into `UNKNOWN`:
//!   every search that stops early reports that it was exhausted, and the
//!   checker never reads an exhausted search as "linearizable".
//! - Steps are counted across the whole check (all keys share one meter), so
//!   `max_steps` bounds the total search work deterministically, independent
//!   of machine speed.

use std::time::{Duration, Instant};

/// Limits on one call of [`crate::check_history`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Wall-clock limit for the linearizability search over all keys.
    pub max_duration: Option<Duration>,
    /// Limit on search steps (one step = one attempt to linearize or undo an
    /// operation) over all keys; deterministic, unlike `max_duration`.
    pub max_steps: Option<u64>,
    /// Extra wall-clock time allowed for shrinking the counterexamples of
    /// non-linearizable keys (shared among them). `None` reports unshrunk
    /// witnesses.
    pub minimize: Option<Duration>,
}

impl Default for Budget {
    /// One minute of search, no step limit, up to two seconds of
    /// counterexample shrinking in all.
    fn default() -> Self {
        Budget {
            max_duration: Some(Duration::from_secs(60)),
            max_steps: None,
            minimize: Some(Duration::from_secs(2)),
        }
    }
}

impl Budget {
    /// No limits at all (the search may take exponential time).
    pub fn unlimited() -> Self {
        Budget {
            max_duration: None,
            max_steps: None,
            minimize: Some(Duration::from_secs(2)),
        }
    }

    /// A wall-clock limit, with the default shrinking allowance.
    pub fn with_duration(max_duration: Duration) -> Self {
        Budget {
            max_duration: Some(max_duration),
            ..Budget::default()
        }
    }

    /// A step limit (and no wall-clock limit).
    pub fn with_steps(max_steps: u64) -> Self {
        Budget {
            max_duration: None,
            max_steps: Some(max_steps),
            ..Budget::default()
        }
    }

    /// Sets the counterexample-shrinking allowance.
    pub fn minimize(mut self, allowance: Option<Duration>) -> Self {
        self.minimize = allowance;
        self
    }
}

impl From<Duration> for Budget {
    fn from(max_duration: Duration) -> Self {
        Budget::with_duration(max_duration)
    }
}

/// How often (in steps) the wall clock is consulted (first on step 1, so a
/// zero duration stops every search before its first step).
const CLOCK_EVERY: u64 = 1024;

/// Counts search steps against a deadline and a step limit.
#[derive(Debug)]
pub(crate) struct Meter {
    deadline: Option<Instant>,
    max_steps: Option<u64>,
    steps: u64,
    exhausted: bool,
}

impl Meter {
    pub(crate) fn new(deadline: Option<Instant>, max_steps: Option<u64>) -> Self {
        Meter {
            deadline,
            max_steps,
            steps: 0,
            exhausted: false,
        }
    }

    /// Starts a meter for `budget`, counting time from now.
    pub(crate) fn start(budget: &Budget) -> Self {
        let now = Instant::now();
        Meter::new(budget.max_duration.map(|d| now + d), budget.max_steps)
    }

    /// Records one step; returns `false` once the budget is used up (and
    /// from then on).
    pub(crate) fn tick(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        self.steps += 1;
        if self.max_steps.is_some_and(|max| self.steps > max) {
            self.exhausted = true;
            return false;
        }
        if self.steps % CLOCK_EVERY == 1 {
            if let Some(deadline) = self.deadline {
                if Instant::now() >= deadline {
                    self.exhausted = true;
                    return false;
                }
            }
        }
        true
    }

    /// Whether the budget is used up.
    pub(crate) fn is_exhausted(&mut self) -> bool {
        if !self.exhausted {
            let out_of_steps = self.max_steps.is_some_and(|max| self.steps >= max);
            let out_of_time = self.deadline.is_some_and(|d| Instant::now() >= d);
            self.exhausted = out_of_steps || out_of_time;
        }
        self.exhausted
    }

    /// Steps taken so far.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_limit_exhausts_and_stays_exhausted() {
        let mut meter = Meter::start(&Budget::with_steps(3));
        assert!(meter.tick());
        assert!(meter.tick());
        assert!(meter.tick());
        assert!(!meter.tick());
        assert!(!meter.tick());
        assert!(meter.is_exhausted());
    }

    #[test]
    fn zero_duration_exhausts() {
        let mut meter = Meter::start(&Budget::with_duration(Duration::ZERO));
        assert!(meter.is_exhausted());
    }
}
