//! The `sessions` query: the master asks every worker with an open control socket
//! for its sessions (`ToWorker::Sessions`), gathers the answers (payloads of JSON
//! lines, see `crate::control`) for at most [`WAIT`], then answers with the oldest
//! `limit` of them all, as docs/control.md describes. A worker that does not answer
//! in time is left out, and the answer says how many answered.

use super::Master;
use crate::control::ToWorker;
use mio::Token;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long the master waits for the workers' answers.
pub const WAIT: Duration = Duration::from_secs(1);
/// The sessions listed without a limit.
pub const DEFAULT_LIMIT: u32 = 100;

type Reply = Box<dyn FnOnce(&mut Master, Value)>;

/// One query under way; `R` is what answers it (the master's callback).
pub(super) struct Gathering<R = Reply> {
    id: u64,
    limit: u32,
    deadline: Instant,
    /// The workers asked that have not answered yet.
    waiting: Vec<Token>,
    asked: usize,
    merged: Merged,
    reply: R,
}

/// The queries under way.
pub(super) struct Gatherings<R = Reply> {
    list: Vec<Gathering<R>>,
    next_id: u64,
}

impl<R> Default for Gatherings<R> {
    fn default() -> Self {
        Gatherings {
            list: Vec::new(),
            next_id: 1,
        }
    }
}

impl<R> Gatherings<R> {
    /// A new query's id.
    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Waits for `asked` (the workers the query went to) until `deadline`.
    fn start(&mut self, id: u64, limit: u32, asked: Vec<Token>, deadline: Instant, reply: R) {
        self.list.push(Gathering {
            id,
            limit,
            deadline,
            asked: asked.len(),
            waiting: asked,
            merged: Merged::default(),
            reply,
        });
    }

    /// Worker `token`'s answer to query `id` (ignored unless awaited).
    fn answer(&mut self, token: Token, id: u64, bytes: &[u8]) {
        if let Some(g) = self.list.iter_mut().find(|g| g.id == id) {
            if let Some(at) = g.waiting.iter().position(|t| *t == token) {
                g.waiting.swap_remove(at);
                g.merged.add(bytes);
            }
        }
    }

    /// Worker `token` has ended: no answer will come from it.
    fn gone(&mut self, token: Token) {
        for g in &mut self.list {
            g.waiting.retain(|t| *t != token);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.list.iter().map(|g| g.deadline).min()
    }

    /// The queries every worker asked has answered, or whose time is up at
    /// `now`, with their answers; taken out.
    fn due(&mut self, now: Instant) -> Vec<(R, Value)> {
        let (done, left): (Vec<_>, Vec<_>) = std::mem::take(&mut self.list)
            .into_iter()
            .partition(|g| g.waiting.is_empty() || g.deadline <= now);
        self.list = left;
        done.into_iter()
            .map(|g| (g.reply, g.merged.answer(g.asked, g.limit)))
            .collect()
    }
}

/// The answers so far.
#[derive(Debug, Default)]
struct Merged {
    answered: usize,
    total: u64,
    /// (age in ms, the session as the answer shows it).
    sessions: Vec<(u64, Value)>,
}

impl Merged {
    /// Adds one worker's answer: `{"total":N}`, then a session per line. Lines
    /// that are not what a worker writes are skipped.
    fn add(&mut self, bytes: &[u8]) {
        self.answered += 1;
        let mut lines = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        if let Some(total) = lines
            .next()
            .and_then(|l| serde_json::from_slice::<Value>(l).ok())
            .and_then(|v| v.get("total").and_then(Value::as_u64))
        {
            self.total = self.total.saturating_add(total);
        }
        for line in lines {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let ms = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
            let text = |key: &str| v.get(key).cloned().filter(Value::is_string);
            let (age, idle) = (ms("age_ms"), ms("idle_ms"));
            let mut session = json!({
                "id": text("id").unwrap_or(Value::Null),
                "client": text("client").unwrap_or(Value::Null),
                "listener": text("listener").unwrap_or(Value::Null),
                "remote": text("remote").unwrap_or(Value::Null),
                "age_s": age / 1000,
                "idle_s": idle / 1000,
                "bytes_in": ms("bytes_in"),
                "bytes_out": ms("bytes_out"),
            });
            if let Some(peer) = text("peer") {
                // A client named by a PROXY header: the proxy that sent it.
                session["peer"] = peer;
            }
            self.sessions.push((age, session));
        }
    }

    /// The answer: the oldest `limit` sessions first.
    fn answer(mut self, asked: usize, limit: u32) -> Value {
        self.sessions.sort_by_key(|s| std::cmp::Reverse(s.0));
        self.sessions.truncate(limit as usize);
        json!({
            "ok": true,
            "total": self.total,
            "sessions": self.sessions.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
            "workers": asked,
            "workers_answered": self.answered,
        })
    }
}

impl Master {
    /// Asks every worker for its sessions; `reply` gets the answer (the `sessions`
    /// JSON document) once every worker asked has answered or after [`WAIT`],
    /// at once when there is no worker to ask. `limit`: at most that many sessions
    /// (default [`DEFAULT_LIMIT`]).
    pub fn request_sessions(
        &mut self,
        limit: Option<u32>,
        reply: impl FnOnce(&mut Master, Value) + 'static,
    ) {
        let id = self.gatherings.next_id();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let mut asked = Vec::new();
        for (token, w) in &mut self.workers {
            // A worker whose control socket closed (it has ended) refuses the write.
            if w.control
                .write_all_nonblocking(&ToWorker::Sessions { id, limit }.encode())
            {
                asked.push(*token);
            }
        }
        self.gatherings
            .start(id, limit, asked, Instant::now() + WAIT, Box::new(reply));
        self.sessions_due();
    }

