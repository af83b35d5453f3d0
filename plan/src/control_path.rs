//! Where the master's control socket is when the plan names none, resolved alike by
//! the master, `tcprelay ctl` and `tcprelay-cc diff --running` (one rule, here).

use std::ffi::OsString;
use std::path::PathBuf;

/// The socket's name inside its directory.
pub const SOCKET_NAME: &str = "ctl";

/// What the default path depends on, read once from the process
/// (the runtime's `ctl::current_env`) or given by a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathEnv {
    /// `$RUNTIME_DIRECTORY`: systemd's `RuntimeDirectory=` (and the test harness's
    /// temporary directory).
    pub runtime_directory: Option<OsString>,
    /// `$XDG_RUNTIME_DIR`: a user's runtime directory.
    pub xdg_runtime_dir: Option<OsString>,
    /// Whether the process runs as root (effective uid 0).
    pub root: bool,
}

/// An absolute directory from a variable's value; an unset, empty or relative value
/// is none (the XDG specification says to ignore a relative one). systemd's
/// `RUNTIME_DIRECTORY` may list several directories separated by `:`; the first is
/// taken.
fn directory(value: Option<&OsString>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value?.as_bytes();
    let first = bytes.split(|&b| b == b':').next().unwrap_or_default();
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(first));
    path.is_absolute().then_some(path)
}

/// The control socket's path when the plan names none: `$RUNTIME_DIRECTORY/ctl`,
/// else `/run/tcprelay/ctl` as root, else `$XDG_RUNTIME_DIR/tcprelay/ctl`, else none
/// (the master then runs without a control socket and says so in one line).
pub fn default_path(env: &PathEnv) -> Option<PathBuf> {
    if let Some(dir) = directory(env.runtime_directory.as_ref()) {
        return Some(dir.join(SOCKET_NAME));
    }
    if env.root {
        return Some(PathBuf::from("/run/tcprelay").join(SOCKET_NAME));
    }
    directory(env.xdg_runtime_dir.as_ref()).map(|dir| dir.join("tcprelay").join(SOCKET_NAME))
}

/// Where the socket is: the plan's path when it gives one (`false`: its directory
/// must exist), else [`default_path`] (`true`: the master creates its directory,
/// `/run/tcprelay` or `$XDG_RUNTIME_DIR/tcprelay`, when missing).
pub fn resolve(configured: Option<&str>, env: &PathEnv) -> Option<(PathBuf, bool)> {
    match configured {
        Some(path) => Some((PathBuf::from(path), false)),
        None => default_path(env).map(|path| (path, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(runtime: Option<&str>, xdg: Option<&str>, root: bool) -> PathEnv {
        PathEnv {
            runtime_directory: runtime.map(OsString::from),
            xdg_runtime_dir: xdg.map(OsString::from),
            root,
        }
    }

    fn path(p: &str) -> Option<PathBuf> {
        Some(PathBuf::from(p))
    }

    #[test]
    fn default_path_follows_the_designs_order() {
        // RUNTIME_DIRECTORY first, as root or not, XDG or not.
        for root in [false, true] {
            let e = env(Some("/run/relay"), Some("/run/user/1000"), root);
            assert_eq!(default_path(&e), path("/run/relay/ctl"));
        }
        // systemd lists several directories with `:`; the first is the socket's.
        let e = env(Some("/run/a:/run/b"), None, false);
        assert_eq!(default_path(&e), path("/run/a/ctl"));
        // Root: /run/tcprelay, even with an XDG directory.
        let e = env(None, Some("/run/user/0"), true);
        assert_eq!(default_path(&e), path("/run/tcprelay/ctl"));
        // A user: its runtime directory.
        let e = env(None, Some("/run/user/1000"), false);
        assert_eq!(default_path(&e), path("/run/user/1000/tcprelay/ctl"));
        // Nothing: no socket.
        assert_eq!(default_path(&env(None, None, false)), None);
    }

    #[test]
    fn empty_or_relative_directories_are_ignored() {
        let e = env(Some(""), Some("relative/dir"), false);
        assert_eq!(default_path(&e), None);
        let e = env(Some("run"), Some("/run/user/7"), false);
        assert_eq!(default_path(&e), path("/run/user/7/tcprelay/ctl"));
        let e = env(Some(""), None, true);
        assert_eq!(default_path(&e), path("/run/tcprelay/ctl"));
    }

    #[test]
    fn a_configured_path_wins_and_is_not_the_default() {
        let e = env(Some("/run/relay"), None, true);
        assert_eq!(
            resolve(Some("/srv/relay.sock"), &e),
            Some((PathBuf::from("/srv/relay.sock"), false))
        );
        assert_eq!(
            resolve(None, &e),
            Some((PathBuf::from("/run/relay/ctl"), true))
        );
        assert_eq!(resolve(None, &PathEnv::default()), None);
    }
}
