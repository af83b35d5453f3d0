//! Loading a plan: read, decode, validate — all before any socket is bound. A
//! configuration (the original's command line) is compiled by running `tcprelay-cc`,
//! so that the runtime never links the parser.
//!
//! A compile is a child process ([`Compile`]) that the caller waits for: at start
//! [`load`] simply waits; the master starts one on SIGHUP ([`start`]) and goes on
//! supervising its workers and obeying signals until the child has exited (its exit
//! is reaped with the workers'), so a configuration fetched from a server that stops
//! answering never stalls the master. What the compiler prints goes to a file in the
//! compile's private directory and is read back (at most [`MAX_OUTPUT`] bytes), so
//! the runtime can report it in its own log, whatever the log's target.

use crate::args::PlanSource;
use crate::os::ChildExit;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tcprelay_plan::Plan;

/// How much of the compiler's output is read back.
pub const MAX_OUTPUT: u64 = 64 * 1024;
/// How many of the compiler's lines an error carries.
const MAX_LINES: usize = 20;
/// How long a compile may run before it is killed. The compiler gives up fetching a
/// URL after 30 s itself; this bounds everything else.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Reads and validates a plan file (a regular file of at most
/// [`tcprelay_plan::MAX_PLAN_SIZE`] bytes). The error is one line naming the file.
pub fn read_plan(path: &Path) -> Result<Plan, String> {
    let bytes = tcprelay_plan::read_plan(path).map_err(|e| e.to_string())?;
    let (_, plan) =
        tcprelay_plan::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    plan.validate()
        .map_err(|e| format!("{}: invalid plan: {e}", path.display()))?;
    crate::checker::check_plan(&plan)
        .map_err(|e| format!("{}: invalid plan: {e}", path.display()))?;
    Ok(plan)
}

/// A plan being loaded: read already, or a compile still running.
#[derive(Debug)]
pub enum Started {
    Ready(Box<Loaded>),
    Compiling(Compile),
}

/// A loaded plan, and the compiler's warnings when it was compiled (its output
/// lines, at most [`MAX_LINES`]).
#[derive(Debug)]
pub struct Loaded {
    pub plan: Plan,
    pub warnings: Vec<String>,
}

impl Loaded {
    fn plan(plan: Plan) -> Loaded {
        Loaded {
            plan,
            warnings: Vec::new(),
        }
    }
}

/// A `tcprelay-cc compile` running as a child process.
#[derive(Debug)]
pub struct Compile {
    child: Child,
    cfg: String,
    dir: PathBuf,
    started: Instant,
}

/// Starts loading the plan from `source`: a plan file is read at once; a
/// configuration starts a compile.
pub fn start(source: &PlanSource) -> Result<Started, String> {
    match source {
        PlanSource::Plan(path) => {
            read_plan(path).map(|p| Started::Ready(Box::new(Loaded::plan(p))))
        }
        PlanSource::Config {
            cfg,
            spawnd_id,
            child_id,
        } => Compile::start(cfg, spawnd_id, child_id).map(Started::Compiling),
    }
}

/// Loads the plan from `source`, waiting for the compile when that is the source.
pub fn load(source: &PlanSource) -> Result<Loaded, String> {
    match start(source)? {
        Started::Ready(loaded) => Ok(*loaded),
        Started::Compiling(mut compile) => {
            let exit = compile.wait();
            compile.finish(exit)
        }
    }
}

impl Compile {
    fn start(cfg: &str, spawnd_id: &str, child_id: &str) -> Result<Compile, String> {
        // A private directory, so no other user can swap the plan between its writing
        // and its reading.
        let dir =
            std::env::temp_dir().join(format!("tcprelay-{}-{}", std::process::id(), unique()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let output = std::fs::File::create(dir.join("output"))
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!("cannot create a file in {}: {e}", dir.display())
            })?;
        let cc = compiler();
        let child = Command::new(&cc)
            .args([
                "compile", "--format", "short", "--color", "never", cfg, spawnd_id, "-i", child_id,
                "-o",
            ])
            .arg(dir.join("config.plan"))
            .stdin(if cfg == "-" {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stdout(output.0)
            .stderr(output.1)
            .spawn()
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!("cannot run {}: {e}", cc.display())
            })?;
        Ok(Compile {
            child,
            cfg: cfg.to_string(),
            dir,
            started: Instant::now(),
        })
    }

