//! Logging: to syslog with the plan's ident, facility and severity, or to standard
//! error when running in the foreground. One global logger, set once by the master and
//! again by each worker after the fork (workers log with the tcprelay section's
//! syslog settings).
//!
//! Every line names the process that wrote it (`master`, or `worker PID gen N`) and is
//! rendered in the process's [`Format`] (`render.rs`). On standard error a line starts
//! with its time in UTC (`time.rs`), unless standard error is the systemd journal
//! (`JOURNAL_STREAM` names it): then with the `<N>` prefix journald reads the
//! severity from, and the journal stamps the time. Besides messages (`info!` and the
//! like), [`record`] writes structured records: an event and its fields.
//!
//! Messages must never contain secrets; nothing here can know, so callers log plan
//! values only through their `Display`, which redacts secrets.

mod render;
mod time;

pub use render::{Format, Value};

use render::{Body, Dest, Origin};
use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use tcprelay_plan::{Severity, Syslog};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Stderr,
    Syslog,
}

static TARGET_SYSLOG: AtomicU8 = AtomicU8::new(0);
/// Standard error is the systemd journal's stream (checked by `init`).
static JOURNAL: AtomicBool = AtomicBool::new(false);
static FORMAT: AtomicU8 = AtomicU8::new(0);
static MAX_SEVERITY: AtomicU8 = AtomicU8::new(Severity::Info as u8);
static DEBUG_LEVEL: AtomicU32 = AtomicU32::new(0);
/// The worker's generation, or `MASTER` in the master.
static GENERATION: AtomicU64 = AtomicU64::new(MASTER);
const MASTER: u64 = u64::MAX;
/// Which helper process this is (its lines say so): 0 none, 1 the health
/// checker, 2 the resolver.
static HELPER: AtomicU8 = AtomicU8::new(0);
/// This process's id, read once per process (0: not read yet): every log line names
/// it, and a worker writes two connection records per session, each of which would
/// otherwise cost a `getpid(2)`. `sys::process::fork` clears it in the child.
static PID: AtomicU32 = AtomicU32::new(0);

/// This process's id, from [`PID`].
fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Called in a child right after a fork: its log lines name its own id.
pub(crate) fn forked() {
    PID.store(0, Ordering::Relaxed);
}
/// The ident string must outlive every `syslog(3)` call: openlog keeps the pointer.
static IDENT: Mutex<Option<CString>> = Mutex::new(None);

/// Sets up logging for the master. `debug` is the `-d` level: above 0 it lets debug
/// lines through.
pub fn init(target: Target, syslog: &Syslog, debug: u32, format: Format) {
    let journal = target == Target::Stderr
        && is_journal(
            std::env::var_os("JOURNAL_STREAM").as_deref(),
            std::io::stderr().as_fd(),
        );
    JOURNAL.store(journal, Ordering::Relaxed);
    FORMAT.store(format as u8, Ordering::Relaxed);
    setup(target, syslog, debug, MASTER);
}

fn setup(target: Target, syslog: &Syslog, debug: u32, generation: u64) {
    let mut max = syslog.severity as u8;
    if debug > 0 {
        max = Severity::Debug as u8;
    }
    MAX_SEVERITY.store(max, Ordering::Relaxed);
    DEBUG_LEVEL.store(debug, Ordering::Relaxed);
    GENERATION.store(generation, Ordering::Relaxed);
    match target {
        Target::Stderr => TARGET_SYSLOG.store(0, Ordering::Relaxed),
        Target::Syslog => {
            let ident = CString::new(syslog.ident.replace('\0', "")).unwrap_or_default();
            let mut slot = IDENT.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: the ident pointer stays valid: the CString is kept in IDENT until
            // the next `init`, which calls openlog again first.
            unsafe {
                libc::openlog(
                    ident.as_ptr(),
                    libc::LOG_PID | libc::LOG_NDELAY,
                    syslog.facility.code(),
                );
            }
            *slot = Some(ident);
            TARGET_SYSLOG.store(1, Ordering::Relaxed);
        }
    }
}

/// Re-initialises logging in a worker of `generation` after the fork, with the
/// tcprelay section's syslog settings, its plan's `format`, and the same target and
/// debug level as the master.
pub fn reinit_for_worker(syslog: &Syslog, generation: u64, format: Format) {
    FORMAT.store(format as u8, Ordering::Relaxed);
    let target = if TARGET_SYSLOG.load(Ordering::Relaxed) == 1 {
        Target::Syslog
    } else {
        Target::Stderr
    };
    setup(target, syslog, debug_level(), generation.min(MASTER - 1));
}

