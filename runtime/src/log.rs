//! Logging: to syslog with the plan's ident, facility and severity, or to standard
//! error when running in the foreground. One global logger, set once by the master and
//! again by each worker after the fork (workers log with the tcprelay section's
//! syslog settings).
//!
//! Messages must never contain secrets; nothing here can know, so callers log plan
//! values only through their `Display`, which redacts secrets.

use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;
use tcprelay_plan::{Severity, Syslog};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Stderr,
    Syslog,
}

static TARGET_SYSLOG: AtomicU8 = AtomicU8::new(0);
static MAX_SEVERITY: AtomicU8 = AtomicU8::new(Severity::Info as u8);
static DEBUG_LEVEL: AtomicU32 = AtomicU32::new(0);
/// The ident string must outlive every `syslog(3)` call: openlog keeps the pointer.
static IDENT: Mutex<Option<CString>> = Mutex::new(None);
static PREFIX: Mutex<String> = Mutex::new(String::new());

/// Sets up logging. `debug` is the `-d` level: above 0 it lets debug lines through.
pub fn init(target: Target, syslog: &Syslog, debug: u32, prefix: &str) {
    let mut max = syslog.severity as u8;
    if debug > 0 {
        max = Severity::Debug as u8;
    }
    MAX_SEVERITY.store(max, Ordering::Relaxed);
    DEBUG_LEVEL.store(debug, Ordering::Relaxed);
    *PREFIX.lock().unwrap_or_else(|e| e.into_inner()) = prefix.to_string();
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

/// Re-initialises logging in a worker after the fork, with the tcprelay section's
/// syslog settings and the same target and debug level as the master.
pub fn reinit_for_worker(syslog: &Syslog) {
    let target = if TARGET_SYSLOG.load(Ordering::Relaxed) == 1 {
        Target::Syslog
    } else {
        Target::Stderr
    };
    init(target, syslog, debug_level(), "worker ");
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
    let text = message.to_string();
    if TARGET_SYSLOG.load(Ordering::Relaxed) == 1 {
        let line = CString::new(text.replace('\0', "")).unwrap_or_default();
        // SAFETY: "%s" with one NUL-terminated string argument.
        unsafe {
            libc::syslog(severity.code(), c"%s".as_ptr(), line.as_ptr());
        }
    } else {
        let prefix = PREFIX.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // One write per line: the master and its workers share standard error, and a
        // line written in pieces would interleave with theirs.
        let line = format!(
            "{prefix}[{}] {}: {text}\n",
            std::process::id(),
            severity.name().to_lowercase()
        );
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
    use std::process::Command;

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
