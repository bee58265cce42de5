//! [`DrillError`]: why a drill (or a check, or a client) could not run to
//! the end. A drill that runs to the end and finds a violation is not an
//! error: it is a report with verdict FAIL.

use std::path::PathBuf;

/// Why the drill could not produce a report, grouped by what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The flags are inconsistent: fix the command line.
    #[error("invalid arguments: {0}")]
    Usage(String),
    /// This machine cannot host the lab as asked (no root, no `ip` or
    /// `nft`, no namespaces): fix the environment or use `--no-netns`.
    #[error("{0}")]
    Environment(String),
    /// A system command the lab needs failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// A file or socket operation failed.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What the drill was doing.
        what: &'static str,
        /// The file or address involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster under test did not come up, or could not be observed
    /// after the fault (see the member logs in the report directory).
    #[error("cluster: {0}")]
    Cluster(String),
    /// A history file could not be read or written.
    #[error(transparent)]
    History(#[from] firebreak_check::HistoryError),
    /// The drill itself went wrong (a bug: please report it).
    #[error("internal error: {0}")]
    Internal(String),
    /// Ctrl-C or SIGTERM: everything created was removed.
    #[error("interrupted by {0}; the drill removed everything it had created")]
    Interrupted(&'static str),
}

impl From<firebreak_netlab::relay::RelayError> for DrillError {
    fn from(e: firebreak_netlab::relay::RelayError) -> DrillError {
        DrillError::Io {
            what: e.what,
            path: e.at.into(),
            source: e.source,
        }
    }
}

impl DrillError {
    /// An [`DrillError::Io`] for `path`.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DrillError {
        let path = path.into();
        move |source| DrillError::Io { what, path, source }
    }
}
