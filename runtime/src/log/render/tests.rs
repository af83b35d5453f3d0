use super::*;
use std::time::UNIX_EPOCH;

const MASTER: Origin = Origin {
    pid: 100,
    generation: None,
    helper: None,
};
const WORKER: Origin = Origin {
    pid: 812,
    generation: Some(1),
    helper: None,
};
const CHECKER: Origin = Origin {
    pid: 813,
    generation: None,
    helper: Some("checker"),
};

#[test]
fn the_health_checker_names_itself_in_every_format() {
    let message = || Body::Message("health check: 127.0.0.1:6379 is down");
    let text = line(Format::Text, now(), CHECKER, Severity::Warning, message());
    assert_eq!(
        text,
        "2026-12-01T22:15:21.123Z checker 813 warning: health check: 127.0.0.1:6379 is down"
    );
    let logfmt = line(Format::Logfmt, now(), CHECKER, Severity::Warning, message());
    assert!(logfmt.contains(" proc=checker pid=813 "), "{logfmt}");
    let json = line(Format::Json, now(), CHECKER, Severity::Warning, message());
    assert!(json.contains(r#""proc":"checker","pid":813,"#), "{json}");
}

/// 2026-12-01T22:15:21.123Z
fn now() -> Dest {
    Dest::Stderr(UNIX_EPOCH + Duration::from_millis(1_796_163_321_123))
}

/// A value from the network at its worst: a newline (with a forged line after
/// it), a carriage return, a quote, `=`, a backslash, a tab, an escape sequence, NUL,
/// DEL, a C1 control and a line separator.
const HOSTILE: &str =
    "a b\n2026-12-01T00:00:00.000Z master err: forged\r\"q\"=\\\tx\u{1b}[31m\0\u{7f}\u{85}\u{2028}é";

fn record(format: Format, dest: Dest, origin: Origin, fields: &[(&str, Value<'_>)]) -> String {
    line(
        format,
        dest,
        origin,
        Severity::Info,
        Body::Record {
            event: "session_end",
            fields,
        },
    )
}

/// No character of the line is one that could end it or be taken for a control
/// by a terminal or a reader of lines.
fn assert_one_clean_line(l: &str) {
    assert!(
        !l.chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
        "{l:?}"
    );
}

#[test]
fn text_lines_name_the_process_and_start_with_the_time() {
    let msg = |origin, dest| {
        line(
            Format::Text,
            dest,
            origin,
            Severity::Warning,
            Body::Message("hello"),
        )
    };
    assert_eq!(
        msg(MASTER, now()),
        "2026-12-01T22:15:21.123Z master warning: hello"
    );
    assert_eq!(
        msg(WORKER, now()),
        "2026-12-01T22:15:21.123Z worker 812 gen 1 warning: hello"
    );
    // The journal stamps its own time and reads the severity (4) from the prefix.
    assert_eq!(
        msg(WORKER, Dest::Journal),
        "<4>worker 812 gen 1 warning: hello"
    );
    assert_eq!(msg(MASTER, Dest::Syslog), "master warning: hello");
}

#[test]
fn text_records_quote_and_escape_their_values() {
    let client: std::net::SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let l = record(
        Format::Text,
        now(),
        WORKER,
        &[
            ("client", Value::display(&client)),
            ("sni", Value::Str(HOSTILE)),
            ("empty", "".into()),
            ("none", None::<&str>.into()),
            ("bytes", 1234u64.into()),
            ("delta", (-5i32).into()),
            ("tls", true.into()),
            ("duration", Duration::from_micros(1_500_250).into()),
        ],
    );
    assert_eq!(
        l,
        "2026-12-01T22:15:21.123Z worker 812 gen 1 info: session_end client=192.0.2.1:40000 \
         sni=\"a b\\n2026-12-01T00:00:00.000Z master err: forged\\r\\\"q\\\"=\\\\\\tx\\u001b[31m\\u0000\\u007f\\u0085\\u2028é\" \
         empty=\"\" none= bytes=1234 delta=-5 tls=true duration=1.500250s"
    );
    assert_one_clean_line(&l);
}

#[test]
fn text_messages_escape_control_characters() {
    let l = line(
        Format::Text,
        now(),
        MASTER,
        Severity::Info,
        Body::Message(HOSTILE),
    );
    // Free text: control characters escaped; quotes, `=` and backslashes as they are.
    assert_eq!(
        l,
        "2026-12-01T22:15:21.123Z master info: a b\\n2026-12-01T00:00:00.000Z master err: forged\\r\"q\"=\\\\tx\\u001b[31m\\u0000\\u007f\\u0085\\u2028é"
    );
    assert_one_clean_line(&l);
}

#[test]
fn logfmt_lines_quote_and_escape_what_would_break_a_pair() {
    let l = line(
        Format::Logfmt,
        now(),
        MASTER,
        Severity::Notice,
        Body::Message("started: listening on 127.0.0.1:80"),
    );
    assert_eq!(
        l,
        "ts=2026-12-01T22:15:21.123Z level=notice proc=master pid=100 msg=\"started: listening on 127.0.0.1:80\""
    );
    let l = record(
        Format::Logfmt,
        Dest::Journal,
        WORKER,
        &[
            ("sni", Value::Str(HOSTILE)),
            ("eq", "a=b".into()),
            ("quote", "say \"hi\"".into()),
            ("backslash", "a\\b".into()),
            ("plain", "example.com".into()),
            ("empty", "".into()),
            ("none", Value::Absent),
            ("bad key=\"x\"", 1u8.into()),
            ("duration", Duration::from_millis(20).into()),
        ],
    );
    assert_eq!(
        l,
        "<6>level=info proc=worker pid=812 gen=1 event=session_end \
         sni=\"a b\\n2026-12-01T00:00:00.000Z master err: forged\\r\\\"q\\\"=\\\\\\tx\\u001b[31m\\u0000\\u007f\\u0085\\u2028é\" \
         eq=\"a=b\" quote=\"say \\\"hi\\\"\" backslash=\"a\\\\b\" plain=example.com empty=\"\" none= \
         bad_key__x_=1 duration=0.020000s"
    );
    assert_one_clean_line(&l);
}

#[test]
fn json_lines_are_one_object_with_escaped_strings() {
    let l = line(
        Format::Json,
        now(),
        WORKER,
        Severity::Err,
        Body::Message("cannot connect"),
    );
    assert_eq!(
        l,
        r#"{"ts":"2026-12-01T22:15:21.123Z","level":"err","proc":"worker","pid":812,"gen":1,"msg":"cannot connect"}"#
    );
    let l = record(
        Format::Json,
        Dest::Syslog,
        MASTER,
        &[
            ("sni", Value::Str(HOSTILE)),
            ("k\"ey\n", 7i64.into()),
            ("none", None::<u64>.into()),
            ("some", Some(3u64).into()),
            ("duration", Duration::from_micros(2_000_001).into()),
        ],
    );
    assert_eq!(
        l,
        r#"{"level":"info","proc":"master","pid":100,"event":"session_end","sni":"a b\n2026-12-01T00:00:00.000Z master err: forged\r\"q\"=\\\tx\u001b[31m\u0000\u007f\u0085\u2028é","k\"ey\n":7,"none":null,"some":3,"duration":2.000001}"#
    );
    assert_one_clean_line(&l);
}

/// Bytes that are not UTF-8 (what a client sent) come out as U+FFFD, quoted and
/// escaped like any text, in every format.
#[test]
fn bytes_that_are_not_utf8_are_replaced_not_copied() {
    let sent: &[u8] = b"ex\xffam\xc3\n\"ple";
    let fields = [("sni", Value::from(sent))];
    let text = record(Format::Text, Dest::Syslog, MASTER, &fields);
    assert_eq!(
        text,
        "master info: session_end sni=\"ex\u{fffd}am\u{fffd}\\n\\\"ple\""
    );
    let logfmt = record(Format::Logfmt, Dest::Syslog, MASTER, &fields);
    assert!(
        logfmt.ends_with(" sni=\"ex\u{fffd}am\u{fffd}\\n\\\"ple\""),
        "{logfmt}"
    );
    let json = record(Format::Json, Dest::Syslog, MASTER, &fields);
    assert!(json.ends_with(r#","sni":"ex�am�\n\"ple"}"#), "{json}");
}
