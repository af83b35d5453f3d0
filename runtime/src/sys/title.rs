//! Process titles as `ps` shows them (`/proc/PID/cmdline`), the way nginx and the
//! original's `setproctitle` do it on Linux: the strings the kernel placed at `exec`
//! for the arguments (and, right after them, the environment) are overwritten with
//! the title. Their bounds come from `/proc/self/stat` (`arg_start`, `arg_end`,
//! `env_start`, `env_end`); the environment's strings are first copied to the heap
//! and `environ` pointed at the copies, so that `getenv` never reads the title.
//! The kernel's short name (`ps -o comm`, `/proc/PID/comm`) is left alone: it stays
//! the program's name, which `killall tcprelay`, `pgrep -x tcprelay` and monitoring
//! match on.
//!
//! Elsewhere than Linux `set` does nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The writable area: its start address and length (0: none found).
static START: AtomicUsize = AtomicUsize::new(0);
static LEN: AtomicUsize = AtomicUsize::new(0);

/// Finds the area and frees the environment's part of it. Call once, at start,
/// while the process has one thread and after the arguments were read (they are
/// overwritten by the first title).
#[cfg(target_os = "linux")]
pub fn init() -> std::io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which may hold spaces and parentheses: the
    // last `)` ends it. The first field after it is the 3rd (state).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let field = |n: usize| -> std::io::Result<usize> {
        after
            .split_whitespace()
            .nth(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| std::io::ErrorKind::InvalidData.into())
    };
    let (arg_start, arg_end) = (field(48)?, field(49)?);
    let (env_start, env_end) = (field(50)?, field(51)?);
    if arg_start == 0 || arg_end <= arg_start {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut end = arg_end;
    if env_start == arg_end && env_end > env_start {
        relocate_environment(env_start, env_end);
        end = env_end;
    }
    LEN.store(end - arg_start, Ordering::Relaxed);
    START.store(arg_start, Ordering::Relaxed);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn init() -> std::io::Result<()> {
    Ok(())
}

/// Points every `environ` entry that lies in `[start, end)` at a copy of its string
/// on the heap (leaked: the environment lives as long as the process).
#[cfg(target_os = "linux")]
fn relocate_environment(start: usize, end: usize) {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: called once at start while the process has a single thread (the
    // master before anything else runs), so no `getenv`/`setenv` runs meanwhile.
    // `environ` is libc's NULL-terminated array of pointers to NUL-terminated
    // strings; each entry is read, and replaced by a pointer to an owned copy of
    // the same bytes, which is never freed.
    unsafe {
        let mut entry = std::ptr::addr_of!(environ).read();
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let at = *entry as usize;
            if (start..end).contains(&at) {
                let copy = std::ffi::CStr::from_ptr(*entry).to_owned();
                *entry = copy.into_raw();
            }
            entry = entry.add(1);
        }
    }
}

/// Sets the process title (cut to the area's length).
pub fn set(title: &str) {
    #[cfg(target_os = "linux")]
    {
        let (start, len) = (START.load(Ordering::Relaxed), LEN.load(Ordering::Relaxed));
        if start == 0 || len < 2 {
            return;
        }
        // SAFETY: `[start, start + len)` is the argument and environment strings the
        // kernel placed in this process's stack at `exec` (bounds from
        // /proc/self/stat), writable and mapped for the process's life. Nothing in
        // Rust refers to them: the arguments were read (copied) before `init`, and
        // `init` moved every environment string the C library could read to the
        // heap. A forked child writes its own copy.
        let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) };
        let bytes = title.as_bytes();
        let n = bytes.len().min(len - 1);
        area[..n].copy_from_slice(&bytes[..n]);
        area[n..].fill(0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = title;
}
