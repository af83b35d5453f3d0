//! Strings the operating system cannot take (a NUL byte, an empty name, a socket path
//! too long for a socket address): the compiler refuses them (E0046), `tcprelay`
//! refuses a plan holding one with one line before it binds anything, and a reload
//! that brings one is refused while the running generation goes on serving.

use crate::harness::{self, alive, children_of, config, echo_through, free_port, Echo, Relay};
use std::path::Path;
use std::time::{Duration, Instant};

/// The lines of the relay's log that say a reload failed.
fn reload_failures(relay: &Relay) -> Vec<String> {
    relay
        .log_text()
        .lines()
        .filter(|l| l.contains("reload failed"))
        .map(str::to_string)
        .collect()
}

/// The master is alive, still has the workers it had, and serves.
#[track_caller]
fn still_serving(relay: &Relay, workers: &[i32], port: u16) {
    assert!(alive(relay.pid()), "the master died: {}", relay.log_text());
    let mut now = children_of(relay.pid());
    now.sort_unstable();
    let mut before = workers.to_vec();
    before.sort_unstable();
    assert_eq!(now, before, "the running generation was replaced");
    assert_eq!(
        echo_through(port, b"still served").unwrap(),
        b"still served"
    );
}

#[test]
fn a_plan_whose_setenv_holds_a_nul_is_refused_on_sighup_and_the_master_keeps_serving() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(port, &[(echo.port, 1)], "", ""),
    );
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    let workers = relay.await_workers(2, Duration::from_secs(5));
    // Written without the compiler, as another tool could: `std::env::set_var` would
    // panic on this value in the master.
    harness::rewrite_plan(&plan, |p| p.env.push(("TZ".into(), "UTC\0junk".into())));
    relay.signal(1);
    relay.await_log("reload failed", Duration::from_secs(10));
    let failures = reload_failures(&relay);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].ends_with(
            "invalid plan: the value of setenv `TZ` contains a NUL byte (\\0), which ends a string for the operating system"
        ),
        "{}",
        failures[0]
    );
    let log = relay.log_text();
    assert!(!log.contains('\0') && !log.contains("panicked"), "{log}");
    still_serving(&relay, &workers, port);
    // The master is whole: the next good plan loads.
    harness::rewrite_plan(&plan, |p| p.env.retain(|(name, _)| name != "TZ"));
    relay.signal(1);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(10));
    assert_eq!(echo_through(port, b"reloaded").unwrap(), b"reloaded");
}

#[test]
fn a_configuration_whose_setenv_holds_a_nul_is_refused_on_sighup_by_the_compiler() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    let good = config(port, &[(echo.port, 1)], "", "");
    std::fs::write(&cfg, &good).unwrap();
    // The original's command line: the configuration is compiled again on SIGHUP.
    let relay = Relay::start(dir.path(), &["-f", cfg.to_str().unwrap()], port);
    let workers = relay.await_workers(2, Duration::from_secs(5));
    std::fs::write(&cfg, format!("setenv TZ = \"UTC\0\"\n{good}")).unwrap();
    relay.signal(1);
    relay.await_log("reload failed", Duration::from_secs(20));
    let log = relay.log_text();
    assert!(
        log.contains("error[E0046]: the value of `setenv TZ` contains a NUL byte"),
        "{log}"
    );
    let failures = reload_failures(&relay);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].ends_with("the configuration has errors:"),
        "{}",
        failures[0]
    );
    assert!(!log.contains('\0') && !log.contains("panicked"), "{log}");
    still_serving(&relay, &workers, port);
}

/// Runs `tcprelay run -f plan` and returns its exit code and standard error; a
/// relay that starts is stopped after 10 s (the test then fails on its exit code).
fn run_plan(plan: &Path) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(harness::bin("tcprelay"))
        .args(["run", "-f", plan.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcprelay runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("tcprelay output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plans_with_a_string_the_system_cannot_take_are_refused_at_start_with_one_line() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("front");
    let socket = format!("{}\0.sock", cut.display());
    let long = format!("{}/{}", dir.path().display(), "s".repeat(120));
    type Change = Box<dyn Fn(&mut tcprelay_plan::Plan)>;
    let unix = |path: String| -> Change {
        Box::new(move |p| {
            p.spawnd.listeners[0].address = tcprelay_plan::ListenAddress::Unix(path.clone())
        })
    };
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "setenv",
            Box::new(|p| p.env.push(("TZ".into(), "UTC\0".into()))),
            "invalid plan: the value of setenv `TZ` contains a NUL byte",
        ),
        (
            "unix path",
            unix(socket),
            "invalid plan: the path of listener #1 contains a NUL byte",
        ),
        (
            "long unix path",
            unix(long.clone()),
            "invalid plan: the path of listener #1 is",
        ),
        (
            "pidfile",
            Box::new(|p| p.spawnd.pidfile = Some("relay\0.pid".into())),
            "invalid plan: the pidfile path contains a NUL byte",
        ),
        (
            "user",
            Box::new(|p| p.spawnd.user = Some(String::new())),
            "invalid plan: the user name is empty",
        ),
    ];
    for (name, change, says) in cases {
        let plan = harness::compile(
            dir.path(),
            "relay",
            &config(port, &[(echo.port, 1)], "", ""),
        );
        harness::rewrite_plan(&plan, change);
        let (code, err) = run_plan(&plan);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(!err.contains('\0'), "{name}: {err:?}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{name}: something listens"
        );
    }
    // The kernel would have bound the path cut at the NUL.
    assert!(!cut.exists(), "a socket was bound at {}", cut.display());
    assert!(!Path::new(&long).exists());
}
