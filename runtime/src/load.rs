//! Loading a plan: read, decode, validate — all before any socket is bound. A
//! configuration (the original's command line) is compiled by running `tcprelay-cc`,
//! so that the runtime never links the parser.

use crate::args::PlanSource;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use tcprelay_plan::Plan;

/// The `tcprelay-cc` to run: `$TCPRELAY_CC`, else the one beside this binary, else
/// the one on the PATH.
pub fn compiler() -> PathBuf {
    if let Some(path) = std::env::var_os("TCPRELAY_CC") {
        return PathBuf::from(path);
    }
    if let Ok(exe) = std::env::current_exe() {
        let beside = exe.with_file_name("tcprelay-cc");
        if beside.exists() {
            return beside;
        }
    }
    PathBuf::from("tcprelay-cc")
}

/// Reads and validates a plan file. The error is one line naming the file.
pub fn read_plan(path: &std::path::Path) -> Result<Plan, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (_, plan) =
        tcprelay_plan::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    plan.validate()
        .map_err(|e| format!("{}: invalid plan: {e}", path.display()))?;
    Ok(plan)
}

/// Loads the plan from `source`, compiling a configuration when that is the source.
/// Diagnostics of the compiler go to standard error (they carry no secrets).
pub fn load(source: &PlanSource) -> Result<Plan, String> {
    match source {
        PlanSource::Plan(path) => read_plan(path),
        PlanSource::Config {
            cfg,
            spawnd_id,
            child_id,
        } => {
            // A private directory, so no other user can swap the plan between its
            // writing and its reading.
            let dir =
                std::env::temp_dir().join(format!("tcprelay-{}-{}", std::process::id(), unique()));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let out = dir.join("config.plan");
            let cc = compiler();
            let status = Command::new(&cc)
                .args([
                    "compile", "--format", "short", cfg, spawnd_id, "-i", child_id, "-o",
                ])
                .arg(&out)
                .stdin(if cfg == "-" {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .status()
                .map_err(|e| format!("cannot run {}: {e}", cc.display()))?;
            let result = if status.success() {
                read_plan(&out)
            } else {
                Err(format!("{cfg}: the configuration has errors (see above)"))
            };
            let _ = std::fs::remove_file(&out);
            let _ = std::fs::remove_dir(&dir);
            result
        }
    }
}

/// `-P`: runs `tcprelay-cc check` and returns its exit code.
pub fn check_only(source: &PlanSource) -> i32 {
    let cc = compiler();
    let status = match source {
        PlanSource::Plan(path) => {
            return read_plan(path).map_or_else(
                |e| {
                    eprintln!("tcprelay: {e}");
                    1
                },
                |_| 0,
            )
        }
        PlanSource::Config {
            cfg,
            spawnd_id,
            child_id,
        } => Command::new(&cc)
            .args(["check", cfg, spawnd_id, "-i", child_id])
            .status(),
    };
    match status {
        Ok(s) => s.code().unwrap_or(2),
        Err(e) => {
            eprintln!("tcprelay: cannot run {}: {e}", cc.display());
            2
        }
    }
}

fn unique() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