    /// A worker's answer to query `id`.
    pub(super) fn on_sessions(&mut self, token: Token, id: u64, bytes: &[u8]) {
        self.gatherings.answer(token, id, bytes);
        self.sessions_due();
    }

    /// A worker's control socket closed: no answer will come from it.
    pub(super) fn sessions_gone(&mut self, token: Token) {
        self.gatherings.gone(token);
        self.sessions_due();
    }

    /// When the master must wake for a query's time limit.
    pub(super) fn sessions_deadline(&self) -> Option<Instant> {
        self.gatherings.deadline()
    }

    /// Answers the queries every worker asked answered, or whose time is up.
    pub(super) fn sessions_due(&mut self) {
        for (reply, answer) in self.gatherings.due(Instant::now()) {
            reply(self, answer);
        }
    }
}

/// Writing a whole frame to a worker's control socket without blocking.
trait WriteFrame {
    /// Whether the whole frame went out now.
    fn write_all_nonblocking(&mut self, frame: &[u8]) -> bool;
}

impl WriteFrame for mio::net::UnixStream {
    fn write_all_nonblocking(&mut self, frame: &[u8]) -> bool {
        use std::io::Write;
        matches!(self.write(frame), Ok(n) if n == frame.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(sessions: &[(&str, u64)], total: u64) -> Vec<u8> {
        let mut out = format!("{{\"total\":{total}}}\n");
        for (id, age_ms) in sessions {
            out.push_str(
                &json!({
                    "id": id, "client": "127.0.0.1:5", "listener": "127.0.0.1:80",
                    "remote": null, "age_ms": age_ms, "idle_ms": 2500,
                    "bytes_in": 3, "bytes_out": 4,
                })
                .to_string(),
            );
            out.push('\n');
        }
        out.into_bytes()
    }

    #[test]
    fn answers_are_merged_oldest_first_up_to_the_limit() {
        let mut merged = Merged::default();
        merged.add(&answer(&[("1.1", 9000), ("1.2", 10)], 2));
        merged.add(&answer(&[("2.7", 5000)], 40));
        // Garbage from a worker: skipped, never a panic.
        merged.add(b"not json\n{\"total\":\"x\"}\n\xff\xfe\n{}\n");
        let v = merged.answer(3, 2);
        assert_eq!(v["ok"], true);
        assert_eq!(v["total"], 42);
        assert_eq!(v["workers"], 3);
        assert_eq!(v["workers_answered"], 3);
        let sessions = v["sessions"].as_array().unwrap();
        let ids: Vec<_> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["1.1", "2.7"]);
        assert_eq!(sessions[0]["age_s"], 9);
        assert_eq!(sessions[0]["idle_s"], 2);
        assert_eq!(sessions[0]["bytes_in"], 3);
        assert_eq!(sessions[0]["bytes_out"], 4);
        assert_eq!(sessions[0]["remote"], Value::Null);
        assert_eq!(sessions[0]["listener"], "127.0.0.1:80");
    }

    #[test]
    fn a_query_is_answered_when_every_worker_has_or_after_its_time_limit() {
        let mut g = Gatherings::<&str>::default();
        let now = Instant::now();
        let (w1, w2) = (Token(1), Token(2));
        let a = g.next_id();
        g.start(a, 10, vec![w1, w2], now + WAIT, "a");
        let b = g.next_id();
        assert_ne!(a, b);
        g.start(b, 10, vec![w1, w2], now + WAIT, "b");
        assert_eq!(g.deadline(), Some(now + WAIT));
        g.answer(w1, a, &answer(&[("1.1", 10)], 1));
        // An answer to another query, or from a worker not asked, counts for nothing.
        g.answer(w1, 99, &answer(&[], 5));
        g.answer(Token(7), a, &answer(&[], 5));
        assert!(g.due(now).is_empty(), "w2 has not answered");
        g.answer(w2, a, &answer(&[("2.1", 20)], 1));
        let done = g.due(now);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "a");
        assert_eq!(done[0].1["total"], 2);
        assert_eq!(done[0].1["workers_answered"], 2);
        assert_eq!(done[0].1["sessions"][0]["id"], "2.1", "oldest first");

        // b: w1 answers, w2 never does: answered at the time limit, without it.
        g.answer(w1, b, &answer(&[("1.1", 10)], 1));
        assert!(g.due(now + WAIT - Duration::from_millis(1)).is_empty());
        let done = g.due(now + WAIT);
        assert_eq!(done[0].0, "b");
        assert_eq!(done[0].1["workers"], 2);
        assert_eq!(done[0].1["workers_answered"], 1);
        assert_eq!(done[0].1["total"], 1);
        assert_eq!(g.deadline(), None);

        // A worker that ends is not waited for.
        let c = g.next_id();
        g.start(c, 10, vec![w1, w2], now + WAIT, "c");
        g.answer(w2, c, &answer(&[], 0));
        g.gone(w1);
        let done = g.due(now);
        assert_eq!(done[0].1["workers_answered"], 1);
        // No worker to ask: answered at once.
        let d = g.next_id();
        g.start(d, 10, Vec::new(), now + WAIT, "d");
        let done = g.due(now);
        assert_eq!(done[0].0, "d");
        assert_eq!(done[0].1["workers"], 0);
        assert_eq!(done[0].1["sessions"], json!([]));
    }
}
