//! The kernel floor for the benchmark's redis figures: a minimal TCP relay that makes
//! only the system calls any relay must. Not part of tcprelay: `bench/bench.py` runs
//! it beside tcprelay and HAProxy, so that what each relay spends above it (its event
//! loop, timers, bookkeeping, logging) can be told apart from the kernel's TCP work
//! for the two hops, which no read/write relay avoids.
//!
//! `floor LISTEN_ADDR:PORT REMOTE_ADDR:PORT [THREADS]` (2 threads by default, one per
//! core as the relays run). Each thread has its own listening socket on the same
//! address (`SO_REUSEPORT`: the kernel spreads the connections) and its own
//! edge-triggered epoll. Per wake-up: `accept4` until `EAGAIN`; per client one
//! non-blocking `socket` + `connect` to the remote, both sockets registered once
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, never modified, removed by their
//! close); `recv` into one buffer per thread until `EAGAIN` or a short read, and
//! `send` from it (a remainder the destination does not take is kept per direction
//! until it is writable); an end of file passed on with `shutdown(SHUT_WR)` and, once
//! both directions ended, or after an error, both sockets closed. TCP_NODELAY is set on the listener (accepted sockets
//! inherit it) and on each remote socket, as the relays do. No timers, no logging, no
//! clock reads, no accounting: a slab of socket pairs is all it keeps.
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

fn listener(addr: &SocketAddr) -> io::Result<c_int> {
    // SAFETY: plain system calls on descriptors this function owns.
    unsafe {
        let fd = check(libc::socket(
            family(addr),
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
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

fn parse(s: Option<String>, what: &str) -> SocketAddr {
    let s = s.unwrap_or_else(|| {
        eprintln!("usage: floor LISTEN_ADDR:PORT REMOTE_ADDR:PORT [THREADS]");
        std::process::exit(2);
    });
    s.parse().unwrap_or_else(|e| {
        eprintln!("floor: {what} {s}: {e}");
        std::process::exit(2);
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = parse(args.next(), "listen address");
    let remote = parse(args.next(), "remote address");
    let threads: usize = args.next().map_or(2, |t| t.parse().unwrap_or(2)).max(1);
    // Every listener bound before any serves, so a client never finds the port closed.
    let lfds: Vec<c_int> = (0..threads)
        .map(|_| {
            listener(&listen).unwrap_or_else(|e| {
                eprintln!("floor: cannot listen on {listen}: {e}");
                std::process::exit(1);
            })
        })
        .collect();
    let handles: Vec<_> = lfds
        .into_iter()
        .map(|lfd| {
            std::thread::spawn(move || {
                if let Err(e) = run(lfd, remote) {
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