/// Marks this process as the health checker (in the child, after the fork): its
/// lines say `checker PID` (`proc=checker`), not `master`.
pub fn become_checker() {
    HELPER.store(1, Ordering::Relaxed);
}

/// Marks this process as the resolver (DNS discovery; in the child, after the
/// fork): its lines say `resolver PID` (`proc=resolver`).
pub fn become_resolver() {
    HELPER.store(2, Ordering::Relaxed);
}

/// Whether `target` is the stream `journal_stream` (the value of `JOURNAL_STREAM`,
/// `DEVICE:INODE` in decimal) names: systemd sets it for a service's standard output
/// and error connected to the journal, and a program that finds its own descriptor
/// there can log with `<N>` priority prefixes (sd-daemon(3)). A descriptor inherited
/// from elsewhere (redirected to a file, say) does not match, and gets timestamps.
pub fn is_journal(journal_stream: Option<&OsStr>, target: BorrowedFd<'_>) -> bool {
    let Some((dev, ino)) = journal_stream
        .and_then(OsStr::to_str)
        .and_then(|v| v.split_once(':'))
    else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = target.try_clone_to_owned().map(std::fs::File::from) else {
        return false;
    };
    file.metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The `-d` debug level.
pub fn debug_level() -> u32 {
    DEBUG_LEVEL.load(Ordering::Relaxed)
}

/// Whether a line of `severity` would be written.
pub fn enabled(severity: Severity) -> bool {
    severity as u8 <= MAX_SEVERITY.load(Ordering::Relaxed)
}

/// Writes one log line.
pub fn write(severity: Severity, message: std::fmt::Arguments<'_>) {
    if !enabled(severity) {
        return;
    }
    match message.as_str() {
        Some(text) => emit(severity, Body::Message(text)),
        None => emit(severity, Body::Message(&message.to_string())),
    }
}

/// Writes one structured record: `event` (a short name such as `session_end`) and
/// its `fields` in order, rendered in the process's format:
///
/// ```
/// use std::time::Duration;
/// use tcprelay::log::{record, Value};
/// use tcprelay_plan::Severity;
///
/// let client: std::net::SocketAddr = "192.0.2.1:40000".parse().unwrap();
/// let sni: Option<&str> = None;
/// record(
///     Severity::Info,
///     "session_end",
///     &[
///         ("client", Value::display(&client)),
///         ("sni", sni.into()),
///         ("bytes_up", 1234u64.into()),
///         ("duration", Duration::from_millis(1500).into()),
///     ],
/// );
/// ```
///
/// writes, in the text format,
/// `2026-12-01T22:15:21.123Z worker 812 gen 1 info: session_end client=192.0.2.1:40000 sni= bytes_up=1234 duration=1.500000s`.
/// Field names are the caller's constants; they must not repeat the line's own
/// (`ts`, `level`, `proc`, `pid`, `gen`, `event`, `msg`).
pub fn record(severity: Severity, event: &str, fields: &[(&str, Value<'_>)]) {
    if enabled(severity) {
        emit(severity, Body::Record { event, fields });
    }
}

fn emit(severity: Severity, body: Body<'_>) {
    let format = match FORMAT.load(Ordering::Relaxed) {
        1 => Format::Logfmt,
        2 => Format::Json,
        _ => Format::Text,
    };
    let generation = GENERATION.load(Ordering::Relaxed);
    let origin = Origin {
        pid: pid(),
        generation: (generation != MASTER).then_some(generation),
        helper: match HELPER.load(Ordering::Relaxed) {
            1 => Some("checker"),
            2 => Some("resolver"),
            _ => None,
        },
    };
    if TARGET_SYSLOG.load(Ordering::Relaxed) == 1 {
        let text = render::line(format, Dest::Syslog, origin, severity, body);
        // Rendering escaped every control character, NUL included.
        let line = CString::new(text).unwrap_or_default();
        // SAFETY: "%s" with one NUL-terminated string argument.
        unsafe {
            libc::syslog(severity.code(), c"%s".as_ptr(), line.as_ptr());
        }
    } else {
        let dest = if JOURNAL.load(Ordering::Relaxed) {
            Dest::Journal
        } else {
            Dest::Stderr(std::time::SystemTime::now())
        };
        // One write per line: the master and its workers share standard error, and a
        // line written in pieces would interleave with theirs.
        let mut line = render::line(format, dest, origin, severity, body);
        line.push('\n');
        // The crate's own tests write through the test harness's capture instead: a
        // passing test's log is dropped, a failing test's printed with its failure
        // (`--nocapture` shows all of it).
        if cfg!(test) {
            eprint!("{line}");
        } else {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

#[macro_export]
macro_rules! log_at {
    ($sev:ident, $($arg:tt)*) => {
        $crate::log::write(tcprelay_plan::Severity::$sev, format_args!($($arg)*))
    };
}

#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!(Err, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!(Warning, $($arg)*) }; }
#[macro_export]
macro_rules! notice { ($($arg:tt)*) => { $crate::log_at!(Notice, $($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log_at!(Info, $($arg)*) }; }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log_at!(Debug, $($arg)*) }; }

#[cfg(test)]
mod tests {
    use super::is_journal;

    /// The process id a line names is read once per process, and a forked child
    /// names its own, not the parent's it inherited with the cache.
    #[test]
    fn a_forked_child_names_its_own_pid() {
        assert_eq!(super::pid(), std::process::id(), "the parent's, now cached");
        let status = crate::sys::testing::in_child(|| {
            // No lock taken here: the pid and atomics only.
            if super::pid() != std::process::id() {
                crate::sys::process::exit_now(3);
            }
        })
        .expect("a child");
        assert_eq!(status.exit_status(), Some(0), "{status:?}");
    }
    use std::ffi::OsStr;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;

    /// `JOURNAL_STREAM` naming the very file the lines go to (its device and inode,
    /// as systemd writes them) makes it the journal; another file, a value that is not
    /// `DEVICE:INODE`, or no value does not.
    #[test]
    fn journal_stream_matches_only_the_descriptor_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let target = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let other = std::fs::File::create(dir.path().join("other")).unwrap();
        let meta = target.metadata().unwrap();
        let value = format!("{}:{}", meta.dev(), meta.ino());
        let value = Some(OsStr::new(&value));
        assert!(is_journal(value, target.as_fd()));
        assert!(!is_journal(value, other.as_fd()));
        assert!(!is_journal(None, target.as_fd()));
        let wrong_inode = format!("{}:{}", meta.dev(), meta.ino() + 1);
        let wrong_device = format!("{}:{}", meta.dev() + 1, meta.ino());
        for bad in [
            wrong_inode.as_str(),
            wrong_device.as_str(),
            "",
            ":",
            "garbage",
            &format!("{}", meta.ino()),
            &format!("{}:{}:", meta.dev(), meta.ino()),
            &format!(" {}:{}", meta.dev(), meta.ino()),
        ] {
            assert!(
                !is_journal(Some(OsStr::new(bad)), target.as_fd()),
                "{bad:?}"
            );
        }
    }

    /// Logs a line and passes or fails as `TCPRELAY_LOG_TEST` says; run by
    /// `a_passing_tests_log_is_silent_and_a_failing_tests_shown`, in a process of its own.
    #[test]
    #[ignore = "run by a_passing_tests_log_is_silent_and_a_failing_tests_shown"]
    fn logs_then_passes_or_fails() {
        let outcome = std::env::var("TCPRELAY_LOG_TEST").unwrap_or_default();
        // From another thread, as the worker tests' relays log.
        std::thread::spawn(move || crate::notice!("log line of a test that is to {outcome}"))
            .join()
            .expect("the logging thread");
        assert_ne!(std::env::var("TCPRELAY_LOG_TEST").as_deref(), Ok("fail"));
    }

    /// The log lines of a unit test are the test harness's to show: none when the
    /// test passes, all of them with a failure.
    #[test]
    fn a_passing_tests_log_is_silent_and_a_failing_tests_shown() {
        let run = |outcome: &str| {
            let out = Command::new(std::env::current_exe().expect("this test binary"))
                .args([
                    "--ignored",
                    "--exact",
                    "log::tests::logs_then_passes_or_fails",
                ])
                .env("TCPRELAY_LOG_TEST", outcome)
                .env_remove("RUST_TEST_NOCAPTURE")
                .output()
                .expect("the test binary runs");
            let text = [out.stdout, out.stderr].concat();
            (
                out.status.success(),
                String::from_utf8_lossy(&text).into_owned(),
            )
        };
        let (passed, output) = run("pass");
        assert!(passed, "{output}");
        assert!(!output.contains("log line of a test"), "{output}");
        assert!(output.contains("1 passed"), "{output}");
        let (passed, output) = run("fail");
        assert!(!passed, "{output}");
        assert!(
            output.contains("notice: log line of a test that is to fail"),
            "{output}"
        );
    }
}
