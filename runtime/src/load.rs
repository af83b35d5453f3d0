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
    plan_from(path, &bytes)
}

/// Exit status: the plan or configuration is bad, or start-up failed.
pub const EXIT_BAD: u8 = 1;
/// Exit status: the file named cannot be read (it does not exist, it is not a regular
/// file...) or is of the other kind: the same as `tcprelay-cc`'s for a file it
/// cannot read.
pub const EXIT_UNREADABLE: u8 = 2;

/// Why the file named on the command line cannot be used as named, before anything
/// is read from it: it does not exist, or it is a plan given as a configuration or a
/// configuration given to `run`. The message says which command to use.
pub fn wrong_file(source: &PlanSource) -> Option<String> {
    let (path, want_plan) = match source {
        PlanSource::Plan(path) => (path.as_path(), true),
        // Standard input and URLs are the compiler's to read.
        PlanSource::Config { cfg, .. } if cfg == "-" || cfg.contains("://") => return None,
        PlanSource::Config { cfg, .. } => (Path::new(cfg.as_str()), false),
    };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!("{shown} does not exist"));
        }
        Err(_) => return None,
        Ok(meta) => meta,
    };
    if !meta.is_file() {
        return None;
    }
    // A regular file: its first bytes tell a plan from a configuration.
    let mut head = Vec::with_capacity(4096);
    let _ = std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    let is_plan = head.starts_with(&tcprelay_plan::MAGIC);
    // Text with a brace, as every configuration has (`id = NAME {`); other text or
    // bytes are left to the decoder's "not a plan file".
    let is_text = head.contains(&b'{') && !head.contains(&0) && {
        // A cut in the middle of a character is still text.
        let valid = match std::str::from_utf8(&head) {
            Ok(_) => head.len(),
            Err(e) => e.valid_up_to(),
        };
        head.len() - valid < 4
    };
    match (want_plan, is_plan, is_text) {
        (false, true, _) => Some(format!(
            "{shown} is a plan file, not a configuration: run it with `tcprelay run {shown}`"
        )),
        (true, false, true) => Some(format!(
            "{shown} is a configuration, not a plan: run `tcprelay {shown}` (it compiles it, and again on every reload), or compile it first with `tcprelay-cc compile {shown} -o PLAN`"
        )),
        _ => None,
    }
}

/// Loads the plan at start ([`load`]), with the exit status a failure gives:
/// [`EXIT_UNREADABLE`] when the file named cannot be read or is of the other kind
/// ([`wrong_file`]), as `tcprelay-cc` exits for a file it cannot read, else
/// [`EXIT_BAD`].
pub fn load_at_start(source: &PlanSource) -> Result<Loaded, (u8, String)> {
    if let Some(e) = wrong_file(source) {
        return Err((EXIT_UNREADABLE, e));
    }
    match source {
        PlanSource::Plan(path) => {
            let bytes =
                tcprelay_plan::read_plan(path).map_err(|e| (EXIT_UNREADABLE, e.to_string()))?;
            plan_from(path, &bytes)
                .map(Loaded::plan)
                .map_err(|e| (EXIT_BAD, e))
        }
        PlanSource::Config { .. } => match start(source).map_err(|e| (EXIT_BAD, e))? {
            Started::Ready(loaded) => Ok(*loaded),
            Started::Compiling(mut compile) => {
                let exit = compile.wait();
                // The compiler's 2: it could not read the configuration.
                let code = match exit {
                    ChildExit::Code(2) => EXIT_UNREADABLE,
                    _ => EXIT_BAD,
                };
                compile.finish(exit).map_err(|e| (code, e))
            }
        },
    }
}

