//! Measures the connection rate of the two ways a master/worker relay can hand
//! connections to its forked workers (DESIGN: "choose by measurement"):
//!
//! * **A, `inherit`**: the parent binds a non-blocking listener on 127.0.0.1 (port
//!   chosen by the OS) and forks W workers; each worker runs a mio (epoll) loop that
//!   accepts on the inherited listener until `WouldBlock`.
//! * **B, `scm_rights`**: the parent, the master, accepts in its own mio loop and
//!   passes each accepted socket to one of W workers, round-robin, over a Unix
//!   `SOCK_SEQPACKET` socketpair with `sendmsg` + `SCM_RIGHTS` (the fds accepted in
//!   one wake-up go to a worker in one message), then closes its copy; each worker
//!   receives them with `recvmsg`.
//!
//! In both modes a worker writes one byte to each connection and closes it. A load
//! generator in the parent (C client threads, started once the workers are ready)
//! connects, reads the byte and closes, until N connections are done; the wall time
//! of that gives connections per second. Modes run interleaved, 3 rounds each
//! (A, B, A, B, A, B), with fresh workers every round; the table gives the median
//! conn/s per mode and the ratio B/A, plus how the connections split over the workers.
//!
//! Bounded and tidy: loopback only, every blocking socket has a 5 s timeout, the whole
//! run stops with an error after 120 s, and every worker is SIGKILLed and reaped by a
//! guard when its round ends, on error paths too (workers also die with the parent,
//! through `PR_SET_PDEATHSIG`).
//!
//! ```text
//! cargo run -p tcprelay --release --example handoff -- [--workers 2] [--connections 20000] [--clients 4]
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Socket, Type};

/// Timeout of every blocking socket operation.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit of the whole run, all rounds together.
const RUN_LIMIT: Duration = Duration::from_secs(120);
const ROUNDS: usize = 3;
const BACKLOG: i32 = 1024;
/// Most fds in one SCM_RIGHTS message (the kernel allows 253).
const MAX_FDS: usize = 64;
/// Bytes of a control buffer with room for `MAX_FDS` descriptors.
// SAFETY: CMSG_SPACE is arithmetic on its argument only.
const CMSG_BYTES: usize =
    unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<libc::c_int>()) as u32) } as usize;
/// The control buffer as u64 words, so that it is aligned for `cmsghdr`.
const CMSG_WORDS: usize = CMSG_BYTES.div_ceil(size_of::<u64>());

const LISTENER: Token = Token(0);
const CHANNEL: Token = Token(1);
const WAKE: Token = Token(2);

const USAGE: &str = "usage: handoff [--workers W (2)] [--connections N (20000)] [--clients C (4)]";

#[derive(Debug, Clone, Copy)]
struct Args {
    workers: usize,
    connections: usize,
    clients: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inherit,
    ScmRights,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Inherit => "A inherit",
            Mode::ScmRights => "B scm_rights",
        }
    }
}

