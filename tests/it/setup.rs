//! The README's set-up: its two commands (`examples/demo.sh`, `scripts/test.sh`), the
//! package check both share (`scripts/packages.sh`), CI calling the same test command,
//! and the "By hand" block, run whole as it would be pasted into bash.

use crate::harness::{self, bin};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn readme() -> String {
    std::fs::read_to_string(harness::root().join("README.md")).expect("README.md")
}

/// The lines of the first ```` ```sh ```` block after the line starting with `after`.
fn sh_block(text: &str, after: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with(after))
        .skip_while(|l| l.trim() != "```sh")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .map(str::to_string)
        .collect()
}

/// The set-up shows the demo and the test script, one command each, and CI runs
/// exactly that test command (and installs nothing itself: the script does).
#[test]
fn readme_setup_shows_the_two_commands_and_ci_runs_the_same_test_command() {
    let text = readme();
    let root = harness::root();
    let demo = sh_block(&text, "## Set-up");
    assert_eq!(demo, ["examples/demo.sh"], "the set-up's first command");
    let rest = &text[text.find("examples/demo.sh").expect("demo shown")..];
    let test = sh_block(rest, "```");
    assert_eq!(test, ["scripts/test.sh"], "the set-up's second command");
    for script in ["examples/demo.sh", "scripts/test.sh", ".ci/run"] {
        let mode = std::fs::metadata(root.join(script))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
            .permissions();
        assert!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0,
            "{script} is not executable"
        );
    }
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(commands.contains(&"scripts/test.sh"), ".ci/run:\n{ci}");
    assert!(
        !commands.iter().any(|l| l.contains("cargo test")),
        ".ci/run runs tests besides the README's command:\n{ci}"
    );
    // The demo builds with cargo's progress shown, and says what it does first.
    let demo = std::fs::read_to_string(root.join("examples/demo.sh")).expect("demo.sh");
    let build = demo
        .lines()
        .position(|l| l.starts_with("cargo build"))
        .expect("the demo builds");
    let line = demo.lines().nth(build).unwrap();
    assert!(!line.contains("--quiet") && !line.contains(" -q"), "{line}");
    assert!(
        demo.lines()
            .nth(build - 1)
            .unwrap()
            .starts_with("echo \"== "),
        "no line says what the build does"
    );
}

/// A directory of stand-ins for `dpkg-query`, `apt-get`, `sudo` and `id`, and the
/// real `env`: `scripts/packages.sh` run with it as its only PATH.
struct FakeSystem {
    dir: tempfile::TempDir,
}

impl FakeSystem {
    /// `installed`: the packages dpkg knows; `uid`: what `id -u` says; `sudo`: whether
    /// there is one; `apt_fails`: whether `apt-get install` fails.
    fn new(installed: &[&str], uid: u32, sudo: bool, apt_fails: bool) -> FakeSystem {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("calls.log").display().to_string();
        let write = |name: &str, body: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        };
        write(
            "dpkg-query",
            format!(
                "for p in {}; do [ \"$p\" = \"$4\" ] && {{ echo 'install ok installed'; exit 0; }}; done\n\
                 echo \"dpkg-query: no packages found matching $4\" >&2; exit 1\n",
                installed.join(" ")
            ),
        );
        write("id", format!("echo {uid}\n"));
        write(
            "apt-get",
            format!(
                "echo \"apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND\" >> {log}\n\
                 [ \"$1\" = install ] && exit {}\nexit 0\n",
                u8::from(apt_fails)
            ),
        );
        if sudo {
            write("sudo", format!("echo sudo >> {log}\nexec \"$@\"\n"));
        }
        let env = ["/usr/bin/env", "/bin/env"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("env(1)");
        std::os::unix::fs::symlink(env, dir.path().join("env")).expect("symlink");
        FakeSystem { dir }
    }

    /// Sources `scripts/packages.sh` and runs `need_packages` with `packages`.
    fn need(&self, packages: &str) -> Output {
        let script = harness::root().join("scripts/packages.sh");
        Command::new("/bin/bash")
            .args([
                "--norc",
                "-c",
                // As the scripts that source it run.
                &format!(
                    "set -euo pipefail; . {} && need_packages {packages}",
                    script.display()
                ),
            ])
            .env_clear()
            .env("PATH", self.dir.path())
            .output()
            .expect("bash runs")
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }

    fn without_dpkg(self) -> FakeSystem {
        std::fs::remove_file(self.dir.path().join("dpkg-query")).expect("rm");
        self
    }
}

