//! Why a benchmark run could not be made. Failures of single requests are
//! not errors of the run: they are counted in the report by kind.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The arguments cannot describe a run: fix the command line.
    #[error("invalid arguments: {0}")]
    Usage(String),
    /// An endpoint could not be reached before the run started.
    #[error("cannot connect to {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    /// `--target leader`, and no endpoint reports itself leader.
    #[error("no endpoint reports itself leader ({0})")]
    NoLeader(String),
    #[error("fsync probe in {dir}: {source}")]
    Fsync { dir: PathBuf, source: std::io::Error },
    /// The WAN relay could not start (a gateway address is missing, a port
    /// is taken).
    #[error("WAN relay: {0}")]
    Relay(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot encode the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
}
