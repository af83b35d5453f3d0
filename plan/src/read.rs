//! Reading a plan file with the limits every reader needs: only a regular file is
//! read (a symlink to `/dev/zero` or `/dev/urandom`, a FIFO or a directory is refused
//! before a byte is read), opening it never blocks, and no more than
//! [`MAX_PLAN_SIZE`] bytes are read. Without these a plan path that names
//! `/dev/zero` is read until memory runs out, and a FIFO makes the reader wait for a
//! writer forever.
//!
//! The file is opened with `O_NONBLOCK`, so that opening a FIFO with no writer
//! returns at once, and then checked with `fstat`: what is checked is what was
//! opened.
//!
//! [`read_regular`] is the one reader of such files for the whole project: the
//! compiler reads configurations and certificate files with it, the runtime plans,
//! certificates and keys.

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest plan read, in bytes. A plan is far smaller than the configuration it
/// was compiled from; this leaves room for one of a million lines.
pub const MAX_PLAN_SIZE: u64 = 64 * 1024 * 1024;

/// Why a plan file could not be read. Displays as one line that names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// Opening or reading the file failed.
    Io { path: PathBuf, source: io::Error },
    /// The path names something other than a regular file; `kind` says what.
    NotRegular { path: PathBuf, kind: &'static str },
    /// The file is larger than `limit` bytes.
    TooLarge { path: PathBuf, limit: u64 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ReadError::NotRegular { path, kind } => write!(
                f,
                "cannot read {}: it is {kind}, not a regular file",
                path.display()
            ),
            ReadError::TooLarge { path, limit } => write!(
                f,
                "cannot read {}: it is larger than {} MiB, the limit for a plan",
                path.display(),
                limit / (1024 * 1024)
            ),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads the plan file at `path`: a regular file of at most [`MAX_PLAN_SIZE`] bytes.
/// The bytes are for [`crate::decode`].
pub fn read_plan(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_limited(path, MAX_PLAN_SIZE)
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_regular(path, limit).map_err(|refused| match refused {
        Refused::Io(source) => ReadError::Io {
            path: path.to_path_buf(),
            source,
        },
        Refused::NotRegular(kind) => ReadError::NotRegular {
            path: path.to_path_buf(),
            kind,
        },
        Refused::TooLarge => ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        },
    })
}

/// Why [`read_regular`] read nothing.
#[derive(Debug)]
pub enum Refused {
    /// Opening or reading failed.
    Io(io::Error),
    /// Not a regular file: what it is, for a message ("a FIFO", ...).
    NotRegular(&'static str),
    /// Larger than the limit.
    TooLarge,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Io(e) => write!(f, "{e}"),
            Refused::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            Refused::TooLarge => f.write_str("it is larger than the limit"),
        }
    }
}

/// Reads the regular file at `path`, at most `limit` bytes. It is opened with
/// `O_NONBLOCK`, so that opening a FIFO with no writer returns at once instead of
/// waiting for one, and then checked with `fstat`: what is not a regular file
/// (`/dev/zero`, a FIFO, a directory) is refused before any read.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, Refused> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(Refused::Io)?;
    let meta = file.metadata().map_err(Refused::Io)?;
    if !meta.is_file() {
        return Err(Refused::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > limit {
        return Err(Refused::TooLarge);
    }
    // The file may grow after the `fstat`: read one byte past the limit at most.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Refused::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Refused::TooLarge);
    }
    Ok(bytes)
}

/// What a file that is not a regular one is, for a message.
fn kind_of(t: &FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device (such as /dev/zero or /dev/urandom)"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A directory of its own under the system's temporary directory, removed when
    /// dropped (this crate has no tempfile).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("tcprelay-plan-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch directory");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Reads `path` in a thread and fails the test, instead of hanging it, when that
    /// takes more than 5 s.
    fn read_within_5_s(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
        let path = path.to_path_buf();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_limited(&path, limit));
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the read returns within 5 s")
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = Scratch::new("regular");
        let path = dir.0.join("a.plan");
        std::fs::write(&path, b"TCPRPLAN and the rest").unwrap();
        assert_eq!(read_plan(&path).unwrap(), b"TCPRPLAN and the rest");
        // Exactly at the limit is fine.
        assert_eq!(read_limited(&path, 21).unwrap().len(), 21);
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_without_blocking() {
        let dir = Scratch::new("kinds");
        let zero = dir.0.join("zero.plan");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let random = dir.0.join("random.plan");
        std::os::unix::fs::symlink("/dev/urandom", &random).unwrap();
        let fifo = dir.0.join("fifo.plan");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        for (path, kind) in [
            (
                &zero,
                "a character device (such as /dev/zero or /dev/urandom)",
            ),
            (
                &random,
                "a character device (such as /dev/zero or /dev/urandom)",
            ),
            // No writer: a blocking open would wait for one.
            (&fifo, "a FIFO"),
            (&dir.0, "a directory"),
        ] {
            let err = read_within_5_s(path, MAX_PLAN_SIZE).unwrap_err();
            assert!(matches!(err, ReadError::NotRegular { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot read {}: it is {kind}, not a regular file",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_naming_the_limit() {
        let dir = Scratch::new("large");
        let path = dir.0.join("big.plan");
        std::fs::write(&path, vec![0u8; 2 * 1024 * 1024 + 1]).unwrap();
        let err = read_limited(&path, 2 * 1024 * 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read {}: it is larger than 2 MiB, the limit for a plan",
                path.display()
            )
        );
        assert_eq!(MAX_PLAN_SIZE, 64 * 1024 * 1024);
    }

    #[test]
    fn a_missing_file_is_one_line_naming_it() {
        let err = read_plan(Path::new("/nonexistent/dir/a.plan")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent/dir/a.plan: No such file or directory (os error 2)"
        );
    }
}