/// What the demo and the test script do about missing packages: nothing when all are
/// there; as root, `apt-get update` and `install` of the missing ones only; otherwise
/// the same through sudo; without sudo, the exact command to run, and a failure.
#[test]
fn missing_packages_are_installed_as_root_through_sudo_or_named() {
    let ok = |o: &Output| o.status.success();
    let said = |o: &Output| format!("{}{}", harness::stdout(o), harness::stderr(o));

    let all = FakeSystem::new(&["vim", "chromium"], 1000, false, false);
    let out = all.need("vim chromium");
    assert!(ok(&out) && said(&out).is_empty(), "{}", said(&out));
    assert_eq!(all.calls(), "");

    let root = FakeSystem::new(&["vim"], 0, true, false);
    let out = root.need("vim chromium iproute2");
    assert!(ok(&out), "{}", said(&out));
    assert_eq!(
        root.calls(),
        "apt-get update -qq DEBIAN_FRONTEND=noninteractive\n\
         apt-get install -y -qq chromium iproute2 DEBIAN_FRONTEND=noninteractive\n"
    );
    assert!(said(&out).contains("installing the missing Debian packages: chromium iproute2"));

    let user = FakeSystem::new(&[], 1000, true, false);
    let out = user.need("vim");
    assert!(ok(&out), "{}", said(&out));
    assert_eq!(
        user.calls(),
        "sudo\napt-get update -qq DEBIAN_FRONTEND=noninteractive\n\
         sudo\napt-get install -y -qq vim DEBIAN_FRONTEND=noninteractive\n"
    );

    let no_sudo = FakeSystem::new(&["vim"], 1000, false, false);
    let out = no_sudo.need("vim chromium systemd");
    assert!(!ok(&out), "{}", said(&out));
    assert_eq!(no_sudo.calls(), "", "nothing may run without root");
    assert!(
        harness::stderr(&out)
            .contains("\n  apt-get update && apt-get install -y chromium systemd\n"),
        "{}",
        said(&out)
    );

    let failing = FakeSystem::new(&[], 0, false, true);
    let out = failing.need("vim");
    assert!(!ok(&out), "{}", said(&out));
    assert!(
        harness::stderr(&out).contains("error: installing vim failed"),
        "{}",
        said(&out)
    );

    let other = FakeSystem::new(&[], 0, false, false).without_dpkg();
    let out = other.need("vim");
    assert!(ok(&out), "{}", said(&out));
    assert_eq!(other.calls(), "");
    assert!(harness::stderr(&out).contains("needed (Debian names): vim"));
}

/// The processes whose process group is `pgid`, zombies aside.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}

/// Kills a process group when dropped: nothing the block started outlives the test.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals that process group.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

/// The README's "By hand" block, fed whole to bash as if pasted (with the test's
/// binaries for `target/release/`, and free ports for the example's): it waits for
/// the relay, gets the reply of a backend through it, and leaves nothing running.
#[test]
fn readme_by_hand_block_works_pasted_whole_and_stops_what_it_started() {
    let text = readme();
    let block = sh_block(&text, "By hand");
    assert!(
        block[0].starts_with("cargo build --release --workspace --bins --examples"),
        "the block builds first: {block:?}"
    );
    // Built by the harness in this test's profile instead of a release build.
    let echo = harness::example("echo");
    let bin_dir: PathBuf = bin("tcprelay").parent().expect("dir").to_path_buf();
    bin("tcprelay-cc");
    let mut script = block[1..].join("\n") + "\n";
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(work.path().join("examples")).expect("mkdir");
    let mut cfg = std::fs::read_to_string(harness::root().join("examples/relay.cfg"))
        .expect("examples/relay.cfg");
    for port in ["9001", "9002", "8080"] {
        let free = harness::free_port().to_string();
        assert!(
            script.contains(port),
            "the block uses port {port}: {script}"
        );
        assert!(cfg.contains(port), "relay.cfg uses port {port}");
        script = script.replace(port, &free);
        cfg = cfg.replace(&format!("port = {port}"), &format!("port = {free}"));
    }
    std::fs::write(work.path().join("examples/relay.cfg"), cfg).expect("write cfg");
    let script = script
        .replace("target/release/examples/echo", &echo.display().to_string())
        .replace("target/release/", &format!("{}/", bin_dir.display()));

    let (stdout, stderr) = (work.path().join("stdout"), work.path().join("stderr"));
    let mut child = Command::new("bash")
        .args(["--norc", "--noprofile", "-s"])
        .current_dir(work.path())
        .process_group(0)
        .stdin(Stdio::piped())
        // Files, not pipes: a job left running would hold a pipe open.
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("bash starts");
    let group = Group(child.id() as i32);
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).expect("paste");
    }
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Its exit status is that of the last job stopped: not asserted.
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the block did not end within 60 s:\n{script}\n{}{}",
            read(&stdout),
            read(&stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = read(&stdout);
    let said = format!("{script}\n{reply}{}", read(&stderr));
    assert!(
        ["backend-1: hello\n", "backend-2: hello\n"].contains(&reply.as_str()),
        "the reply: {said}"
    );
    // Everything it started has stopped (the relay's workers included).
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = group_members(group.0);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "still running after the block: {left:?}\n{said}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The release profile builds binaries without debug info (they were 40 MB larger
/// with it), and the profiling profile is the same code with line tables, for perf.
#[test]
fn release_binaries_carry_no_debug_info_and_profiling_ones_do() {
    let manifest = std::fs::read_to_string(harness::root().join("Cargo.toml")).expect("Cargo.toml");
    let section = |name: &str| -> Vec<String> {
        manifest
            .lines()
            .skip_while(|l| l.trim() != format!("[profile.{name}]"))
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .map(|l| l.split('#').next().unwrap_or("").replace(' ', ""))
            .filter(|l| !l.is_empty())
            .collect()
    };
    let release = section("release");
    assert!(
        release.contains(&"strip=\"debuginfo\"".to_string())
            || release.contains(&"strip=true".to_string())
            || release.contains(&"split-debuginfo=\"packed\"".to_string()),
        "[profile.release]: {release:?}"
    );
    assert!(
        !release.iter().any(|l| l.starts_with("debug="))
            || release.contains(&"debug=false".to_string()),
        "[profile.release]: {release:?}"
    );
    let profiling = section("profiling");
    for line in ["inherits=\"release\"", "strip=\"none\""] {
        assert!(
            profiling.contains(&line.to_string()),
            "[profile.profiling]: {profiling:?}"
        );
    }
    assert!(
        profiling.iter().any(|l| [
            "debug=1",
            "debug=2",
            "debug=true",
            "debug=\"line-tables-only\""
        ]
        .contains(&l.as_str())),
        "[profile.profiling]: {profiling:?}"
    );
}
