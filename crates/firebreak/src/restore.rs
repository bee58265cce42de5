//! `firebreak restore`: prepares a member's data directory from a backup
//! taken with `etcdctl snapshot save` (or any `Maintenance.Snapshot`
//! client), as `etcdutl snapshot restore` does for etcd.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The new, empty data directory of the member to restore (as in its
    /// config's `data_dir`). Restore every member of the new cluster from
    /// the same file, then start them with `firebreak serve`.
    #[arg(long)]
    pub data_dir: PathBuf,
}

pub fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.snapshot).with_context(|| format!("cannot read {}", args.snapshot.display()))?;
    firebreak_raft::maintenance::restore_backup(&bytes, &args.data_dir)?;
    println!(
        "restored {} into {}; start the member with `firebreak serve` on that data directory",
        args.snapshot.display(),
        args.data_dir.display()
    );
    Ok(())
}
