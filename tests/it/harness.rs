//! Runs the workspace's binaries and makes test material (certificates).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The path of a binary of this workspace. The first call builds the workspace's
/// binaries with the same cargo and profile as this test binary: `cargo test` builds
/// only the binaries of the package under test, and a stale binary would test old
/// code.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/integration-HASH -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    let built = BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "--bins",
            "-p",
            "tcprelay-cc",
            "-p",
            "tcprelay",
        ])
        .current_dir(root());
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("building the binaries failed: {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// `tcprelay ctl ARGS` as an operator on the relay's machine runs it: the socket
/// found from `RUNTIME_DIRECTORY` (`runtime`), as the relay's own.
pub fn ctl(runtime: &Path, args: &[&str]) -> Output {
    Command::new(bin("tcprelay"))
        .arg("ctl")
        .args(args)
        .env("RUNTIME_DIRECTORY", runtime)
        .output()
        .expect("tcprelay ctl runs")
}

/// The path of one of the runtime's examples (`runtime/examples/NAME.rs`), built
/// with the same cargo and profile as this test binary.
pub fn example(name: &str) -> PathBuf {
    let dir = bin("tcprelay")
        .parent()
        .expect("the binaries' directory")
        .to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "tcprelay", "--example", name])
        .current_dir(root());
    if dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the example {name} failed: {status}"
    );
    dir.join("examples").join(name)
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Runs `tcprelay-cc` with `args` in `dir`, with no standard input.
pub fn cc(dir: &Path, args: &[&str]) -> Output {
    cc_with_stdin(dir, args, None)
}

/// Runs `tcprelay-cc` with `args` in `dir`, feeding `stdin` when given.
pub fn cc_with_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin("tcprelay-cc"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcprelay-cc starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("tcprelay-cc runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Test certificates, made fresh for each test run, never committed:
/// `cert.pem` (self-signed, CN=localhost, valid a year), `key.pem` (its key),
/// `other-key.pem` (a key that does not match), `enc-key.pem` (the key encrypted with
/// [`PASSPHRASE`]) and `combined.pem` (certificate and key in one file).
///
/// For the certificate lints, with dates relative to now (which is why they are made
/// at test time: a file checked in would change meaning as time passes), all for
/// `key.pem`'s key and CN=localhost: `expires-soon.pem` (in 10 days and a half),
/// `expired.pem` (3 days and a half ago), `not-yet-valid.pem` (from 2 days and a
/// half on), `shuffled.pem` (the leaf, then a root, then the intermediate between
/// them: out of order) and `old-ca.pem` (a self-signed CA expired 5 days and a half
/// ago). The half days keep the whole days of the messages stable however long a
/// run takes.
pub fn make_certs(dir: &Path) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::symm::Cipher;
    use openssl::x509::{X509NameBuilder, X509};

    let new_key = || {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey")
    };
    let key = new_key();
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "localhost").expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .expect("nb");
    // A year: a certificate that expires within 30 days is warned about (E0080).
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .expect("na");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = b.build().to_pem().expect("cert pem");
    let key_pem = key.private_key_to_pem_pkcs8().expect("key pem");
    let enc = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
        .expect("encrypted key");
    let other = new_key().private_key_to_pem_pkcs8().expect("other key");
    std::fs::create_dir_all(dir).expect("certs dir");
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
    std::fs::write(dir.join("other-key.pem"), &other).unwrap();
    std::fs::write(dir.join("enc-key.pem"), &enc).unwrap();
    std::fs::write(dir.join("combined.pem"), [cert, key_pem].concat()).unwrap();

    // Seconds from now to an Asn1Time.
    let at = |secs: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        Asn1Time::from_unix(now + secs).expect("time")
    };
    const DAY: i64 = 86_400;
    // A certificate named `cn` for `subject_key`, valid from `from` to `to` seconds
    // from now, signed by `issuer` (certificate and key) or self-signed.
    let issue = |cn: &str,
                 subject_key: &PKey<openssl::pkey::Private>,
                 issuer: Option<(&X509, &PKey<openssl::pkey::Private>)>,
                 from: i64,
                 to: i64| {
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", cn).expect("CN");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        b.set_serial_number(&BigNum::from_u32(2).unwrap().to_asn1_integer().unwrap())
            .expect("serial");
        b.set_subject_name(&name).expect("subject");
        match issuer {
            Some((cert, _)) => b.set_issuer_name(cert.subject_name()),
            None => b.set_issuer_name(&name),
        }
        .expect("issuer");
        b.set_pubkey(subject_key).expect("pubkey");
        b.set_not_before(&at(from)).expect("nb");
        b.set_not_after(&at(to)).expect("na");
        b.sign(
            issuer.map_or(subject_key, |(_, k)| k),
            MessageDigest::sha256(),
        )
        .expect("sign");
        b.build()
    };
    let pem = |certs: &[&X509]| -> Vec<u8> {
        certs
            .iter()
            .flat_map(|c| c.to_pem().expect("pem"))
            .collect()
    };
    let dated = [
        ("expires-soon.pem", -DAY, 10 * DAY + DAY / 2),
        ("expired.pem", -90 * DAY, -3 * DAY - DAY / 2),
        ("not-yet-valid.pem", 2 * DAY + DAY / 2, 400 * DAY),
    ];
    for (file, from, to) in dated {
        let c = issue("localhost", &key, None, from, to);
        std::fs::write(dir.join(file), pem(&[&c])).unwrap();
    }
    let root_key = new_key();
    let root = issue("Test Root", &root_key, None, -DAY, 365 * DAY);
    let mid_key = new_key();
    let mid = issue(
        "Test Intermediate",
        &mid_key,
        Some((&root, &root_key)),
        -DAY,
        365 * DAY,
    );
    let leaf = issue("localhost", &key, Some((&mid, &mid_key)), -DAY, 365 * DAY);
    std::fs::write(dir.join("shuffled.pem"), pem(&[&leaf, &root, &mid])).unwrap();
    let old_ca = issue("Old CA", &new_key(), None, -900 * DAY, -5 * DAY - DAY / 2);
    std::fs::write(dir.join("old-ca.pem"), pem(&[&old_ca])).unwrap();
}

