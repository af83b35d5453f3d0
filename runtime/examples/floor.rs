//! The kernel floor for the benchmark's redis figures: a minimal TCP relay that makes
//! only the system calls any relay must. Not part of tcprelay: `bench/bench.py` runs
//! it beside tcprelay and HAProxy, so that what each relay spends above it (its event
//! loop, timers, bookkeeping, logging) can be told apart from the kernel's TCP work
//! for the two hops, which no read/write relay avoids.
//!
//! `floor LISTEN_ADDR:PORT REMOTE_ADDR:PORT [THREADS] [--uring]` (2 threads by default,
//! one per core as the relays run; epoll unless `--uring`, below). Each thread has its
//! own listening socket on the same address (`SO_REUSEPORT`: the kernel spreads the
//! connections) and its own edge-triggered epoll. Per wake-up: `accept4` until `EAGAIN`; per client one
//! non-blocking `socket` + `connect` to the remote, both sockets registered once
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, never modified, removed by their
//! close); `recv` into one buffer per thread until `EAGAIN` or a short read, and
//! `send` from it (a remainder the destination does not take is kept per direction
//! until it is writable); an end of file passed on with `shutdown(SHUT_WR)` and, once
//! both directions ended, or after an error, both sockets closed. TCP_NODELAY is set
//! on the listener (accepted sockets inherit it) and on each remote socket, as the
//! relays do. No timers, no logging, no
//! clock reads, no accounting: a slab of socket pairs is all it keeps.
//!
//! `--uring` runs the same relay on io_uring's completions instead of epoll's
//! readiness (issue 19: can fewer system calls go below the epoll floor?). Per thread
//! one ring (`IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`: completions
//! are processed only when the thread enters the kernel) and one buffer ring of 512
//! provided buffers of 16 KiB (`IORING_REGISTER_PBUF_RING`). A multishot accept on the
//! listener; per client a blocking `socket`, TCP_NODELAY, and `IORING_OP_CONNECT`
//! (the remote's address is kept for the thread's life); once connected, a multishot
//! receive on each socket, each completion's buffer queued towards the peer and sent
//! with an `IORING_OP_SEND` (one in flight per direction, so that sends to one socket
//! keep their order; a partial send re-submitted for the rest; the buffer handed back
//! to the ring when all of it is sent). Everything queued during a loop turn reaches
//! the kernel in the one `io_uring_enter` that waits for the next completions
//! (`submit_and_wait(1)`). Backpressure: when four buffers (64 KiB) wait in one
//! direction, that side's receive is cancelled, and armed again only when all of it
//! has been sent; a side that finds the buffer ring empty (`ENOBUFS`) is armed again
//! when a buffer comes back (the ring's buffers bound what a thread holds, 8 MiB).
//! An end of file is passed on with the `shutdown` system call (`IORING_OP_SHUTDOWN`
//! does not run non-blocking: an io-wq worker thread would carry it out, a thread
//! switch a connection); both sockets are closed with `IORING_OP_CLOSE` when both
//! directions ended, or, after an error, once every operation on them was cancelled
//! (`IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL`) and completed, so that no
//! buffer is reused while the kernel may still write it. The operations and features
//! it needs are probed at start (a clear error if the kernel lacks them: Linux 6.1 at
//! least). Per keep-alive request it makes 0.3 system calls (`io_uring_enter`), per
//! new connection 3.6 (`socket`, `setsockopt`, `shutdown`, 0.55 `io_uring_enter`).
//!
//! It relays correctly (half-close included) but has none of a relay's duties
//! (timeouts, limits, failover): it is a measuring stick, not a relay to run.

use std::ffi::c_int;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;

const BUF: usize = 64 * 1024;
const LISTENER: u64 = u64::MAX;

