//! The answers of the control socket for people: aligned tables and `key: value`
//! lines, from the JSON documents whose schema `docs/control.md` gives. A field that
//! is missing or of another type shows as `-`: a newer or older relay's answer is
//! still shown, never a panic.

use serde_json::Value;

/// The text `tcprelay ctl` prints for a successful answer to `command` (`status`,
/// `remotes`, `sessions`, `plan`; any other prints the answer's `message`).
pub fn render(command: &str, answer: &Value) -> String {
    match command {
        "status" => status(answer),
        "remotes" => remotes(answer),
        "sessions" => sessions(answer),
        "plan" => plan(answer),
        _ => match answer.get("message").and_then(Value::as_str) {
            Some(message) => format!("{message}\n"),
            None => "done\n".to_string(),
        },
    }
}

fn status(a: &Value) -> String {
    let totals = &a["totals"];
    let plan = &a["plan"];
    let draining = match a.get("draining").and_then(Value::as_bool) {
        Some(true) => match a["drain_deadline_s"].as_u64() {
            Some(s) => format!("yes, sessions closed in {}", duration(s)),
            None => "yes, until the sessions end".to_string(),
        },
        Some(false) => "no".to_string(),
        None => "-".to_string(),
    };
    let tls = format!(
        "{} ({} failed)",
        count(&totals["tls_handshakes"]),
        count(&totals["tls_failures"])
    );
    let lines = [
        ("pid", count(&a["pid"])),
        ("uptime", seconds(&a["uptime_s"])),
        ("plan", text(&plan["source"])),
        ("plan hash", text(&plan["hash"])),
        ("generation", count(&a["generation"])),
        ("sessions", count(&a["sessions"])),
        ("draining", draining),
        ("accepted", count(&totals["accepted"])),
        ("refused by ACL", count(&totals["refused_acl"])),
        ("refused (PROXY)", count(&totals["refused_proxy"])),
        ("refused (SNI)", count(&totals["refused_sni"])),
        ("shed by overload", count(&totals["shed_overload"])),
        ("TLS handshakes", tls),
        ("bytes in", bytes(&totals["bytes_in"])),
        ("bytes out", bytes(&totals["bytes_out"])),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in lines {
        out.push_str(&format!("{:width$} {value}\n", format!("{key}:")));
    }
    out.push('\n');
    let rows = list(&a["generations"])
        .map(|g| {
            let workers: Vec<String> = list(&g["workers"])
                .map(|w| match w["state"].as_str() {
                    Some(state) => {
                        format!("{} ({state}, {})", count(&w["pid"]), count(&w["sessions"]))
                    }
                    None => count(&w["pid"]),
                })
                .collect();
            vec![
                count(&g["generation"]),
                text(&g["state"]),
                count(&g["sessions"]),
                seconds(&g["drain_deadline_s"]),
                if workers.is_empty() {
                    "-".to_string()
                } else {
                    workers.join(", ")
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "GENERATION",
            "STATE",
            "SESSIONS",
            "DEADLINE",
            "WORKERS (STATE, SESSIONS)",
        ],
        rows,
    ));
    out
}

fn remotes(a: &Value) -> String {
    let rows = list(&a["remotes"])
        .map(|r| {
            // A remote found by DNS: the name it came from after its address.
            let remote = match &r["discovered"]["name"] {
                Value::Null => text(&r["remote"]),
                name => format!("{} ({})", text(&r["remote"]), text(name)),
            };
            vec![
                remote,
                text(&r["state"]),
                text(&r["why"]),
                count(&r["sessions"]),
                count(&r["connections"]),
                count(&r["failures"]),
                count(&r["tls_failures"]),
                bytes(&r["bytes_in"]),
                bytes(&r["bytes_out"]),
                count(&r["weight"]),
                ago(&r["changed_ago_s"]),
                check(&r["check"]),
            ]
        })
        .collect();
    table(
        &[
            "REMOTE",
            "STATE",
            "WHY",
            "SESSIONS",
            "CONNECTIONS",
            "FAILURES",
            "TLS-FAILURES",
            "BYTES-IN",
            "BYTES-OUT",
            "WEIGHT",
            "CHANGED",
            "CHECK",
        ],
        rows,
    )
}

/// A remote's last health check: `pass 1.2ms 3s ago`; `not yet` before the first,
/// `-` when the remote is not checked.
fn check(c: &Value) -> String {
    if c.is_null() {
        return "-".to_string();
    }
    if c["last"].is_null() {
        return "not yet".to_string();
    }
    let took = c["duration_us"].as_u64().map_or_else(
        || "-".to_string(),
        |us| format!("{:.1}ms", us as f64 / 1000.0),
    );
    format!("{} {took} {}", text(&c["last"]), ago(&c["checked_ago_s"]))
}

fn sessions(a: &Value) -> String {
    let rows: Vec<Vec<String>> = list(&a["sessions"])
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["client"]),
                text(&s["listener"]),
                text(&s["remote"]),
                seconds(&s["age_s"]),
                seconds(&s["idle_s"]),
                bytes(&s["bytes_in"]),
                bytes(&s["bytes_out"]),
            ]
        })
        .collect();
    let shown = rows.len();
    let mut out = table(
        &[
            "ID",
            "CLIENT",
            "LISTENER",
            "REMOTE",
            "AGE",
            "IDLE",
            "BYTES-IN",
            "BYTES-OUT",
        ],
        rows,
    );
    if let Some(total) = a["total"].as_u64() {
        if total > shown as u64 {
            out.push_str(&format!("({shown} of {total} sessions shown)\n"));
        }
    }
    out
}

