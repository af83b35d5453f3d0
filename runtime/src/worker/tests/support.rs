//! What the worker tests share: a worker in a thread with the test as its master
//! ([`Setup`], [`Harness`]), small blocking backends ([`Backend`]), and helpers
//! for bytes, ports and bounded waits.

use super::*;

/// Timeout of every blocking socket operation in the tests.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a test waits for a worker to exit.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn relay(remotes: &[(SocketAddr, u32)]) -> Relay {
    // No silent timeout: a test's client may take its time.
    Relay {
        silent_timeout: 0,
        ..Relay::new(
            remotes
                .iter()
                .map(|&(address, weight)| Remote {
                    weight,
                    ..Remote::new(address)
                })
                .collect(),
        )
    }
}

/// A port nothing listens on: bound, then released.
pub(crate) fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A port nothing listens on yet, kept bound so that no other socket (another
/// test's connection picking it as its source port) can take it before a backend
/// starts listening there ([`Backend::at`]): connections to it are refused meanwhile.
pub(crate) struct Reserved {
    pub(crate) socket: socket2::Socket,
    pub(crate) addr: SocketAddr,
}

pub(crate) fn reserved_port() -> Reserved {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let addr = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("an IP address");
    Reserved { socket, addr }
}

pub(crate) fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// FNV-1a, streaming: enough to compare byte streams.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

// ---- the worker under test --------------------------------------------------------

pub(crate) struct Harness {
    pub(crate) addr: SocketAddr,
    pub(crate) master: Option<StdUnixStream>,
    pub(crate) thread: Option<JoinHandle<io::Result<Exit>>>,
    pub(crate) probe: Arc<Probe>,
}

pub(crate) struct Setup {
    pub(crate) relay: Relay,
    pub(crate) users_max: u32,
    pub(crate) users_min: u32,
    /// A seat on a load board shared with other workers under test.
    pub(crate) place: Option<crate::board::Place>,
    pub(crate) acl: Vec<tcprelay_plan::AclRule>,
    pub(crate) listener: Option<TcpListener>,
    pub(crate) signals: Option<mio::unix::pipe::Receiver>,
    pub(crate) connect_timeout: Option<Duration>,
    /// The TLS handshake timeout (with clients and with TLS remotes).
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) idle_release: Option<Duration>,
    pub(crate) defer_check: Option<Duration>,
    pub(crate) mechanism: Mechanism,
    /// The relay-wide steering of remotes the worker follows.
    pub(crate) steering: Option<crate::worker::Steering>,
    /// The relay-wide counters the worker counts in (`None`: none).
    pub(crate) counting: Option<Counting>,
    /// The listener's `accept proxy`.
    pub(crate) accept_proxy: Option<tcprelay_plan::AcceptProxy>,
    /// The listener's `dscp` and the section's `tcp bufsize` (the remote sockets').
    pub(crate) dscp: Option<u8>,
    pub(crate) tcp_bufsize: Option<u32>,
    /// Client affinity (`sticky cache`).
    pub(crate) sticky: Option<crate::worker::Sticky>,
    /// A server context: the listener terminates TLS with it.
    pub(crate) tls: Option<openssl::ssl::SslContext>,
}

impl Setup {
    pub(crate) fn under(mechanism: Mechanism, relay: Relay) -> Setup {
        Setup {
            relay,
            users_max: 1000,
            users_min: 0,
            place: None,
            acl: Vec::new(),
            listener: None,
            signals: None,
            connect_timeout: None,
            handshake_timeout: None,
            idle_release: None,
            defer_check: None,
            mechanism,
            steering: None,
            counting: None,
            accept_proxy: None,
            dscp: None,
            tcp_bufsize: None,
            sticky: None,
            tls: None,
        }
    }

    pub(crate) fn start(self) -> Harness {
        let listener = match self.listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").expect("bind"),
        };
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("nonblocking");
        ours.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let config = Config {
            id: 1,
            relay: self.relay,
            users_max: self.users_max,
            users_min: self.users_min,
            place: self.place,
            counting: self.counting,
            steering: self.steering,
            sticky: self.sticky,
            acl: self.acl,
            listeners: vec![Listener {
                tls: self.tls.is_some(),
                accept_proxy: self.accept_proxy,
                dscp: self.dscp,
                ..Listener::plain(ListenSocket::Tcp(mio::net::TcpListener::from_std(listener)))
            }],
            tcp_bufsize: self.tcp_bufsize,
            control: mio::net::UnixStream::from_std(theirs),
            signals: self.signals,
            discovery: None,
            tls: self.tls,
            route_tls: Vec::new(),
        };
        let probe = Arc::new(Probe::default());
        let options = Options {
            probe: Some(probe.clone()),
            connect_timeout: self.connect_timeout,
            handshake_timeout: self.handshake_timeout,
            idle_release: self.idle_release,
            defer_check: self.defer_check,
            mechanism: Some(self.mechanism),
            ..Options::default()
        };
        let thread = thread::spawn(move || run_with(config, options));
        Harness {
            addr,
            master: Some(ours),
            thread: Some(thread),
            probe,
        }
    }
}

impl Harness {
    pub(crate) fn connect(&self) -> TcpStream {
        let stream =
            TcpStream::connect_timeout(&self.addr, IO_TIMEOUT).expect("connect to the worker");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream
    }

    pub(crate) fn send(&mut self, message: ToWorker) {
        if let Some(master) = self.master.as_mut() {
            master
                .write_all(&message.encode())
                .expect("write to the worker");
        }
    }

