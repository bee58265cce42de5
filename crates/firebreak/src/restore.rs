//! `firebreak restore`: prepares a member's data directory from a backup
//! taken with `etcdctl snapshot save` (or any `Maintenance.Snapshot`
//! client) against Firebreak or against etcd, as `etcdutl snapshot
//! restore` does for etcd. The file is etcd's snapshot format (a bbolt
//! database and its SHA-256); Firebreak's own earlier format still reads.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use firebreak_raft::maintenance::HashCheck;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The new, empty data directory of the member to restore (as in its
    /// config's `data_dir`). Restore every member of the new cluster from
    /// the same file, then start them with `firebreak serve`.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Restore a file without a SHA-256 trailer, or whose trailer does not
    /// match (such as a `member/snap/db` copied out of an etcd data
    /// directory), as `etcdutl snapshot restore --skip-hash-check` does.
    #[arg(long)]
    pub skip_hash_check: bool,
}

pub fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.snapshot).with_context(|| format!("cannot read {}", args.snapshot.display()))?;
    let check = if args.skip_hash_check {
        HashCheck::Skip
    } else {
        HashCheck::Verify
    };
    let replica = firebreak_raft::maintenance::restore_backup(&bytes, &args.data_dir, check)
        .with_context(|| format!("cannot restore {}", args.snapshot.display()))?;
    let compacted = match replica.store.compact_revision() {
        c if c < 1 => "never compacted".to_string(),
        c => format!("compacted at {c}"),
    };
    println!(
        "restored {} into {} (revision {}, {compacted}, {} leases, {} users, {} roles); start the member with `firebreak serve` on that data directory",
        args.snapshot.display(),
        args.data_dir.display(),
        replica.store.current_revision(),
        replica.store.lease_ids().len(),
        replica.auth.user_names().len(),
        replica.auth.role_names().len(),
    );
    Ok(())
}