/// What one round measured.
#[derive(Debug)]
struct Round {
    elapsed: Duration,
    /// Connections served by each worker.
    per_worker: Vec<u64>,
    /// Mode B: (fds passed, sendmsg calls).
    passed: Option<(usize, usize)>,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let result = run(args);
    // Every round's guard has killed and reaped its workers by now; check that no
    // child at all is left (waitpid fails with ECHILD when there is none).
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid i32.
    let left = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    let no_children = left == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
    println!(
        "children: {}",
        if no_children {
            "all reaped"
        } else {
            "SOME LEFT"
        }
    );
    if let Err(e) = result {
        eprintln!("handoff: {e}");
        std::process::exit(1);
    }
    if !no_children {
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 2,
        connections: 20_000,
        clients: 4,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let slot = match flag.as_str() {
            "--workers" => &mut args.workers,
            "--connections" => &mut args.connections,
            "--clients" => &mut args.clients,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        *slot = value
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .ok_or(format!(
                "{flag}: expected a positive integer, got {value:?}"
            ))?;
    }
    Ok(args)
}

fn run(args: Args) -> io::Result<()> {
    let deadline = Instant::now() + RUN_LIMIT;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "handoff: {} workers, {} connections per round, {} client threads, {cpus} CPUs, loopback",
        args.workers, args.connections, args.clients
    );
    let modes = [Mode::Inherit, Mode::ScmRights];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut passed = (0, 0);
    for round in 1..=ROUNDS {
        for (i, &mode) in modes.iter().enumerate() {
            let r = match mode {
                Mode::Inherit => round_inherit(args, deadline),
                Mode::ScmRights => round_scm_rights(args, deadline),
            }
            .map_err(|e| context(e, &format!("round {round} {}", mode.name())))?;
            let rate = args.connections as f64 / r.elapsed.as_secs_f64();
            let served: u64 = r.per_worker.iter().sum();
            let split: Vec<String> = r
                .per_worker
                .iter()
                .map(|&n| format!("{:.0}%", 100.0 * n as f64 / served.max(1) as f64))
                .collect();
            print!(
                "round {round} {:<12} {:>9.0} conn/s  ({:.3} s, split {})",
                mode.name(),
                rate,
                r.elapsed.as_secs_f64(),
                split.join("/")
            );
            if let Some((fds, msgs)) = r.passed {
                print!(", {:.2} fds/sendmsg", fds as f64 / msgs.max(1) as f64);
                passed = (passed.0 + fds, passed.1 + msgs);
            }
            if served != args.connections as u64 {
                print!(", WARNING: workers served {served}");
            }
            println!();
            rates[i].push(rate);
        }
    }
    println!();
    println!("{:<14} {:>14}   rounds (conn/s)", "mode", "median conn/s");
    let mut medians = [0.0; 2];
    for (i, mode) in modes.iter().enumerate() {
        let list: Vec<String> = rates[i].iter().map(|r| format!("{r:.0}")).collect();
        medians[i] = median(&mut rates[i]);
        println!(
            "{:<14} {:>14.0}   {}",
            mode.name(),
            medians[i],
            list.join(" ")
        );
    }
    println!("ratio B/A      {:>14.3}", medians[1] / medians[0]);
    println!(
        "(B passed {:.2} fds per sendmsg on average)",
        passed.0 as f64 / passed.1.max(1) as f64
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Mode A: workers accept on the listener they inherit.
fn round_inherit(args: Args, deadline: Instant) -> io::Result<Round> {
    let listener = bind_listener()?;
    let addr = listener.local_addr()?;
    let counters = Counters::new(args.workers)?;
    let (mut ready, ready_child) = UnixStream::pair()?;
    let mut children = Children::new();
    for id in 0..args.workers {
        if let Side::Child = children.fork()? {
            drop(ready);
            exit_child(|| inherit_worker(listener, &ready_child, counters.get(id), deadline));
        }
    }
    drop(ready_child);
    wait_ready(&mut ready, args.workers, deadline)?;
    let abort = AtomicBool::new(false);
    let elapsed = run_clients(addr, args, deadline, &abort)?;
    drop(children); // SIGKILL and reap the workers
    Ok(Round {
        elapsed,
        per_worker: counters.values(),
        passed: None,
    })
}

/// Mode A worker: accept until WouldBlock on every wake-up; one byte, close.
fn inherit_worker(
    listener: std::net::TcpListener,
    mut ready: &UnixStream,
    served: &AtomicU64,
    deadline: Instant,
) -> io::Result<()> {
    let mut listener = mio::net::TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    ready.write_all(&[1])?;
    let mut events = Events::with_capacity(16);
    loop {
        poll_until(&mut poll, &mut events, deadline)?;
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    served.fetch_add(1, Ordering::Relaxed);
                    // A client that is already gone is not the worker's error.
                    let _ = stream.write(&[1]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(context(e, "worker accept")),
            }
        }
    }
}

/// Mode B: the master accepts and passes the sockets to the workers.
fn round_scm_rights(args: Args, deadline: Instant) -> io::Result<Round> {
    let counters = Counters::new(args.workers)?;
    let (mut ready, ready_child) = UnixStream::pair()?;
    let mut children = Children::new();
    let mut channels = Vec::with_capacity(args.workers); // the master's ends
    for id in 0..args.workers {
        let (master_end, worker_end) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None)?;
        if let Side::Child = children.fork()? {
            drop((channels, master_end, ready));
            exit_child(|| scm_worker(worker_end, &ready_child, counters.get(id), deadline));
        }
        // Blocking, with a timeout: a full channel holds the master back, boundedly.
        master_end.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        channels.push(master_end);
    }
    drop(ready_child);
    wait_ready(&mut ready, args.workers, deadline)?;

