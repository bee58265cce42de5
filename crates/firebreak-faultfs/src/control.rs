//! The control file, `.faultfs-control` at the root of every faultfs mount:
//! how another process triggers a power cut.
//!
//! ```sh
//! echo power-cut > /mnt/member/.faultfs-control   # returns once the cut is done
//! cat /mnt/member/.faultfs-control                # power_cuts 1, dirty_bytes 0, ...
//! ```
//!
//! The file is not listed by `readdir` (a process scanning its data
//! directory never sees it) but can be opened by name; it cannot be
//! created, removed or renamed. Writing [`POWER_CUT_COMMAND`] (surrounding
//! whitespace ignored) cuts the power; anything else fails with `EINVAL`.
//! Reading it gives the [`Stats`](crate::Stats), one `name value` a line.

use std::io::Write;
use std::path::Path;

use crate::error::{FaultFsError, FsError};
use crate::model::{Stats, CONTROL_FILE};

/// The control file's inode number (far above any the model hands out).
pub(crate) const CONTROL_INO: u64 = 1 << 62;

/// What to write to the control file to cut the power.
pub const POWER_CUT_COMMAND: &str = "power-cut";

/// A command written to the control file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    PowerCut,
}

/// Parses what a process wrote.
pub(crate) fn parse(input: &[u8]) -> Result<Command, FsError> {
    match std::str::from_utf8(input).map(str::trim) {
        Ok(POWER_CUT_COMMAND) => Ok(Command::PowerCut),
        _ => Err(FsError::Invalid),
    }
}

/// What reading the control file gives.
pub(crate) fn status(stats: &Stats) -> String {
    format!(
        "power_cuts {}\ndirty_bytes {}\ndirty_files {}\npending_dirs {}\ninodes {}\nopen_handles {}\n",
        stats.power_cuts, stats.dirty_bytes, stats.dirty_files, stats.pending_dirs, stats.inodes, stats.open_handles
    )
}

/// Cuts the power of the faultfs mounted at `mountpoint`, from any process
/// (through its control file). Returns once the cut is done.
pub fn power_cut_via_control(mountpoint: &Path) -> Result<(), FaultFsError> {
    let path = mountpoint.join(CONTROL_FILE);
    let io = |source| FaultFsError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io)?;
    file.write_all(format!("{POWER_CUT_COMMAND}\n").as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_power_cut_command_is_understood() {
        assert_eq!(parse(b"power-cut\n").unwrap(), Command::PowerCut);
        assert_eq!(parse(b"  power-cut").unwrap(), Command::PowerCut);
        assert!(matches!(parse(b"power cut"), Err(FsError::Invalid)));
        assert!(matches!(parse(b""), Err(FsError::Invalid)));
        assert!(matches!(parse(&[0xff, 0xfe]), Err(FsError::Invalid)));
    }

    #[test]
    fn the_status_names_every_figure() {
        let text = status(&Stats {
            power_cuts: 2,
            dirty_bytes: 10,
            ..Stats::default()
        });
        assert!(
            text.contains("power_cuts 2\n") && text.contains("dirty_bytes 10\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 6);
    }
}
