//! A value built from files, rebuilt when their contents change.
//!
//! Every [`Reloading::current`] reads the files again (a few small files,
//! once per TLS handshake) and compares their bytes with those the current
//! value was built from; only a change costs a rebuild. Comparing bytes
//! rather than modification times also catches a file rewritten within the
//! file system's timestamp granularity, and a rename over it.
//!
//! # Correctness
//! - A value is replaced only by one built successfully from a complete
//!   set of files: a certificate and a key that do not match (as while an
//!   operator has written the new certificate but not yet its key), a
//!   half-written file or a missing one leave the previous value in use,
//!   with a warning, and are tried again once the bytes change again.
//! - A handshake that starts after the files were replaced (and make a
//!   usable set) uses the new value; handshakes already done keep theirs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::TlsError;

/// Builds the value from the files' contents, in the order of the paths.
type Build<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync>;

/// A value built from `files`, kept in step with them.
pub struct Reloading<T> {
    /// What this value is, for the log.
    what: &'static str,
    files: Vec<PathBuf>,
    build: Build<T>,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The contents `current` was built from.
    contents: Vec<Vec<u8>>,
    current: Arc<T>,
    /// The last problem reported, so that a bad set of files is reported
    /// once rather than at every handshake.
    reported: Option<String>,
}

fn read_all(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, TlsError> {
    files
        .iter()
        .map(|path| {
            std::fs::read(path).map_err(|e| TlsError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

impl<T> Reloading<T> {
    /// Reads the files and builds the first value; any problem is an error.
    pub fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        build: impl Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, TlsError> {
        let contents = read_all(&files)?;
        let current = Arc::new(build(&contents)?);
        Ok(Reloading {
            what,
            files,
            build: Box::new(build),
            state: Mutex::new(State {
                contents,
                current,
                reported: None,
            }),
        })
    }

    /// The value for the files as they are now, or the last good one.
    pub fn current(&self) -> Arc<T> {
        let read = read_all(&self.files);
        let mut state = self.state.lock().expect("reload lock");
        let contents = match read {
            Ok(contents) if contents == state.contents => return state.current.clone(),
            Ok(contents) => contents,
            Err(e) => {
                self.report(&mut state, e);
                return state.current.clone();
            }
        };
        match (self.build)(&contents) {
            Ok(value) => {
                tracing::info!(what = self.what, files = ?self.files, "TLS files changed: new handshakes use them");
                state.contents = contents;
                state.current = Arc::new(value);
                state.reported = None;
            }
            Err(e) => self.report(&mut state, e),
        }
        state.current.clone()
    }

    fn report(&self, state: &mut State<T>, e: TlsError) {
        let text = e.to_string();
        if state.reported.as_deref() != Some(&text) {
            tracing::warn!(what = self.what, error = %text, "TLS files unusable; keeping the previous ones");
            state.reported = Some(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(contents: &[Vec<u8>]) -> Result<String, TlsError> {
        let text: String = contents
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        if text.contains("bad") {
            return Err(TlsError::Refused {
                what: "test".into(),
                reason: "bad".into(),
            });
        }
        Ok(text)
    }

    #[test]
    fn a_changed_file_is_picked_up_and_a_bad_one_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1").unwrap();
        std::fs::write(&b, "x").unwrap();
        let r = Reloading::new("test", vec![a.clone(), b.clone()], concat).unwrap();
        assert_eq!(*r.current(), "1x");
        // Same length, same second: the bytes tell.
        std::fs::write(&a, "2").unwrap();
        assert_eq!(*r.current(), "2x");
        std::fs::write(&b, "bad").unwrap();
        assert_eq!(*r.current(), "2x", "a set that does not build is not used");
        std::fs::remove_file(&a).unwrap();
        assert_eq!(*r.current(), "2x", "a missing file is not used");
        std::fs::write(&a, "3").unwrap();
        std::fs::write(&b, "y").unwrap();
        assert_eq!(*r.current(), "3y");
    }

    #[test]
    fn the_first_build_must_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        assert!(matches!(
            Reloading::new("test", vec![a.clone()], concat),
            Err(TlsError::Read { .. })
        ));
        std::fs::write(&a, "bad").unwrap();
        assert!(Reloading::new("test", vec![a], concat).is_err());
    }
}
