//! Routing by the server name (SNI) of a TLS client's ClientHello
//! ([docs/sni.md](../../../docs/sni.md)): [`parse`] reads the name from the bytes a
//! client has sent so far, pure and without I/O; the worker peeks at those bytes
//! (`MSG_PEEK`, they stay in the socket for OpenSSL or for the remote) and chooses
//! the route with `tcprelay_plan::sni`.

mod parse;
#[cfg(test)]
mod tests;

pub use parse::{parse, ClientHello, Error, Failure, MAX_HELLO};

/// ClientHellos made by hand, for tests (the unit tests, the process tests' raw
/// clients) and the fuzz target's seeds.
pub mod example {
    /// A ClientHello handshake message (type, length, body) naming `name` (or
    /// none), with an extension of `padding` bytes (RFC 7685) to make it large.
    pub fn message(name: Option<&str>, padding: usize) -> Vec<u8> {
        let mut extensions = Vec::new();
        if let Some(name) = name {
            let mut entry = vec![0u8];
            entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
            entry.extend_from_slice(name.as_bytes());
            let mut data = (entry.len() as u16).to_be_bytes().to_vec();
            data.extend_from_slice(&entry);
            extension(&mut extensions, 0, &data);
        }
        // supported_versions: TLS 1.3, 1.2.
        extension(&mut extensions, 43, &[4, 3, 4, 3, 3]);
        if padding > 0 {
            extension(&mut extensions, 21, &vec![0u8; padding]);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(&extensions);
        let mut message = vec![1];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }

    /// `message` in handshake records of at most `record` bytes each.
    pub fn records(message: &[u8], record: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(record.max(1)) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A whole ClientHello in records of at most 16 KiB.
    pub fn client_hello(name: Option<&str>, padding: usize) -> Vec<u8> {
        records(&message(name, padding), 1 << 14)
    }
}