    /// The compiler's process id (its exit is reaped by the master with its workers').
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// When the compile has run for longer than [`COMPILE_TIMEOUT`].
    pub fn deadline(&self) -> Instant {
        self.started + COMPILE_TIMEOUT
    }

    /// Waits for the compiler to exit (at start, where nothing else is to be done),
    /// killing it at the deadline.
    fn wait(&mut self) -> ChildExit {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    return match (status.code(), status.signal()) {
                        (Some(code), _) => ChildExit::Code(code),
                        (None, Some(signal)) => ChildExit::Signal(signal),
                        (None, None) => ChildExit::Code(2),
                    };
                }
                Ok(None) if Instant::now() >= self.deadline() => {
                    let _ = self.child.kill();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    crate::warn!("cannot wait for the compiler: {e}");
                    return ChildExit::Code(2);
                }
            }
        }
    }

    /// Kills the compiler (a stop while it runs, or the deadline). Its exit is still
    /// to be reaped; [`Compile::finish`] or dropping the `Compile` cleans up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// The outcome once the compiler has exited with `exit`: the validated plan, or
    /// an error whose first line says what happened and whose further lines (at most
    /// [`MAX_LINES`]) are the compiler's own diagnostics.
    pub fn finish(self, exit: ChildExit) -> Result<Loaded, String> {
        let cfg = &self.cfg;
        let output = self.output();
        let mut lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        let more = lines.len().saturating_sub(MAX_LINES);
        lines.truncate(MAX_LINES);
        let details = || {
            let mut text = String::new();
            for line in &lines {
                text.push_str("\n  ");
                text.push_str(line.strip_prefix("tcprelay-cc: ").unwrap_or(line));
            }
            if more > 0 {
                text.push_str(&format!("\n  ({more} more lines)"));
            }
            text
        };
        match exit {
            ChildExit::Code(0) => read_plan(&self.dir.join("config.plan")).map(|plan| Loaded {
                plan,
                warnings: lines
                    .iter()
                    .map(|l| l.to_string())
                    .chain((more > 0).then(|| format!("({more} more lines)")))
                    .collect(),
            }),
            // `tcprelay-cc`: 1 is errors in the configuration, 2 is everything else
            // (the file or URL could not be read, a bad argument).
            ChildExit::Code(1) => Err(format!("{cfg}: the configuration has errors:{}", details())),
            ChildExit::Code(2) if lines.len() == 1 => {
                // The compiler's one line, e.g. "cannot fetch URL: no answer within
                // 30 s", names the configuration itself.
                let line = lines[0].strip_prefix("tcprelay-cc: ").unwrap_or(lines[0]);
                Err(if line.contains(cfg.as_str()) {
                    line.to_string()
                } else {
                    format!("{cfg}: {line}")
                })
            }
            ChildExit::Code(code) => Err(format!(
                "{cfg}: the compiler failed (exit code {code}){}",
                details()
            )),
            ChildExit::Signal(libc::SIGKILL) if self.started.elapsed() >= COMPILE_TIMEOUT => {
                Err(format!(
                    "{cfg}: the compiler did not finish within {} s and was stopped{}",
                    COMPILE_TIMEOUT.as_secs(),
                    details()
                ))
            }
            ChildExit::Signal(signal) => Err(format!(
                "{cfg}: the compiler was ended by signal {signal}{}",
                details()
            )),
        }
    }

    fn output(&self) -> String {
        let mut bytes = Vec::new();
        if let Ok(file) = std::fs::File::open(self.dir.join("output")) {
            let _ = file.take(MAX_OUTPUT).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Compile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
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
