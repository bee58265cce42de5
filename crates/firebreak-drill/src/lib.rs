//! stub
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct DrillArgs {}
#[derive(clap::Args, Debug)]
pub struct CheckArgs {}
#[derive(clap::Args, Debug)]
pub struct ClientArgs {}
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("not implemented yet")]
    NotImplemented,
}
pub fn run_drill(_args: DrillArgs) -> Result<ExitCode, DrillError> {
    Err(DrillError::NotImplemented)
}
pub fn run_check(_args: CheckArgs) -> Result<ExitCode, DrillError> {
    Err(DrillError::NotImplemented)
}
pub fn run_client(_args: ClientArgs) -> Result<ExitCode, DrillError> {
    Err(DrillError::NotImplemented)
}