    // Bound after the fork: the workers never hold the listener.
    let mut listener = mio::net::TcpListener::from_std(bind_listener()?);
    let addr = listener.local_addr()?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let abort = AtomicBool::new(false);
    let (master, clients) = std::thread::scope(|s| {
        let clients = s.spawn(|| {
            let result = run_clients(addr, args, deadline, &abort);
            let _ = waker.wake();
            result
        });
        let master = master_loop(&mut poll, &listener, &channels, deadline);
        if master.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        let clients = clients
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (master, clients)
    });
    let passed = master.map_err(|e| context(e, "master"))?;
    let elapsed = clients?;
    drop(children); // SIGKILL and reap the workers
    Ok(Round {
        elapsed,
        per_worker: counters.values(),
        passed: Some(passed),
    })
}

/// The master's loop: accept all that is pending, deal the sockets round-robin, send
/// each worker its share in one message, close the master's copies. Returns
/// (fds passed, sendmsg calls) once woken by the load generator.
fn master_loop(
    poll: &mut Poll,
    listener: &mio::net::TcpListener,
    channels: &[Socket],
    deadline: Instant,
) -> io::Result<(usize, usize)> {
    let mut events = Events::with_capacity(16);
    let mut batches: Vec<Vec<OwnedFd>> = channels.iter().map(|_| Vec::new()).collect();
    let mut next = 0;
    let (mut fds, mut msgs) = (0, 0);
    let mut flush = |channel: &Socket, batch: &mut Vec<OwnedFd>| -> io::Result<()> {
        send_fds(channel.as_fd(), batch).map_err(|e| context(e, "sendmsg"))?;
        fds += batch.len();
        msgs += 1;
        batch.clear(); // closes the master's copies
        Ok(())
    };
    loop {
        poll_until(poll, &mut events, deadline)?;
        let woken = events.iter().any(|e| e.token() == WAKE);
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    batches[next].push(OwnedFd::from(stream));
                    if batches[next].len() == MAX_FDS {
                        flush(&channels[next], &mut batches[next])?;
                    }
                    next = (next + 1) % channels.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(context(e, "master accept")),
            }
        }
        for (channel, batch) in channels.iter().zip(&mut batches) {
            if !batch.is_empty() {
                flush(channel, batch)?;
            }
        }
        if woken {
            return Ok((fds, msgs));
        }
    }
}

