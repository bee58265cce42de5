//! Read-only inspection of a stopped member's data directory: what its
//! disk holds, without starting it (the drill checks with it that a power
//! cut took nothing a member had already acted on).

use std::path::Path;

use crate::state_machine::snapshot_last_log_id;
use crate::wal;

/// How far a member's durable state reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableEnd {
    /// The last log index in its Raft log on disk (entries, or the last
    /// purged index if every entry was purged).
    pub log_index: Option<u64>,
    /// The last log index its snapshot file covers.
    pub snapshot_index: Option<u64>,
}

impl DurableEnd {
    /// The last log index the member can rebuild its state up to: every
    /// entry up to it is in the snapshot or the log.
    pub fn index(&self) -> Option<u64> {
        self.log_index.max(self.snapshot_index)
    }
}

/// Reads `data_dir/raft` and `data_dir/snapshot` as the member would on
/// start-up, changing nothing.
pub fn durable_end(data_dir: &Path) -> Result<DurableEnd, String> {
    let raft = data_dir.join("raft");
    let log_index = if raft.exists() {
        let recovered = wal::inspect(&raft).map_err(|e| e.to_string())?;
        recovered
            .entries
            .keys()
            .next_back()
            .copied()
            .or(recovered.purged.map(|p| p.index))
    } else {
        None
    };
    let snapshot_index = snapshot_last_log_id(&data_dir.join("snapshot"))?.map(|l| l.index);
    Ok(DurableEnd {
        log_index,
        snapshot_index,
    })
}
