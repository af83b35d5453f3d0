//! Service names for ports (`port = ssh`), read from `/etc/services` of the compiling
//! machine, as `getservbyname(3)` would, but parsed here: the compiler links no libc
//! name service, and the table is read once per process.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Where the service names come from.
pub const PATH: &str = "/etc/services";

/// The TCP port of the service `name` (or of one of its aliases).
pub fn lookup(name: &str) -> Option<u16> {
    static TABLE: OnceLock<HashMap<String, u16>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            std::fs::read_to_string(PATH)
                .map(|t| parse(&t))
                .unwrap_or_default()
        })
        .get(name)
        .copied()
}

/// Parses the `name port/protocol aliases... # comment` lines of a services file,
/// keeping the TCP entries. The first entry of a name wins, as with the C library.
pub fn parse(text: &str) -> HashMap<String, u16> {
    let mut table = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, "tcp")) = port_proto.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if port == 0 {
            continue;
        }
        for n in std::iter::once(name).chain(words) {
            table.entry(n.to_string()).or_insert(port);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_entries_and_aliases() {
        let t = parse(
            "# comment\n\
             ssh\t\t22/tcp\t\t\t# SSH Remote Login Protocol\n\
             domain\t53/udp\n\
             http 80/tcp www  # WorldWideWeb HTTP\n\
             http 8080/tcp\n\
             broken x/tcp\n\
             \n",
        );
        assert_eq!(t.get("ssh"), Some(&22));
        assert_eq!(t.get("www"), Some(&80));
        assert_eq!(t.get("http"), Some(&80));
        assert_eq!(t.get("domain"), None);
        assert_eq!(t.get("broken"), None);
    }
}