/// A self-signed certificate for `names` (the first its CN, all of them its DNS
/// names), valid for a year, written to `dir/STEM.pem` with its key in
/// `dir/STEM-key.pem`: distinct servers that a client tells apart by the subject
/// it sees (the SNI tests).
pub fn make_named_cert(dir: &Path, stem: &str, names: &[&str]) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", names[0]).expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .expect("na");
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let san = san.build(&b.x509v3_context(None, None)).expect("SAN");
    b.append_extension(san).expect("extension");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    std::fs::create_dir_all(dir).expect("certs dir");
    std::fs::write(
        dir.join(format!("{stem}.pem")),
        b.build().to_pem().expect("pem"),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{stem}-key.pem")),
        key.private_key_to_pem_pkcs8().expect("key pem"),
    )
    .unwrap();
}

/// `text` with each UTC date of a certificate (`2026-03-01T12:00:00Z`) replaced by
/// `YYYY-MM-DDTHH:MM:SSZ`, of the same width: the certificates of [`make_certs`]
/// have dates relative to the moment they are made, so the dates in diagnostics
/// change from one run (or one `make_certs`) to the next while the whole days the
/// messages count do not.
pub fn stable_dates(text: &str) -> String {
    let date = regex::Regex::new(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").expect("regex");
    date.replace_all(text, "YYYY-MM-DDTHH:MM:SSZ").into_owned()
}

/// The passphrase of `enc-key.pem`.
pub const PASSPHRASE: &str = "correct horse";

/// Raises this process's soft limit of open files to the hard limit, once. The tests
/// run in parallel threads of one process, and some hold hundreds of connections
/// from both ends (client and echo backend): the common default soft limit of 1,024
/// would make an accept fail with EMFILE depending on which tests overlap.
pub fn raise_open_file_limit() {
    static RAISED: OnceLock<()> = OnceLock::new();
    RAISED.get_or_init(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write a valid rlimit.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}

/// A loopback port that was free a moment ago, chosen by the OS.
pub fn free_port() -> u16 {
    raise_open_file_limit();
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Compiles `cfg` into `dir/name.plan` and returns the plan's path.
pub fn compile(dir: &Path, name: &str, cfg: &str) -> PathBuf {
    let cfg_path = dir.join(format!("{name}.cfg"));
    std::fs::write(&cfg_path, cfg).expect("write cfg");
    let plan = dir.join(format!("{name}.plan"));
    let out = cc(
        dir,
        &[
            "compile",
            cfg_path.to_str().unwrap(),
            "-o",
            plan.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "compile failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    plan
}

/// A running `tcprelay`, stopped (SIGTERM, then SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Relay {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Relay {
    /// Starts `tcprelay` with `args` (e.g. `["run", "-f", plan]`), logging to
    /// `dir/tcprelay.log`, and waits until it says it has started. The listeners are
    /// bound by then, so connections queue even before a worker accepts; waiting for
    /// the log line instead of probing the port keeps the backends' connection counts
    /// exact.
    pub fn start(dir: &Path, args: &[&str], port: u16) -> Relay {
        let mut cmd = Command::new(bin("tcprelay"));
        cmd.args(args);
        Relay::start_command(dir, cmd, port, mechanism_under_test())
    }

    /// [`Relay::start`] for a plan that selects its event mechanism itself
    /// (`setenv IO_POLL_MECHANISM`): checks that the master reports `mechanism`.
    pub fn start_under(dir: &Path, args: &[&str], port: u16, mechanism: &str) -> Relay {
        let mut cmd = Command::new(bin("tcprelay"));
        cmd.args(args);
        Relay::start_command(dir, cmd, port, Some(mechanism))
    }

    /// Compiles `cfg` into `dir/relay.plan` and runs it in the foreground.
    pub fn run_config(dir: &Path, cfg: &str, port: u16) -> Relay {
        let plan = compile(dir, "relay", cfg);
        let plan = plan.to_str().expect("UTF-8 path");
        // TCPRELAY_TEST_DEBUG=LEVEL: the relay logs at that debug level (shown when a
        // test fails), to investigate a failure.
        match std::env::var("TCPRELAY_TEST_DEBUG") {
            Ok(level) => Relay::start(dir, &["run", "-d", &level, "-f", plan], port),
            Err(_) => Relay::start(dir, &["run", "-f", plan], port),
        }
    }

    /// Starts `tcprelay` through `sh -c script` (which must `exec` it), e.g. to set a
    /// resource limit first.
    pub fn start_shell(dir: &Path, script: &str, port: u16) -> Relay {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        Relay::start_command(dir, cmd, port, mechanism_under_test())
    }

    /// Starts `cmd` and waits for the start; with `mechanism`, checks that the master
    /// reports that event mechanism, so that a run under `IO_POLL_MECHANISM` cannot
    /// silently test another one.
    fn start_command(dir: &Path, mut cmd: Command, port: u16, mechanism: Option<&str>) -> Relay {
        let log = dir.join("tcprelay.log");
        let file = std::fs::File::create(&log).expect("log file");
        // The control socket's default path is `$RUNTIME_DIRECTORY/ctl`: each relay gets
        // its own, so tests running at once never share one.
        let child = cmd
            .current_dir(dir)
            .env("RUNTIME_DIRECTORY", dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("tcprelay starts");
        let mut relay = Relay { child, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !relay.log_text().contains("started: listening on") {
            if let Ok(Some(status)) = relay.child.try_wait() {
                panic!("tcprelay exited ({status}): {}", relay.log_text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tcprelay did not start on port {port}: {}",
                relay.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let Some(name) = mechanism {
            // The line ends there in the text format, the message's string in
            // logfmt and JSON.
            let log = relay.log_text();
            assert!(
                [
                    format!("event mechanism: {name}\n"),
                    format!("event mechanism: {name}\"")
                ]
                .iter()
                .any(|line| log.contains(line.as_str())),
                "tcprelay does not use {name}: {}",
                relay.log_text()
            );
        }
        relay
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (`within` at most) until the master has exactly `n` worker processes
    /// and returns their pids; fails the test with the relay's log otherwise.
    pub fn await_workers(&self, n: usize, within: std::time::Duration) -> Vec<i32> {
        let deadline = std::time::Instant::now() + within;
        loop {
            // The relay's other children, the health checker and the DNS resolver,
            // are told apart by their process titles (`tcprelay: checker gen N`).
            let workers: Vec<i32> = children_of(self.pid())
                .into_iter()
                .filter(|&child| {
                    let title = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
                    let title = String::from_utf8_lossy(&title);
                    !title.contains("checker gen") && !title.contains("resolver gen")
                })
                .collect();
            if workers.len() == n {
                return workers;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} workers, not {n}: {}",
                workers.len(),
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (`within` at most) until the relay's log contains `what`; fails the test
    /// with the log otherwise.
    pub fn await_log(&self, what: &str, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.log_text().contains(what) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY-free: `kill` the command; the tests crate has no libc.
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status();
    }

    /// Waits up to `within` for the process to exit; its exit code, if it did.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let workers = children_of(self.pid());
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(15);
            if self.wait_exit(std::time::Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // A failing test shows what the relay said (the log is in a temporary directory
        // that goes away with the test).
        if std::thread::panicking() {
            let text = self.log_text();
            // All of it when debugging (TCPRELAY_TEST_DEBUG), else the end.
            let keep = if std::env::var_os("TCPRELAY_TEST_DEBUG").is_some() {
                usize::MAX
            } else {
                60
            };
            let tail: Vec<&str> = text.lines().rev().take(keep).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        // Workers left behind by a test that killed the master.
        for pid in workers {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The event mechanism the `tcprelay` processes of this run use, by name: the
/// test process's `IO_POLL_MECHANISM`, which they inherit (CI runs the relay tests
/// under epoll, poll and select this way); `None` when unset (the OS default).
pub fn mechanism_under_test() -> Option<&'static str> {
    let value = std::env::var("IO_POLL_MECHANISM").ok()?;
    match value.trim() {
        "" => None,
        "1" => Some("kqueue"),
        "4" => Some("epoll"),
        "8" => Some("poll"),
        "16" => Some("select"),
        "64" => Some("io_uring"),
        other => panic!("IO_POLL_MECHANISM={other}: run the tests under 1, 4, 8, 16 or 64"),
    }
}

/// The pids of the processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The fields after the command name, which is in parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = rest.split(' ');
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) && state != Some("Z") {
            out.push(child);
        }
    }
    out.sort_unstable();
    out
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// An echo server on `127.0.0.1:0` in a thread: each connection gets back what it
/// sends, until it half-closes. Counts connections. Stops when dropped.
#[derive(Debug)]
pub struct Echo {
    pub port: u16,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Echo {
    pub fn start() -> Echo {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        raise_open_file_limit();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind echo");
        // The standard library listens with a backlog of 128. A relay opening
        // hundreds of sessions at once overflows that while this thread is busy
        // starting threads, and the kernel then drops the handshake's last ACK: the
        // relay's side counts as connected, but this side only accepts it after a
        // SYN-ACK retransmission, seconds later. Listening again widens the queue
        // (to the kernel's somaxconn at most).
        // SAFETY: listen(2) on a descriptor this listener owns.
        let widened = unsafe { libc::listen(listener.as_raw_fd(), 4096) };
        assert_eq!(widened, 0, "listen(4096) on the echo socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut &stream, &mut &stream);
                            let _ = stream.shutdown(std::net::Shutdown::Write);
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Echo {
            port,
            connections,
            stop,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sends `data` through a connection to `127.0.0.1:port` (an echo path) and returns
/// what came back, after half-closing.
pub fn echo_through(port: u16, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    s.set_write_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut reader = s.try_clone()?;
    let expected = data.len();
    let handle = std::thread::spawn(move || {
        let mut back = Vec::with_capacity(expected);
        reader.read_to_end(&mut back).map(|_| back)
    });
    s.write_all(data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    handle
        .join()
        .map_err(|_| std::io::Error::other("reader panicked"))?
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Opens `n` sessions through `127.0.0.1:port` (an echo path) that each send a chunk
/// every 50 ms for `duration` and check its echo; each thread yields whether its
/// session stayed intact to the end.
pub fn long_sessions(
    port: u16,
    n: usize,
    duration: std::time::Duration,
) -> Vec<std::thread::JoinHandle<bool>> {
    use std::io::{Read, Write};
    (0..n as u64)
        .map(|i| {
            std::thread::spawn(move || {
                let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let end = std::time::Instant::now() + duration;
                let mut k = 0u64;
                while std::time::Instant::now() < end {
                    let chunk = random_bytes(i * 10_000 + k, 1000);
                    let mut back = vec![0; chunk.len()];
                    if s.write_all(&chunk).is_err()
                        || s.read_exact(&mut back).is_err()
                        || back != chunk
                    {
                        return false;
                    }
                    k += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                true
            })
        })
        .collect()
}

/// Threads that keep opening new connections through `127.0.0.1:port` (an echo
/// path), each sending and checking a little data, until [`Churn::finish`].
#[derive(Debug)]
pub struct Churn {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Churn {
    pub fn start(port: u16, threads: u64) -> Churn {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads = (0..threads)
            .map(|t| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let data = random_bytes(t << 40 | i, 1500);
                        match echo_through(port, &data) {
                            Ok(back) if back == data => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        i += 1;
                    }
                })
            })
            .collect();
        Churn {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Stops the threads; returns the connections that succeeded and that failed.
    pub fn finish(self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// A configuration with one listener on `127.0.0.1:port` and a remote on
/// `127.0.0.1` for each `(port, weight)`, plus extra lines for each section.
pub fn config(port: u16, remotes: &[(u16, u32)], extra_spawnd: &str, extra_relay: &str) -> String {
    let remotes: String = remotes
        .iter()
        .map(|(p, w)| format!("    remote = {{ address = 127.0.0.1 port = {p} weight = {w} }}\n"))
        .collect();
    format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} }}\n{extra_spawnd}\n}}\nid = tcprelay {{\n{remotes}{extra_relay}\n}}\n"
    )
}

/// Rewrites the plan file at `path` with `change` made to its plan, bypassing the
/// compiler (and its checks): a plan as another tool could write it.
pub fn rewrite_plan(path: &Path, change: impl FnOnce(&mut tcprelay_plan::Plan)) {
    let bytes = std::fs::read(path).expect("read the plan");
    let (_, mut plan) = tcprelay_plan::decode(&bytes).expect("a plan that decodes");
    change(&mut plan);
    std::fs::write(path, tcprelay_plan::encode(&plan, "test")).expect("write the plan");
}

/// `plan` (a plan file) with a body that passes its checksum but does not decode:
/// the spawnd section's `overload` set to a choice no version has, and the header's
/// checksum made to agree.
pub fn plan_with_an_undecodable_body(plan: &[u8]) -> Vec<u8> {
    use tcprelay_plan::Overload;
    let (_, mut p) = tcprelay_plan::decode(plan).expect("a plan that decodes");
    p.spawnd.overload = Overload::Queue;
    let mut bytes = tcprelay_plan::encode(&p, "test");
    p.spawnd.overload = Overload::Close;
    let other = tcprelay_plan::encode(&p, "test");
    let header = 25 + bytes[24] as usize;
    let differ: Vec<usize> = (header..bytes.len())
        .filter(|&i| bytes[i] != other[i])
        .collect();
    assert_eq!(differ.len(), 1, "one byte holds the overload choice");
    bytes[differ[0]] = 7;
    let crc = tcprelay_plan::codec::checksum(&bytes[header..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A TCP connection to the relay on 127.0.0.1:`port` from the source address
/// 127.0.0.`from` (any port), reads bounded by `read_timeout`: a client that ACL
/// rules and sticky caches tell from the others.
pub fn connect_from(port: u16, from: u8, read_timeout: std::time::Duration) -> std::net::TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local = std::net::SocketAddr::from(([127, 0, 0, from], 0));
    socket.bind(&local.into()).expect("bind the client");
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket
        .connect_timeout(&to.into(), std::time::Duration::from_secs(5))
        .expect("connect to the relay");
    let stream = std::net::TcpStream::from(socket);
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
}

/// A third-party server the test started, killed and reaped when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_server -rev` (each line comes back reversed) on `127.0.0.1`, a port
/// chosen by the OS, with certificate `cert`, key `key` and `extra` arguments (e.g.
/// `-Verify 1`); it prints `ACCEPT 127.0.0.1:PORT` once listening.
pub fn openssl_s_server(cert: &Path, key: &Path, extra: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = std::process::Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-rev"])
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let stdout = child.stdout.take().expect("its output");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(port) = line
                .strip_prefix("ACCEPT ")
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    let mut server = Server { child, port: 0 };
    server.port = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("openssl s_server says where it listens");
    server
}
