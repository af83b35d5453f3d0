//! The resolver's reports to the master, one frame per resolution of a name:
//!
//! ```text
//! u32  length of what follows (at most MAX_FRAME), big-endian
//! u16  the name's index in `Relay::discovered`
//! u8   0: resolved, 1: failed
//! resolved: u32 the seconds until the next resolution, u16 count, then per
//!           address: u8 family (4 or 6), 4 or 16 bytes, u16 port, u32 weight
//! failed:   the reason, UTF-8
//! ```
//!
//! The master reads them with [`Reader`], which refuses (and never panics on) a
//! frame that is too long or malformed: the resolver is then stopped and another
//! started.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest frame (after its length).
pub const MAX_FRAME: usize = 64 * 1024;
/// The most addresses one name reports (the rest are left out, and the resolver
/// logs it).
pub const MAX_ADDRESSES: usize = 2048;

/// What one resolution of a name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub name: usize,
    pub result: Result<Resolved, String>,
}

/// A name's addresses (with ports and weights) and when it is resolved again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub next_s: u32,
    pub addresses: Vec<(SocketAddr, u32)>,
}

/// The frame of `answer`.
pub fn encode(answer: &Answer) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(answer.name.min(0xffff) as u16).to_be_bytes());
    match &answer.result {
        Ok(resolved) => {
            body.push(0);
            body.extend_from_slice(&resolved.next_s.to_be_bytes());
            let addresses = &resolved.addresses[..resolved.addresses.len().min(MAX_ADDRESSES)];
            body.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
            for (address, weight) in addresses {
                match address.ip() {
                    IpAddr::V4(ip) => {
                        body.push(4);
                        body.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        body.push(6);
                        body.extend_from_slice(&ip.octets());
                    }
                }
                body.extend_from_slice(&address.port().to_be_bytes());
                body.extend_from_slice(&weight.to_be_bytes());
            }
        }
        Err(reason) => {
            body.push(1);
            let mut end = reason.len().min(1024);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            body.extend_from_slice(&reason.as_bytes()[..end]);
        }
    }
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Reassembles frames from what the socket gives.
#[derive(Debug, Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is there; Err for a frame too long or
    /// malformed (the stream cannot be trusted after it).
    pub fn next_answer(&mut self) -> Option<Result<Answer, String>> {
        let head: [u8; 4] = self.buffer.get(..4)?.try_into().ok()?;
        let length = u32::from_be_bytes(head) as usize;
        if length > MAX_FRAME {
            return Some(Err(format!(
                "a frame of {length} bytes (at most {MAX_FRAME})"
            )));
        }
        let body = self.buffer.get(4..4 + length)?.to_vec();
        self.buffer.drain(..4 + length);
        Some(decode(&body).ok_or_else(|| "a malformed frame".to_string()))
    }
}

fn decode(body: &[u8]) -> Option<Answer> {
    let mut at = Cursor(body);
    let name = usize::from(u16::from_be_bytes(at.take()?));
    let [kind] = at.take()?;
    let result = match kind {
        0 => {
            let next_s = u32::from_be_bytes(at.take()?);
            let count = u16::from_be_bytes(at.take()?);
            let mut addresses = Vec::with_capacity(usize::from(count).min(MAX_ADDRESSES));
            for _ in 0..count {
                let ip = match at.take::<1>()? {
                    [4] => IpAddr::V4(Ipv4Addr::from(at.take::<4>()?)),
                    [6] => IpAddr::V6(Ipv6Addr::from(at.take::<16>()?)),
                    _ => return None,
                };
                let port = u16::from_be_bytes(at.take()?);
                let weight = u32::from_be_bytes(at.take()?);
                addresses.push((SocketAddr::new(ip, port), weight));
            }
            if !at.0.is_empty() {
                return None;
            }
            Ok(Resolved { next_s, addresses })
        }
        1 => Err(String::from_utf8_lossy(at.0).into_owned()),
        _ => return None,
    };
    Some(Answer { name, result })
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_whole_and_byte_by_byte() {
        let answers = [
            Answer {
                name: 2,
                result: Ok(Resolved {
                    next_s: 30,
                    addresses: vec![
                        ("10.0.0.1:80".parse().unwrap(), 1),
                        ("[2001:db8::7]:6379".parse().unwrap(), 65535),
                    ],
                }),
            },
            Answer {
                name: 0,
                result: Err("no such name (NXDOMAIN) — é".into()),
            },
            Answer {
                name: 1,
                result: Ok(Resolved {
                    next_s: 1,
                    addresses: vec![],
                }),
            },
        ];
        let bytes: Vec<u8> = answers.iter().flat_map(encode).collect();
        let mut reader = Reader::default();
        reader.push(&bytes);
        for answer in &answers {
            assert_eq!(reader.next_answer(), Some(Ok(answer.clone())));
        }
        assert_eq!(reader.next_answer(), None);
        let mut reader = Reader::default();
        let mut got = Vec::new();
        for byte in &bytes {
            reader.push(std::slice::from_ref(byte));
            while let Some(answer) = reader.next_answer() {
                got.push(answer.unwrap());
            }
        }
        assert_eq!(got, answers);
    }

    #[test]
    fn bad_frames_are_refused_without_panicking() {
        let mut reader = Reader::default();
        reader.push(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(matches!(reader.next_answer(), Some(Err(e)) if e.contains("bytes")));
        // Every truncation and a wrong family or kind: malformed, never a panic.
        let good = encode(&Answer {
            name: 0,
            result: Ok(Resolved {
                next_s: 5,
                addresses: vec![("10.0.0.1:80".parse().unwrap(), 1)],
            }),
        });
        for cut in 0..good.len() - 4 {
            let mut frame = ((cut) as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&good[4..4 + cut]);
            let mut reader = Reader::default();
            reader.push(&frame);
            assert!(matches!(reader.next_answer(), Some(Err(_))), "cut at {cut}");
        }
        for (at, value) in [(6, 7u8), (13, 5)] {
            let mut bad = good.clone();
            bad[at] = value;
            let mut reader = Reader::default();
            reader.push(&bad);
            assert!(
                matches!(reader.next_answer(), Some(Err(_))),
                "byte {at} = {value}"
            );
        }
    }

    #[test]
    fn a_long_reason_and_many_addresses_are_bounded() {
        let frame = encode(&Answer {
            name: 0,
            result: Err("é".repeat(2000)),
        });
        assert!(frame.len() <= 4 + 3 + 1024);
        let frame = encode(&Answer {
            name: 0,
            result: Ok(Resolved {
                next_s: 1,
                addresses: vec![("[::1]:1".parse().unwrap(), 1); MAX_ADDRESSES + 10],
            }),
        });
        assert!(frame.len() - 4 <= MAX_FRAME);
        let mut reader = Reader::default();
        reader.push(&frame);
        let answer = reader.next_answer().unwrap().unwrap();
        assert_eq!(answer.result.unwrap().addresses.len(), MAX_ADDRESSES);
    }
}