fn check(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; the family's struct fits in it.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is aligned for it.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn family(addr: &SocketAddr) -> c_int {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

fn set_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int that outlives the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const c_int as *const libc::c_void,
            size_of::<c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A listening socket, non-blocking for epoll (blocking for io_uring, which tries
/// each operation without blocking and waits for readiness itself).
fn listener(addr: &SocketAddr, nonblock: bool) -> io::Result<c_int> {
    let flags = if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain system calls on descriptors this function owns.
    unsafe {
        let fd = check(libc::socket(
            family(addr),
            libc::SOCK_STREAM | flags | libc::SOCK_CLOEXEC,
            0,
        ))?;
        set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
        let (ss, len) = sockaddr(addr);
        check(libc::bind(
            fd,
            &ss as *const _ as *const libc::sockaddr,
            len,
        ))?;
        check(libc::listen(fd, 4096))?;
        Ok(fd)
    }
}

fn add(ep: c_int, fd: c_int, token: u64, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event for the call.
    check(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

fn close(fd: c_int) {
    // SAFETY: the descriptor is owned by the caller, which forgets it.
    unsafe { libc::close(fd) };
}

/// One relayed connection: the client's socket (side 0) and the remote's (side 1).
struct Pair {
    fd: [c_int; 2],
    /// Bytes read from side `i` that side `1 - i` has not taken yet.
    left: [Vec<u8>; 2],
    /// Side `i` has sent its end of file (passed on to the other side).
    eof: [bool; 2],
    /// The remote's connect has completed: the client's bytes may be read.
    connected: bool,
    /// The client's bytes arrived before the connect completed.
    waiting: bool,
    /// Side `i` reported its peer's end of file (`EPOLLRDHUP`, `EPOLLHUP`): read it
    /// until `recv` says 0, not only until a short read.
    hup: [bool; 2],
}

enum Step {
    Open,
    Close,
}

struct Worker {
    ep: c_int,
    lfd: c_int,
    remote: SocketAddr,
    buf: Box<[u8]>,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
}

impl Worker {
    fn accept_all(&mut self) {
        loop {
            // SAFETY: no address is asked for.
            let c = unsafe {
                libc::accept4(
                    self.lfd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if c < 0 {
                // EAGAIN: drained; anything else (EMFILE, ECONNABORTED...): try again
                // at the next wake-up.
                return;
            }
            if self.open(c).is_err() {
                close(c);
            }
        }
    }

    fn open(&mut self, c: c_int) -> io::Result<()> {
        // SAFETY: plain system calls; the new descriptor is closed on every error.
        let r = check(unsafe {
            libc::socket(
                family(&self.remote),
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        let (ss, len) = sockaddr(&self.remote);
        let connected = set_int(r, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1).and_then(|()| {
            // SAFETY: ss is a valid address of length len.
            match check(unsafe { libc::connect(r, &ss as *const _ as *const libc::sockaddr, len) })
            {
                Ok(_) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = connected {
            close(r);
            return Err(e);
        }
        let i = self.free.pop().unwrap_or_else(|| {
            self.pairs.push(None);
            self.pairs.len() - 1
        });
        self.pairs[i] = Some(Pair {
            fd: [c, r],
            left: [Vec::new(), Vec::new()],
            eof: [false; 2],
            connected: false,
            waiting: false,
            hup: [false; 2],
        });
        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        let token = (i as u64) << 1;
        if add(self.ep, c, token, ev)
            .and_then(|()| add(self.ep, r, token | 1, ev))
            .is_err()
        {
            self.pairs[i] = None;
            self.free.push(i);
            close(r);
            return Err(io::Error::other("epoll_ctl"));
        }
        Ok(())
    }

    fn event(&mut self, token: u64, events: u32) {
        let i = (token >> 1) as usize;
        let side = (token & 1) as usize;
        let Some(p) = self.pairs[i].as_mut() else {
            return;
        };
        let bad = events & (libc::EPOLLERR as u32) != 0;
        let step = if bad {
            Step::Close
        } else {
            let readable = events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0;
            let writable = events & (libc::EPOLLOUT as u32) != 0;
            if events & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0 {
                p.hup[side] = true;
            }
            let mut step = Step::Open;
            if side == 0 && readable && !p.connected {
                // Read once the remote's connect has completed.
                p.waiting = true;
            } else if side == 1 && writable && !p.connected {
                // The connect completed (a failure raises EPOLLERR): the client's bytes
                // that arrived meanwhile can go now.
                p.connected = true;
                if p.waiting {
                    step = pump(p, 0, &mut self.buf);
                }
            } else if writable && !p.left[1 - side].is_empty() {
                // Only a remainder stopped the other direction: every other time it
                // was read until it would block, and its next bytes raise an event.
                step = pump(p, 1 - side, &mut self.buf);
            }
            if matches!(step, Step::Open) && readable && p.connected {
                step = pump(p, side, &mut self.buf);
            }
            step
        };
        if let Step::Close = step {
            let p = self.pairs[i].take().expect("a pair");
            close(p.fd[0]);
            close(p.fd[1]);
            self.free.push(i);
        }
    }
}

/// Moves what side `from` has sent to the other side until either would block.
fn pump(p: &mut Pair, from: usize, buf: &mut [u8]) -> Step {
    let to = 1 - from;
    if p.eof[from] {
        return Step::Open;
    }
    if !p.left[from].is_empty() {
        match send_all(p.fd[to], &p.left[from]) {
            Err(()) => return Step::Close,
            Ok(n) if n < p.left[from].len() => {
                p.left[from].drain(..n);
                return Step::Open;
            }
            Ok(_) => p.left[from] = Vec::new(),
        }
    }
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(p.fd[from], buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n == 0 {
            p.eof[from] = true;
            if p.eof[to] {
                return Step::Close;
            }
            // SAFETY: a plain system call on a descriptor of the pair.
            unsafe { libc::shutdown(p.fd[to], libc::SHUT_WR) };
            return Step::Open;
        }
        if n < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => Step::Open,
                Some(libc::EINTR) => continue,
                _ => Step::Close,
            };
        }
        let n = n as usize;
        match send_all(p.fd[to], &buf[..n]) {
            Err(()) => return Step::Close,
            Ok(sent) if sent < n => {
                p.left[from] = buf[sent..n].to_vec();
                return Step::Open;
            }
            // A short read took all there was: the next bytes raise an event of their
            // own (edge-triggered epoll reports every arrival), so no read is spent on
            // finding the socket empty, unless its end of file is still to be read.
            Ok(_) if n < buf.len() && !p.hup[from] => return Step::Open,
            Ok(_) => {}
        }
    }
}

/// Sends until done or the socket would block: the bytes taken, or `Err` on an error.
fn send_all(fd: c_int, data: &[u8]) -> Result<usize, ()> {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the slice is valid for its length.
        let n = unsafe {
            libc::send(
                fd,
                data[done..].as_ptr().cast(),
                data.len() - done,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => break,
                Some(libc::EINTR) => continue,
                _ => return Err(()),
            }
        }
        done += n as usize;
    }
    Ok(done)
}

fn run(lfd: c_int, remote: SocketAddr) -> io::Result<()> {
    // SAFETY: a plain system call.
    let ep = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    add(ep, lfd, LISTENER, (libc::EPOLLIN | libc::EPOLLET) as u32)?;
    let mut w = Worker {
        ep,
        lfd,
        remote,
        buf: vec![0u8; BUF].into_boxed_slice(),
        pairs: Vec::new(),
        free: Vec::new(),
    };
    // SAFETY: an all-zero epoll_event is valid.
    let mut events = vec![unsafe { zeroed::<libc::epoll_event>() }; 256];
    loop {
        // SAFETY: events is valid for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as c_int, -1) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        for ev in &events[..n as usize] {
            let (token, bits) = (ev.u64, ev.events);
            if token == LISTENER {
                w.accept_all();
            } else {
                w.event(token, bits);
            }
        }
    }
}

/// The completion-based mode (`--uring`): the same relay on io_uring, where the
/// kernel performs the receives and sends and posts their completions, so that the
/// system calls left are one `io_uring_enter` per loop turn and, per connection,
/// `socket`, `setsockopt` and the `shutdown`s.
mod uring {
    use super::{check, close, family, set_int, sockaddr};
    use io_uring::{cqueue, opcode, squeue, types, IoUring};
    use std::collections::VecDeque;
    use std::ffi::c_int;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU16, Ordering};

    /// Bytes per provided buffer, and buffers per thread (a power of two): what
    /// the thread can hold of unsent data at most, 8 MiB.
    const UBUF: usize = 16 * 1024;
    const NBUF: u16 = 512;
    /// The one buffer group of the thread's ring.
    const BGID: u16 = 0;
    /// Buffers queued in one direction at which its receive is cancelled: a slow
    /// reader holds this much of its peer's data (64 KiB, the epoll mode's one
    /// buffer), and the receive is armed again only once all of it has been sent.
    const CAP: usize = 4;

    /// `user_data`: the pair's generation (bits 40..), its slot (8..40), the kind.
    const RECV: u64 = 0; // + side: a multishot receive from that side
    const SEND: u64 = 2; // + side: a send of what that side sent, to the other
    const CONNECT: u64 = 4;
    /// Completions to drop: cancellations and closes (posted only on failure).
    const IGNORE: u64 = u64::MAX - 1;
    const ACCEPT: u64 = u64::MAX;

    /// A received buffer's bytes not yet sent on.
    struct Chunk {
        bid: u16,
        off: u32,
        len: u32,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Recv {
        Idle,
        Armed,
        Cancelling,
    }

    /// One relayed connection: the client's socket (side 0) and the remote's (side 1).
    struct Pair {
        gen: u64,
        fd: [c_int; 2],
        /// What side `i` sent that side `1 - i` has not taken yet; the front is being
        /// sent when `sending[i]`, and only it (two sends to one socket could pass
        /// each other).
        queue: [VecDeque<Chunk>; 2],
        sending: [bool; 2],
        recv: [Recv; 2],
        /// Side `i` ran out of buffers: armed again when one comes back.
        starved: [bool; 2],
        /// Side `i` sent its end of file; `shut[i]`: passed on to side `1 - i`.
        eof: [bool; 2],
        shut: [bool; 2],
        /// Operations the kernel may still be carrying out on the pair's sockets and
        /// buffers: the slot is freed only when none is left.
        inflight: u32,
        closing: bool,
    }

    struct Worker {
        ring: IoUring,
        lfd: c_int,
        family: c_int,
        /// The remote's address, for every connect (it outlives them all).
        addr: (libc::sockaddr_storage, libc::socklen_t),
        /// The provided buffers and the ring that hands them to the kernel.
        bufs: Box<[u8]>,
        bring: *mut types::BufRingEntry,
        tail: u16,
        returned: bool,
        pairs: Vec<Option<Pair>>,
        free: Vec<usize>,
        gen: u64,
        /// Sides that ran out of buffers: (slot, generation, side).
        starved: Vec<(usize, u64, usize)>,
    }

    fn ud(slot: usize, gen: u64, kind: u64) -> u64 {
        (gen << 40) | ((slot as u64) << 8) | kind
    }

    fn fail(what: &str, e: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!("io_uring: {what}: {e}"))
    }

    impl Worker {
        fn new(lfd: c_int, remote: SocketAddr) -> io::Result<Worker> {
            // Single issuer and deferred task work: completions are processed only in
            // the thread's own io_uring_enter, not by interrupting it.
            let ring = IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_cqsize(8192)
                .build(1024)
                .map_err(|e| fail("setup (single issuer, deferred task work; Linux 6.1)", e))?;
            let mut probe = io_uring::Probe::new();
            ring.submitter()
                .register_probe(&mut probe)
                .map_err(|e| fail("probe", e))?;
            for (code, name) in [
                (opcode::AcceptMulti::CODE, "accept"),
                (opcode::Connect::CODE, "connect"),
                (opcode::RecvMulti::CODE, "recv"),
                (opcode::Send::CODE, "send"),
                (opcode::AsyncCancel2::CODE, "async cancel"),
                (opcode::Close::CODE, "close"),
            ] {
                if !probe.is_supported(code) {
                    return Err(fail("the kernel lacks an operation", name));
                }
            }
            if !ring.params().is_feature_skip_cqe_on_success() {
                return Err(fail("the kernel lacks", "IOSQE_CQE_SKIP_SUCCESS"));
            }
            let size = NBUF as usize * size_of::<types::BufRingEntry>();
            // SAFETY: an anonymous private mapping (page-aligned, as the ring must be).
            let bring = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if bring == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the mapping lives as long as the process (never unmapped).
            unsafe {
                ring.submitter()
                    .register_buf_ring_with_flags(bring as u64, NBUF, BGID, 0)
                    .map_err(|e| fail("provided buffer ring (Linux 5.19)", e))?;
            }
            let mut w = Worker {
                ring,
                lfd,
                family: family(&remote),
                addr: sockaddr(&remote),
                bufs: vec![0u8; NBUF as usize * UBUF].into_boxed_slice(),
                bring: bring.cast(),
                tail: 0,
                returned: false,
                pairs: Vec::new(),
                free: Vec::new(),
                gen: 0,
                starved: Vec::new(),
            };
            for bid in 0..NBUF {
                w.give(bid);
            }
            w.publish();
            w.accept();
            Ok(w)
        }

        /// Queues a submission, submitting what is queued first if the queue is full.
        fn push(&mut self, e: squeue::Entry) {
            loop {
                // SAFETY: what an entry points to (the remote's address, a provided
                // buffer of a queued chunk) outlives its operation.
                if unsafe { self.ring.submission().push(&e) }.is_ok() {
                    return;
                }
                let _ = self.ring.submit();
            }
        }

        /// Hands buffer `bid` back to the kernel (visible at the next `publish`).
        fn give(&mut self, bid: u16) {
            let i = (self.tail & (NBUF - 1)) as usize;
            // SAFETY: the ring has NBUF entries; the entry at the tail is the
            // application's until the tail is published past it.
            let e = unsafe { &mut *self.bring.add(i) };
            e.set_addr(self.bufs.as_ptr() as u64 + bid as u64 * UBUF as u64);
            e.set_len(UBUF as u32);
            e.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            self.returned = true;
        }

        fn publish(&mut self) {
            // SAFETY: the tail field of the ring's first entry, shared with the
            // kernel, which reads it atomically.
            let tail = unsafe { &*(types::BufRingEntry::tail(self.bring) as *const AtomicU16) };
            tail.store(self.tail, Ordering::Release);
        }

        fn accept(&mut self) {
            let e = opcode::AcceptMulti::new(types::Fd(self.lfd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(ACCEPT);
            self.push(e);
        }

        fn accepted(&mut self, res: i32, flags: u32) {
            if !cqueue::more(flags) {
                if res == -libc::EINVAL {
                    eprintln!("floor: io_uring: multishot accept refused (Linux 5.19)");
                    std::process::exit(1);
                }
                self.accept();
            }
            if res >= 0 && self.open(res).is_err() {
                close(res);
            }
        }

        fn open(&mut self, c: c_int) -> io::Result<()> {
            // A blocking socket: io_uring tries each operation without blocking and
            // waits for readiness itself.
            // SAFETY: a plain system call.
            let r = check(unsafe {
                libc::socket(self.family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
            })?;
            if let Err(e) = set_int(r, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1) {
                close(r);
                return Err(e);
            }
            let slot = self.free.pop().unwrap_or_else(|| {
                self.pairs.push(None);
                self.pairs.len() - 1
            });
            self.gen = (self.gen + 1) & 0xff_ffff;
            let gen = self.gen;
            self.pairs[slot] = Some(Pair {
                gen,
                fd: [c, r],
                queue: [VecDeque::new(), VecDeque::new()],
                sending: [false; 2],
                recv: [Recv::Idle; 2],
                starved: [false; 2],
                eof: [false; 2],
                shut: [false; 2],
                inflight: 1,
                closing: false,
            });
            let e = opcode::Connect::new(
                types::Fd(r),
                &self.addr.0 as *const _ as *const libc::sockaddr,
                self.addr.1,
            )
            .build()
            .user_data(ud(slot, gen, CONNECT));
            self.push(e);
            Ok(())
        }

        fn completion(&mut self, data: u64, res: i32, flags: u32) {
            if data == ACCEPT {
                return self.accepted(res, flags);
            }
            if data == IGNORE {
                return;
            }
            let slot = ((data >> 8) & 0xffff_ffff) as usize;
            let kind = data & 0xff;
            let Some(p) = self.pairs.get_mut(slot).and_then(|p| p.as_mut()) else {
                return;
            };
            debug_assert_eq!(p.gen, data >> 40);
            match kind {
                CONNECT => {
                    p.inflight -= 1;
                    if res < 0 {
                        return self.fail(slot);
                    }
                    // Both directions start at once: the client's bytes that arrived
                    // meanwhile wait in its socket.
                    self.arm(slot, 0);
                    self.arm(slot, 1);
                }
                RECV..=1 => self.received(slot, kind as usize, res, flags),
                _ => self.sent(slot, (kind - SEND) as usize, res),
            }
        }

        fn arm(&mut self, slot: usize, side: usize) {
            let Some(p) = self.pairs[slot].as_mut() else {
                return;
            };
            p.recv[side] = Recv::Armed;
            p.starved[side] = false;
            p.inflight += 1;
            let e = opcode::RecvMulti::new(types::Fd(p.fd[side]), BGID)
                .build()
                .user_data(ud(slot, p.gen, RECV + side as u64));
            self.push(e);
        }

        /// Arms side `side`'s receive again if it ended and may go on: not at its end of
        /// file, not while the other side has its bytes still to take.
        fn rearm(&mut self, slot: usize, side: usize) {
            let Some(p) = self.pairs[slot].as_ref() else {
                return;
            };
            if p.recv[side] == Recv::Idle
                && !p.eof[side]
                && !p.closing
                && !p.starved[side]
                && p.queue[side].is_empty()
            {
                self.arm(slot, side);
            }
        }

        fn received(&mut self, slot: usize, side: usize, res: i32, flags: u32) {
            let more = cqueue::more(flags);
            let bid = cqueue::buffer_select(flags);
            let p = self.pairs[slot].as_mut().expect("a pair");
            if !more {
                p.inflight -= 1;
                p.recv[side] = Recv::Idle;
            }
            if p.closing {
                if let Some(bid) = bid {
                    self.give(bid);
                }
                return self.maybe_finish(slot);
            }
            if res > 0 {
                let Some(bid) = bid else {
                    return self.fail(slot);
                };
                p.queue[side].push_back(Chunk {
                    bid,
                    off: 0,
                    len: res as u32,
                });
                // Backpressure: enough waits for the other side; the receive ends
                // (ECANCELED) and is armed again when the queue has drained. A cancel
                // that misses (the receive just ended on its own) changes nothing, and
                // until the receive ends the buffer ring bounds what it can take.
                let cancel = more && p.queue[side].len() >= CAP && p.recv[side] == Recv::Armed;
                if cancel {
                    p.recv[side] = Recv::Cancelling;
                    let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(ud(
                        slot,
                        p.gen,
                        RECV + side as u64,
                    )))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(IGNORE);
                    self.push(e);
                }
                let p = self.pairs[slot].as_ref().expect("a pair");
                if !p.sending[side] {
                    self.send(slot, side);
                }
                return self.rearm(slot, side);
            }
            if let Some(bid) = bid {
                self.give(bid);
            }
            let p = self.pairs[slot].as_mut().expect("a pair");
            match -res {
                0 => {
                    p.eof[side] = true;
                    if p.queue[side].is_empty() {
                        self.pass_eof(slot, side);
                    }
                }
                libc::ENOBUFS => {
                    // Every buffer holds unsent bytes: the side is armed again when one
                    // comes back (or when its own queue drains).
                    p.starved[side] = p.queue[side].is_empty();
                    if p.starved[side] {
                        self.starved.push((slot, p.gen, side));
                    }
                }
                libc::ECANCELED => self.rearm(slot, side),
                libc::EINVAL if !more => {
                    eprintln!("floor: io_uring: multishot recv refused (Linux 6.0)");
                    std::process::exit(1);
                }
                _ => self.fail(slot),
            }
        }

        fn send(&mut self, slot: usize, side: usize) {
            let p = self.pairs[slot].as_mut().expect("a pair");
            let Some(c) = p.queue[side].front() else {
                return;
            };
            p.sending[side] = true;
            p.inflight += 1;
            // SAFETY: within the buffer `bid` (the kernel wrote `len` bytes there).
            let ptr = unsafe {
                self.bufs
                    .as_ptr()
                    .add(c.bid as usize * UBUF + c.off as usize)
            };
            let e = opcode::Send::new(types::Fd(p.fd[1 - side]), ptr, c.len - c.off)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(ud(slot, p.gen, SEND + side as u64));
            self.push(e);
        }

        fn sent(&mut self, slot: usize, side: usize, res: i32) {
            let p = self.pairs[slot].as_mut().expect("a pair");
            p.inflight -= 1;
            p.sending[side] = false;
            if p.closing {
                return self.maybe_finish(slot);
            }
            if res <= 0 {
                return self.fail(slot);
            }
            let c = p.queue[side].front_mut().expect("a chunk being sent");
            c.off += res as u32;
            if c.off == c.len {
                let bid = c.bid;
                p.queue[side].pop_front();
                self.give(bid);
            }
            let p = self.pairs[slot].as_ref().expect("a pair");
            if !p.queue[side].is_empty() {
                // The rest of a partial send, or the next chunk.
                self.send(slot, side);
            } else if p.eof[side] {
                self.pass_eof(slot, side);
            } else {
                self.rearm(slot, side);
            }
        }

        /// Side `side` ended and all it sent has been passed on: so is its end of file.
        /// A system call, as `IORING_OP_SHUTDOWN` is always run by an io-wq worker
        /// thread.
        fn pass_eof(&mut self, slot: usize, side: usize) {
            let p = self.pairs[slot].as_mut().expect("a pair");
            p.shut[side] = true;
            if p.shut[1 - side] {
                // Both directions ended: both receives returned 0, nothing is queued.
                return self.finish(slot);
            }
            // SAFETY: a plain system call on a descriptor of the pair.
            unsafe { libc::shutdown(p.fd[1 - side], libc::SHUT_WR) };
        }

        /// An error: the pair's operations are cancelled, and it is closed once the
        /// last has completed.
        fn fail(&mut self, slot: usize) {
            let p = self.pairs[slot].as_mut().expect("a pair");
            if p.closing {
                return;
            }
            p.closing = true;
            let fds = p.fd;
            if p.inflight > 0 {
                for fd in fds {
                    let e =
                        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                            .build()
                            .flags(squeue::Flags::SKIP_SUCCESS)
                            .user_data(IGNORE);
                    self.push(e);
                }
            }
            self.maybe_finish(slot);
        }

        fn maybe_finish(&mut self, slot: usize) {
            if self.pairs[slot].as_ref().is_some_and(|p| p.inflight == 0) {
                self.finish(slot);
            }
        }

        /// Closes both sockets (no operation is left on them) and frees the slot and
        /// the buffers it held.
        fn finish(&mut self, slot: usize) {
            let Some(mut p) = self.pairs[slot].take() else {
                return;
            };
            for fd in p.fd {
                let e = opcode::Close::new(types::Fd(fd))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(IGNORE);
                self.push(e);
            }
            for q in &mut p.queue {
                for c in q.drain(..) {
                    self.give(c.bid);
                }
            }
            self.free.push(slot);
        }

        /// Buffers came back: the sides that ran out of them receive again.
        fn unstarve(&mut self) {
            for (slot, gen, side) in std::mem::take(&mut self.starved) {
                let Some(p) = self.pairs[slot].as_mut() else {
                    continue;
                };
                if p.gen == gen && p.starved[side] {
                    p.starved[side] = false;
                    self.rearm(slot, side);
                }
            }
        }
    }

    pub(super) fn run(lfd: c_int, remote: SocketAddr) -> io::Result<()> {
        let mut w = Worker::new(lfd, remote)?;
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            // Everything queued during the turn, in one system call that also waits.
            match w.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            cqes.clear();
            cqes.extend(
                w.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for &(data, res, flags) in &cqes {
                w.completion(data, res, flags);
            }
            if w.returned {
                w.returned = false;
                w.publish();
                if !w.starved.is_empty() {
                    w.unstarve();
                }
            }
        }
    }
}

fn parse(s: Option<String>, what: &str) -> SocketAddr {
    let s = s.unwrap_or_else(|| {
        eprintln!("usage: floor LISTEN_ADDR:PORT REMOTE_ADDR:PORT [THREADS] [--uring]");
        std::process::exit(2);
    });
    s.parse().unwrap_or_else(|e| {
        eprintln!("floor: {what} {s}: {e}");
        std::process::exit(2);
    })
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let uring = all.iter().any(|a| a == "--uring");
    let mut args = all.into_iter().filter(|a| a != "--uring");
    let listen = parse(args.next(), "listen address");
    let remote = parse(args.next(), "remote address");
    let threads: usize = args.next().map_or(2, |t| t.parse().unwrap_or(2)).max(1);
    // Every listener bound before any serves, so a client never finds the port closed.
    let lfds: Vec<c_int> = (0..threads)
        .map(|_| {
            listener(&listen, !uring).unwrap_or_else(|e| {
                eprintln!("floor: cannot listen on {listen}: {e}");
                std::process::exit(1);
            })
        })
        .collect();
    let handles: Vec<_> = lfds
        .into_iter()
        .map(|lfd| {
            std::thread::spawn(move || {
                let r = if uring {
                    uring::run(lfd, remote)
                } else {
                    run(lfd, remote)
                };
                if let Err(e) = r {
                    eprintln!("floor: {listen}: {e}");
                    std::process::exit(1);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
