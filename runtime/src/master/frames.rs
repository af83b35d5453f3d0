//! The control sockets' frames: what the master tells a worker, and what it does with
//! what the workers report (load, retiring, idle, draining).

use super::{Master, Worker};
use crate::control::{self, Incoming, ToMaster, ToWorker, FRAME};
use crate::{info, warn};
use mio::Token;
use std::io::{self, Write};
use std::os::fd::AsFd;

impl Master {
    pub(super) fn send(worker: &mut Worker, message: ToWorker) {
        if let Err(e) = worker.control.write_all(&message.encode()) {
            warn!("cannot reach worker {}: {e}", worker.pid);
        }
    }

    pub(super) fn on_control(&mut self, token: Token) {
        let mut messages = Vec::new();
        let mut closed = false;
        if let Some(w) = self.workers.get_mut(&token) {
            let mut buf = [0u8; 256 * FRAME];
            loop {
                let mut fds = Vec::new();
                match control::receive(w.control.as_fd(), &mut buf, &mut fds) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => w.reader.push_with_fds(&buf[..n], fds, &mut messages),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                let _ = self.poll.registry().deregister(&mut w.control);
                w.leaving = true;
            }
        }
        if closed {
            // Its process has ended (or is ending): the seat is free again, and it
            // tells what the worker held when it went, which its frames do not.
            self.free_seat(token);
        }
        for m in messages {
            match m {
                Incoming::Frame(m) => self.on_message(token, m),
                Incoming::Handoff { listener, seat, fd } => {
                    self.hand_over(token, listener, seat, fd.map(|f| f.0));
                }
                Incoming::Payload { id, bytes } => self.on_sessions(token, id, &bytes),
                Incoming::Oversized { id, len } => {
                    warn!("worker: skipped an answer of {len} bytes to query {id}: too long");
                }
                Incoming::Unknown(kind) => {
                    warn!("worker: ignoring an unknown control frame (kind {kind})");
                }
            }
        }
        if closed {
            // No answer will come from it.
            self.sessions_gone(token);
        }
    }

    fn on_message(&mut self, token: Token, message: ToMaster) {
        let Some(w) = self.workers.get_mut(&token) else {
            return;
        };
        match message {
            ToMaster::Load { sessions, full } => {
                w.sessions = sessions;
                w.full = full;
                if full {
                    self.scale_up();
                }
            }
            ToMaster::Retiring { served } => {
                info!("worker {} retires after {served} sessions", w.pid);
                let replace = !w.leaving;
                w.leaving = true;
                if replace && !self.stopping {
                    self.spawn();
                }
            }
            ToMaster::Idle { served } => {
                let active = self.active().count();
                let min = self.servers_min() as usize;
                // Workers started above `servers min` when every one was full go
                // again once the load has gone (no other worker is full): any idle
                // one, as they are alike.
                let others_full = self
                    .workers
                    .iter()
                    .any(|(t, w)| *t != token && !w.leaving && w.full);
                let Some(w) = self.workers.get_mut(&token) else {
                    return;
                };
                if !self.stopping && !w.leaving && active > min && !others_full {
                    info!(
                        "worker {} idle after {served} sessions: releasing it ({active} workers, servers min {min})",
                        w.pid
                    );
                    w.leaving = true;
                    Self::send(w, ToWorker::Drain);
                }
            }
            // Read as `Incoming::Handoff`, with its descriptor.
            ToMaster::Handoff { .. } => {}
            ToMaster::Draining { sessions, stopping } => {
                w.sessions = sessions;
                w.leaving = true;
                w.stopped = stopping;
                // A worker drained by a SIGHUP of its own needs a successor now, not
                // when it has finished its last session. One told to stop (a SIGTERM
                // to the whole process group, as Ctrl-C sends) gets none: the master
                // is stopping too, or replaces it when it has exited.
                if !stopping {
                    self.ensure_minimum();
                }
            }
        }
    }
}