/// The `plan` answer in short: the plan's source and hash, the sessions by
/// generation, listener and remote, and each certificate file's certificates
/// (subject, end of validity, SHA-256 fingerprint). The plan itself is `--json`'s.
fn plan(a: &Value) -> String {
    let sessions = &a["sessions"];
    let lines = [
        ("generation", count(&a["generation"])),
        ("plan", text(&a["plan"]["source"])),
        ("plan hash", text(&a["plan_hash"])),
        ("sessions", count(&sessions["total"])),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in lines {
        out.push_str(&format!("{:width$} {value}\n", format!("{key}:")));
    }
    let yes_no = |v: &Value| match v.as_bool() {
        Some(true) => "yes".to_string(),
        Some(false) => "no".to_string(),
        None => "-".to_string(),
    };
    let generations = list(&sessions["generations"])
        .map(|g| {
            vec![
                count(&g["generation"]),
                match g["draining"].as_bool() {
                    Some(true) => "draining".to_string(),
                    Some(false) => "active".to_string(),
                    None => "-".to_string(),
                },
                count(&g["sessions"]),
                seconds(&g["drain_deadline_s"]),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &["GENERATION", "STATE", "SESSIONS", "DEADLINE"],
        generations,
    ));
    for (what, field) in [("LISTENER", "listener"), ("REMOTE", "remote")] {
        let rows = list(&sessions[format!("{field}s")])
            .map(|r| vec![text(&r[field]), count(&r["active"]), yes_no(&r["in_plan"])])
            .collect();
        out.push('\n');
        out.push_str(&table(&[what, "SESSIONS", "IN-PLAN"], rows));
    }
    for file in list(&a["certificates"]) {
        let uses: Vec<String> = list(&file["uses"])
            .map(|u| match (u["as"].as_str(), u["remote"].as_str()) {
                (Some(role), Some(remote)) => format!("{role} of {}", text(&Value::from(remote))),
                (Some(role), None) => role.to_string(),
                _ => "-".to_string(),
            })
            .collect();
        let uses = if uses.is_empty() {
            "-".to_string()
        } else {
            uses.join(", ")
        };
        out.push_str(&format!(
            "\ncertificate file {} ({uses}):\n",
            text(&file["file"])
        ));
        out.push_str(&certificates(file["pem"].as_str().unwrap_or_default()));
    }
    out
}

/// The certificates of a PEM text, one block each: subject, end of validity and
/// SHA-256 fingerprint (as `openssl x509 -fingerprint -sha256` prints it).
fn certificates(pem: &str) -> String {
    let certs = openssl::x509::X509::stack_from_pem(pem.as_bytes()).unwrap_or_default();
    if certs.is_empty() {
        return "  (no certificate could be read)\n".to_string();
    }
    let mut out = String::new();
    for (n, cert) in certs.iter().enumerate() {
        let subject: Vec<String> = cert
            .subject_name()
            .entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let value = e.data().to_string().unwrap_or_else(|_| "?".to_string());
                format!("{key}={value}")
            })
            .collect();
        let fingerprint = cert
            .digest(openssl::hash::MessageDigest::sha256())
            .map(|d| {
                d.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_else(|_| "-".to_string());
        out.push_str(&format!(
            "  {}. {}, not after {}\n     SHA-256 {fingerprint}\n",
            n + 1,
            text(&Value::from(subject.join(", "))),
            cert.not_after()
        ));
    }
    out
}

/// The elements of an array; none for anything else.
fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A string field, one line; `-` when missing or null.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".to_string(),
    }
}

fn count(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// Seconds as `42s`, `5m03s`, `2h07m`, `3d04h`.
fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn seconds(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_string(), duration)
}

fn ago(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".to_string(), |s| format!("{} ago", duration(s)))
}

/// Bytes with a binary unit: `512 B`, `1.5 KiB`, `20.0 MiB`.
fn bytes(v: &Value) -> String {
    let Some(n) = v.as_u64() else {
        return "-".to_string();
    };
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Columns aligned on the widest cell, two spaces apart, no trailing spaces.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:w$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
