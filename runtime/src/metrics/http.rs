//! The little HTTP the metrics endpoint speaks: one request per connection (parsed
//! with `httparse`), one answer, then close. `GET /metrics` (and `HEAD`) answer the
//! exposition; `/` a short page naming it; every other path 404, every other method
//! 405, a malformed or oversized request 400.

/// The longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request asks for, once its head is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`; `head` for `HEAD` (the same headers, no body).
    Metrics {
        head: bool,
    },
    /// `GET /`.
    Index {
        head: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest(&'static str),
}

/// Reads a request head: `None` while it is incomplete (more bytes may come), the
/// route once it is complete or cannot become valid.
pub fn route(buffer: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buffer) {
        Ok(httparse::Status::Partial) if buffer.len() >= MAX_HEAD => {
            Some(Route::BadRequest("request head too long"))
        }
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Route::BadRequest("too many headers")),
        Err(_) => Some(Route::BadRequest("malformed request")),
        Ok(httparse::Status::Complete(_)) => {
            let head = match request.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Some(Route::MethodNotAllowed),
            };
            // The query string does not matter (Prometheus adds none, people may).
            let path = request.path.unwrap_or("");
            let path = path.split('?').next().unwrap_or("");
            Some(match path {
                "/metrics" => Route::Metrics { head },
                "/" => Route::Index { head },
                _ => Route::NotFound,
            })
        }
    }
}

/// The bytes of an answer: status line, headers (`Connection: close`, the length)
/// and, unless `head_only`, the body.
pub fn answer(status: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The answer to a route; `exposition` is called only for `/metrics`.
pub fn respond(route: &Route, exposition: impl FnOnce() -> String) -> Vec<u8> {
    match route {
        Route::Metrics { head } => answer(200, CONTENT_TYPE, &exposition(), *head),
        Route::Index { head } => answer(
            200,
            "text/plain; charset=utf-8",
            "tcprelay: metrics are at /metrics\n",
            *head,
        ),
        Route::NotFound => answer(404, "text/plain; charset=utf-8", "not found\n", false),
        Route::MethodNotAllowed => answer(
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n",
            false,
        ),
        Route::BadRequest(why) => {
            answer(400, "text/plain; charset=utf-8", &format!("{why}\n"), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Route::Metrics { head: false })
        );
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Route::Metrics { head: true })
        );
        assert_eq!(
            route(b"GET / HTTP/1.1\r\n\r\n"),
            Some(Route::Index { head: false })
        );
        assert_eq!(route(b"GET /x HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Route::MethodNotAllowed)
        );
        assert!(matches!(
            route(b"\x00\x01garbage\r\n\r\n"),
            Some(Route::BadRequest(_))
        ));
    }

    #[test]
    fn an_endless_head_is_refused_at_the_cap() {
        // One header that never ends: incomplete under the cap, refused at it.
        let mut head = b"GET /metrics HTTP/1.1\r\nX-A: ".to_vec();
        head.resize(MAX_HEAD - 1, b'b');
        assert_eq!(route(&head), None);
        head.push(b'b');
        assert_eq!(
            route(&head),
            Some(Route::BadRequest("request head too long"))
        );
        // Many short headers are refused too.
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for _ in 0..40 {
            many.extend_from_slice(b"X-A: b\r\n");
        }
        assert_eq!(route(&many), Some(Route::BadRequest("too many headers")));
    }

    #[test]
    fn answers_have_length_and_close() {
        let a =
            String::from_utf8(respond(&Route::Metrics { head: false }, || "x 1\n".into())).unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(a.contains("Content-Length: 4\r\n"), "{a}");
        assert!(a.contains("Connection: close\r\n"), "{a}");
        assert!(a.ends_with("\r\n\r\nx 1\n"), "{a}");
        let h =
            String::from_utf8(respond(&Route::Metrics { head: true }, || "x 1\n".into())).unwrap();
        assert!(
            h.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{h}"
        );
        let m = String::from_utf8(respond(&Route::MethodNotAllowed, String::new)).unwrap();
        assert!(
            m.starts_with("HTTP/1.1 405 ") && m.contains("Allow: GET, HEAD\r\n"),
            "{m}"
        );
    }
}