    /// The next frame from the worker, if one comes within `within`.
    pub(crate) fn next_frame(&mut self, within: Duration) -> Option<ToMaster> {
        let master = self.master.as_mut()?;
        let deadline = Instant::now() + within;
        let mut frame = [0u8; FRAME];
        let mut filled = 0;
        while filled < FRAME {
            if Instant::now() >= deadline {
                assert_eq!(filled, 0, "a partial frame");
                return None;
            }
            match master.read(&mut frame[filled..]) {
                Ok(0) => return None,
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("control read: {e}"),
            }
        }
        Some(ToMaster::decode(&frame).expect("a worker frame"))
    }

    /// Reads frames until `want` arrives; the ones before it are returned.
    pub(crate) fn expect_frame(&mut self, want: ToMaster) -> Vec<ToMaster> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left) {
                Some(frame) if frame == want => return seen,
                Some(frame) => seen.push(frame),
                None => panic!("no {want:?} from the worker; saw {seen:?}"),
            }
        }
    }

    /// Waits for the loop to return.
    pub(crate) fn join(&mut self) -> Exit {
        let thread = self.thread.take().expect("worker running");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the worker did not exit");
            thread::sleep(Duration::from_millis(5));
        }
        thread.join().expect("worker thread").expect("worker loop")
    }

    pub(crate) fn stop(&mut self) -> Exit {
        self.send(ToWorker::Stop { grace_secs: 0 });
        self.join()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Some(master) = self.master.as_mut() {
                let _ = master.write_all(&ToWorker::Stop { grace_secs: 0 }.encode());
            }
            self.master = None;
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while !thread.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

// ---- backends ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Writes back what it reads, closes on end of file.
    Echo,
    /// Accepts and holds the connection, reading nothing.
    Hold,
    /// Reads to end of file, then answers with [`reply_for`] and closes.
    ReplyAfterEof,
    /// Reads one byte, then resets the connection.
    Reset,
}

/// The half-close test's reply to a request of `n` bytes.
pub(crate) fn reply_for(n: usize) -> Vec<u8> {
    let mut reply = format!("got {n} bytes\n").into_bytes();
    reply.extend(random_bytes(n as u64, 300 * 1024));
    reply
}

pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) accepted: Arc<AtomicUsize>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub(crate) fn start(mode: Mode) -> Backend {
        Backend::on(TcpListener::bind("127.0.0.1:0").expect("bind"), mode)
    }

    pub(crate) fn at(port: Reserved, mode: Mode) -> Backend {
        port.socket
            .listen(128)
            .expect("listen on the reserved port");
        Backend::on(port.socket.into(), mode)
    }

    pub(crate) fn on(listener: TcpListener, mode: Mode) -> Backend {
        Backend::accepting(listener, move |stream, held| match mode {
            Mode::Hold => {
                held.push(stream);
                None
            }
            _ => Some(thread::spawn(move || serve(stream, mode))),
        })
    }

    /// A backend that serves each connection with `handler`, in a thread of its
    /// own.
    pub(crate) fn with(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        let handler = Arc::new(handler);
        Backend::accepting(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            move |stream, _| {
                let handler = handler.clone();
                Some(thread::spawn(move || handler(stream)))
            },
        )
    }

    /// Accepts until dropped, giving each connection (blocking, with timeouts) to
    /// `take`, which holds it or returns the thread serving it.
    fn accepting(
        listener: TcpListener,
        mut take: impl FnMut(TcpStream, &mut Vec<TcpStream>) -> Option<JoinHandle<()>> + Send + 'static,
    ) -> Backend {
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (accepted.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            let mut workers = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                        workers.extend(take(stream, &mut held));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            drop(held);
            for worker in workers {
                let _ = worker.join();
            }
        });
        Backend {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn serve(mut stream: TcpStream, mode: Mode) {
    let mut buf = vec![0u8; 64 * 1024];
    match mode {
        Mode::Echo => loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        },
        Mode::ReplyAfterEof => {
            let mut total = 0;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(_) => return,
                }
            }
            let _ = stream.write_all(&reply_for(total));
        }
        Mode::Reset => {
            let _ = stream.read(&mut buf[..1]);
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        Mode::Hold => {}
    }
}

/// One request/response through an echo backend.
pub(crate) fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).expect("write through the relay");
    let mut back = vec![0u8; message.len()];
    stream
        .read_exact(&mut back)
        .expect("echo through the relay");
    assert_eq!(back, message);
}

/// Reads until end of file or an error; returns what was read and how it ended.
pub(crate) fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (data, Ok(())),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (data, Err(e)),
        }
    }
}

/// Writes `chunk` again and again until a write waits 500 ms (the path is full);
/// fails the test on another error or past `limit` bytes. Returns the bytes written.
pub(crate) fn write_until_stalled(stream: &mut TcpStream, chunk: &[u8], limit: usize) -> usize {
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut written = 0usize;
    loop {
        match stream.write(chunk) {
            Ok(n) => written += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return written
            }
            Err(e) => panic!("write: {e}"),
        }
        assert!(written < limit, "writes never stalled");
    }
}

/// Whether `stream` receives nothing within `within` (it is not being served).
pub(crate) fn stays_silent(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut byte = [0u8; 1];
    let silent = matches!(
        stream.read(&mut byte),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
    );
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    silent
}