/// Decodes and validates the plan read from `path`.
fn plan_from(path: &Path, bytes: &[u8]) -> Result<Plan, String> {
    let (_, plan) = tcprelay_plan::decode(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
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

/// `-P`: runs `tcprelay-cc check` and returns its exit code (for a plan, reads and
/// validates it: 0, [`EXIT_BAD`], or [`EXIT_UNREADABLE`] as at start).
pub fn check_only(source: &PlanSource) -> i32 {
    let cc = compiler();
    if let Some(e) = wrong_file(source) {
        eprintln!("tcprelay: {e}");
        return EXIT_UNREADABLE.into();
    }
    let status = match source {
        PlanSource::Plan(_) => {
            return load_at_start(source).map_or_else(
                |(code, e)| {
                    eprintln!("tcprelay: {e}");
                    code.into()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cfg: &Path) -> PlanSource {
        PlanSource::Config {
            cfg: cfg.to_str().unwrap().to_string(),
            spawnd_id: "spawnd".into(),
            child_id: "tcprelay".into(),
        }
    }

    #[test]
    fn a_file_of_the_other_kind_or_none_at_all_is_named_with_the_command_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("relay.cfg");
        let plan = dir.path().join("relay.plan");
        std::fs::write(&cfg, "id = spawnd { listen = { port = 1 } }\n").unwrap();
        let mut bytes = tcprelay_plan::MAGIC.to_vec();
        bytes.extend_from_slice(&[0, 4, 0xc4, 0xff, 0]);
        std::fs::write(&plan, bytes).unwrap();
        let said = |source: &PlanSource| wrong_file(source).unwrap_or_default();
        let plan_shown = plan.display().to_string();
        let cfg_shown = cfg.display().to_string();
        assert_eq!(
            said(&config(&plan)),
            format!("{plan_shown} is a plan file, not a configuration: run it with `tcprelay run {plan_shown}`")
        );
        assert!(
            said(&PlanSource::Plan(cfg.clone())).starts_with(&format!(
                "{cfg_shown} is a configuration, not a plan: run `tcprelay {cfg_shown}`"
            )),
            "{}",
            said(&PlanSource::Plan(cfg.clone()))
        );
        let missing = dir.path().join("nope.cfg");
        for source in [config(&missing), PlanSource::Plan(missing.clone())] {
            assert_eq!(
                said(&source),
                format!("{} does not exist", missing.display())
            );
        }
        // Each as it should be, standard input, a URL and a directory: nothing said
        // here (the loaders say what is wrong with them).
        for source in [
            config(&cfg),
            PlanSource::Plan(plan.clone()),
            config(Path::new("-")),
            config(Path::new("http://127.0.0.1:1/x.cfg")),
            config(dir.path()),
            PlanSource::Plan(dir.path().to_path_buf()),
        ] {
            assert_eq!(wrong_file(&source), None, "{source}");
        }
        // A file of binary junk, or text that is no configuration, given to `run` is
        // left to the decoder.
        for junk in [&[0u8, 1, b'{', 0xff][..], b"GIF89a...."] {
            std::fs::write(&cfg, junk).unwrap();
            assert_eq!(wrong_file(&PlanSource::Plan(cfg.clone())), None);
        }
    }

    #[test]
    fn at_start_an_unreadable_plan_exits_2_and_a_bad_one_1() {
        let dir = tempfile::tempdir().unwrap();
        let err = |source: PlanSource| load_at_start(&source).err().map(|(code, _)| code);
        assert_eq!(
            err(PlanSource::Plan(dir.path().join("nope.plan"))),
            Some(EXIT_UNREADABLE)
        );
        // A directory cannot be read as a plan file.
        assert_eq!(
            err(PlanSource::Plan(dir.path().to_path_buf())),
            Some(EXIT_UNREADABLE)
        );
        let bad = dir.path().join("bad.plan");
        let mut bytes = tcprelay_plan::MAGIC.to_vec();
        bytes.extend_from_slice(&[9; 40]);
        std::fs::write(&bad, bytes).unwrap();
        assert_eq!(err(PlanSource::Plan(bad)), Some(EXIT_BAD));
    }
}