/// Mode B worker: receive sockets until WouldBlock on every wake-up; one byte, close.
fn scm_worker(
    channel: Socket,
    mut ready: &UnixStream,
    served: &AtomicU64,
    deadline: Instant,
) -> io::Result<()> {
    channel.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    poll.registry().register(
        &mut SourceFd(&channel.as_raw_fd()),
        CHANNEL,
        Interest::READABLE,
    )?;
    ready.write_all(&[1])?;
    let mut events = Events::with_capacity(16);
    let mut fds = Vec::with_capacity(MAX_FDS);
    loop {
        poll_until(&mut poll, &mut events, deadline)?;
        loop {
            match recv_fds(channel.as_fd(), &mut fds) {
                Ok(0) => return Ok(()), // the master closed the channel
                Ok(_) => {
                    for fd in fds.drain(..) {
                        served.fetch_add(1, Ordering::Relaxed);
                        let _ = TcpStream::from(fd).write(&[1]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(context(e, "recvmsg")),
            }
        }
    }
}

/// Sends `fds` (1..=MAX_FDS of them) in one SCM_RIGHTS message with one payload byte
/// per descriptor. The kernel duplicates them into the message; the caller still owns
/// (and closes) its own copies.
fn send_fds(channel: BorrowedFd<'_>, fds: &[OwnedFd]) -> io::Result<()> {
    assert!((1..=MAX_FDS).contains(&fds.len()));
    let payload = [1u8; MAX_FDS];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void, // the kernel only reads it
        iov_len: fds.len(),
    };
    let mut control = [0u64; CMSG_WORDS];
    let fd_bytes = (fds.len() * size_of::<libc::c_int>()) as u32;
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic only.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes) } as _;
    // SAFETY: msg_control points at `control`, 8-byte aligned as cmsghdr needs and at
    // least CMSG_SPACE(fd_bytes) <= CMSG_BYTES long, and msg_controllen says so; hence
    // CMSG_FIRSTHDR returns a non-null header at its start, and CMSG_DATA(cmsg) plus
    // fd_bytes (<= CMSG_LEN(fd_bytes) <= CMSG_SPACE(fd_bytes)) stays inside it. The
    // descriptors are written unaligned because CMSG_DATA promises no alignment.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: `msg` and what it points to (`iov` -> `payload`, `control`) are live
        // for the call, and every descriptor in the control message is open (owned by
        // `fds`). MSG_NOSIGNAL: a dead worker is an error, not a SIGPIPE.
        let sent = unsafe { libc::sendmsg(channel.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            // SOCK_SEQPACKET: a message goes whole or not at all.
            debug_assert_eq!(sent as usize, fds.len());
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message from the channel, appending the descriptors it carries to
/// `out`. Returns the payload length: 0 when the master has closed the channel.
fn recv_fds(channel: BorrowedFd<'_>, out: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut payload = [0u8; MAX_FDS];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut control = [0u64; CMSG_WORDS];
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` -> `payload` and at `control`, both live and
    // writable for the stated lengths, which is all the kernel writes.
    let received = unsafe { libc::recvmsg(channel.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let before = out.len();
    // Take ownership of every descriptor that arrived before checking anything, so
    // that none leaks.
    // SAFETY: after a successful recvmsg, msg_control/msg_controllen describe the
    // control messages the kernel wrote into `control`; CMSG_FIRSTHDR/CMSG_NXTHDR walk
    // them without leaving it and end with null. An SCM_RIGHTS message holds
    // (cmsg_len - CMSG_LEN(0)) / size_of::<c_int>() descriptors (read unaligned, as
    // CMSG_DATA promises no alignment), each just installed in this process and owned
    // by nothing else, so wrapping each in an OwnedFd is sound.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..bytes / size_of::<libc::c_int>() {
                    out.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(io::Error::other("SCM_RIGHTS message truncated"));
    }
    let received = received as usize;
    if out.len() - before != received {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{received} payload bytes but {} fds", out.len() - before),
        ));
    }
    Ok(received)
}

/// The load generator: `args.clients` threads connect, read one byte and close until
/// `args.connections` connections are done. Returns the wall time.
fn run_clients(
    addr: SocketAddr,
    args: Args,
    deadline: Instant,
    abort: &AtomicBool,
) -> io::Result<Duration> {
    let claimed = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let client = || -> io::Result<()> {
        let mut byte = [0u8; 1];
        while !abort.load(Ordering::Relaxed)
            && claimed.fetch_add(1, Ordering::Relaxed) < args.connections
        {
            let timeout = op_timeout(deadline)?;
            let mut stream = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| context(e, "client connect"))?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            stream
                .read_exact(&mut byte)
                .map_err(|e| context(e, "client read"))?;
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    let start = Instant::now();
    let results: Vec<io::Result<()>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..args.clients)
            .map(|_| {
                s.spawn(|| {
                    let result = client();
                    if result.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<io::Result<()>>()?;
    let done = done.into_inner();
    if done != args.connections {
        return Err(io::Error::other(format!(
            "clients aborted after {done} of {} connections",
            args.connections
        )));
    }
    Ok(elapsed)
}

fn bind_listener() -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Waits (boundedly) until each of `workers` workers has written its ready byte.
fn wait_ready(ready: &mut UnixStream, workers: usize, deadline: Instant) -> io::Result<()> {
    ready.set_read_timeout(Some(op_timeout(deadline)?))?;
    let mut bytes = vec![0u8; workers];
    ready
        .read_exact(&mut bytes)
        .map_err(|e| context(e, "waiting for the workers to start"))
}

/// One poll, no later than `deadline`; an interrupted poll is an empty one.
fn poll_until(poll: &mut Poll, events: &mut Events, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "run time limit reached",
        ));
    }
    match poll.poll(events, Some(left)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other,
    }
}

/// The timeout of a blocking socket operation: 5 s, or less near the deadline.
fn op_timeout(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "run time limit reached",
        ));
    }
    Ok(left.min(SOCKET_TIMEOUT))
}

/// Accept errors that concern one connection only.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Which side of a fork this is.
#[derive(Debug)]
enum Side {
    Parent,
    Child,
}

/// The forked workers of one round. Dropping it SIGKILLs and reaps every one, so no
/// error path or panic in the parent leaves a child running or a zombie.
#[derive(Debug)]
struct Children {
    /// The parent's pid: a child's copy of the guard must do nothing.
    owner: libc::pid_t,
    pids: Vec<libc::pid_t>,
}

impl Children {
    fn new() -> Self {
        Children {
            owner: std::process::id() as libc::pid_t,
            pids: Vec::new(),
        }
    }

    /// Forks a worker; in the parent, records its pid. In the child, the caller must
    /// end in [`exit_child`] and never return into the parent's code.
    fn fork(&mut self) -> io::Result<Side> {
        io::stdout().flush()?;
        // SAFETY: fork itself has no memory-safety preconditions. No other thread
        // exists at this point (the client threads of earlier rounds have been joined;
        // those of this round start after the workers), so the child is a complete copy
        // with no lock held by a thread that does not exist in it.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                // SAFETY: prctl(PR_SET_PDEATHSIG) only sets an attribute of this process
                // (the signal is passed as the unsigned long the kernel reads);
                // getppid and _exit have no preconditions. If the parent died before
                // prctl took effect, exit now.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    if libc::getppid() != self.owner {
                        libc::_exit(1);
                    }
                }
                Ok(Side::Child)
            }
            pid => {
                self.pids.push(pid);
                Ok(Side::Parent)
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if std::process::id() as libc::pid_t != self.owner {
            return;
        }
        for &pid in &self.pids {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped
            // child, so the pid cannot have been reused by another process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &pid in &self.pids {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a valid i32.
            while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
        }
    }
}

/// Runs a worker in the forked child and ends the child with `_exit`, so that none of
/// the parent's state copied into it (guards, buffered output) is dropped or flushed
/// here, and a panic does not unwind into the parent's code.
fn exit_child(body: impl FnOnce() -> io::Result<()>) -> ! {
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("worker {}: {e}", std::process::id());
            1
        }
        Err(_) => 101, // the panic hook has printed the message
    };
    // SAFETY: _exit has no preconditions; it ends the process without unwinding or
    // running destructors, as intended.
    unsafe { libc::_exit(code) }
}

/// Per-worker connection counters in a shared anonymous mapping, written by the
/// workers and read by the parent.
#[derive(Debug)]
struct Counters {
    ptr: *mut AtomicU64,
    len: usize,
}

impl Counters {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous shared mapping of fresh memory; no existing memory is
        // affected. The result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * size_of::<AtomicU64>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Counters {
            ptr: ptr.cast(),
            len,
        })
    }

    fn all(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, `len` words long, zero-filled (a valid
        // AtomicU64 is any u64) and stays mapped while `self` lives; it is only
        // accessed atomically, from any process sharing it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn get(&self, worker: usize) -> &AtomicU64 {
        &self.all()[worker]
    }

    fn values(&self) -> Vec<u64> {
        self.all()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference from `all`
        // outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len * size_of::<AtomicU64>()) };
    }
}
