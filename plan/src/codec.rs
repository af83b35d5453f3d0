//! The plan file format: the only encoder and the only decoder.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "TCPRPLAN"
//! 8       2     format version, little endian
//! 10      2     flags (bit 0: the body holds a secret)
//! 12      4     CRC-32 of the body (ISO-HDLC, as zlib), little endian
//! 16      8     body length, little endian
//! 24      1     length n of the compiler version string
//! 25      n     compiler version (UTF-8)
//! 25+n    ...   body: bincode 2 (standard config) of `Plan`
//! ```
//!
//! Decoding never panics: every failure is one [`DecodeError`] whose `Display` is a
//! single line fit for the user.

use crate::Plan;
use crc32fast::hash as crc32;
use std::fmt;

/// The first eight bytes of every plan file.
pub const MAGIC: [u8; 8] = *b"TCPRPLAN";
/// Bumped whenever the `Plan` types change incompatibly.
pub const FORMAT_VERSION: u16 = 4;
/// Plans larger than this are refused before anything is allocated.
pub const MAX_BODY: u64 = 64 << 20;

const FLAG_SECRET: u16 = 1;
const FIXED_HEADER: usize = 25;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_BODY as usize }>()
}

/// Encodes `plan` with its header. `compiler_version` is recorded for messages.
pub fn encode(plan: &Plan, compiler_version: &str) -> Vec<u8> {
    let body = bincode::serde::encode_to_vec(plan, bincode_config())
        .expect("encoding a plan into memory cannot fail");
    let version = compiler_version.as_bytes();
    let version = &version[..version.len().min(255)];
    let mut out = Vec::with_capacity(FIXED_HEADER + version.len() + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let flags = if plan.has_secret() { FLAG_SECRET } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.push(version.len() as u8);
    out.extend_from_slice(version);
    out.extend_from_slice(&body);
    out
}

/// The checksum a header holds for `body` (CRC-32/ISO-HDLC: the IEEE 802.3 polynomial,
/// as zlib and gzip compute it), for tools that inspect or repair plan files.
pub fn checksum(body: &[u8]) -> u32 {
    crc32(body)
}

/// What a decoded header says, besides the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format_version: u16,
    pub has_secret: bool,
    pub compiler_version: String,
}

/// Why a plan file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header says.
    Truncated { expected: u64, actual: u64 },
    /// Not a plan file at all.
    BadMagic,
    /// A plan from another format version.
    UnsupportedVersion { found: u16, compiler: String },
    /// The body does not match its checksum.
    BadChecksum { stored: u32, computed: u32 },
    /// The body claims to be larger than any plan can be.
    TooLarge(u64),
    /// Bytes after the body.
    TrailingBytes(u64),
    /// The body passed the checksum but is not a plan of this version; the text
    /// says what did not fit, in words ([`body_problem`]).
    Body(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { expected, actual } => write!(
                f,
                "plan file is truncated: expected {expected} bytes, found {actual}"
            ),
            DecodeError::BadMagic => {
                f.write_str("not a tcprelay plan file (wrong magic bytes); compile the configuration with `tcprelay-cc compile`")
            }
            DecodeError::UnsupportedVersion { found, compiler } => write!(
                f,
                "plan format version {found} (written by tcprelay-cc {compiler}) is not supported; this build reads version {FORMAT_VERSION}: recompile the configuration"
            ),
            DecodeError::BadChecksum { stored, computed } => write!(
                f,
                "plan file is corrupted: body checksum {computed:08x} does not match the stored {stored:08x}"
            ),
            DecodeError::TooLarge(n) => {
                write!(f, "plan file claims a body of {n} bytes, more than the {MAX_BODY} allowed")
            }
            DecodeError::TrailingBytes(n) => {
                write!(f, "plan file is corrupted: {n} unexpected bytes after the body")
            }
            DecodeError::Body(e) => write!(
                f,
                "plan file body cannot be decoded ({e}): was it written by another version of tcprelay-cc? recompile the configuration"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// What bincode found wrong with a body, in words. Its own `Display` is the `Debug`
/// form of its error (`OtherString("invalid value: ...")`), so it is never shown.
fn body_problem(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match e {
        E::UnexpectedEnd { .. } | E::Io { .. } => "it ends in the middle of a value".to_string(),
        E::LimitExceeded => {
            format!("a value claims more than the {MAX_BODY} bytes a plan may have")
        }
        E::InvalidIntegerType { .. } | E::OutsideUsizeRange(_) => {
            "a number is not encoded as this version encodes it".to_string()
        }
        E::NonZeroTypeIsZero { .. } => "a value that cannot be 0 is 0".to_string(),
        E::UnexpectedVariant {
            type_name, found, ..
        } => format!("choice {found} of {type_name} does not exist"),
        E::EmptyEnum { type_name } => format!("{type_name} has no choices"),
        E::Utf8 { inner } => format!("a text is not UTF-8: {inner}"),
        E::InvalidCharEncoding(_) => "a character is not valid UTF-8".to_string(),
        E::InvalidBooleanValue(found) => format!("a yes/no value is {found}, neither 0 nor 1"),
        E::ArrayLengthMismatch { required, found } => {
            format!("a list holds {found} items instead of {required}")
        }
        // serde's messages are sentences ("invalid value: integer `7`, expected
        // variant index 0 <= i < 3").
        E::OtherString(text) => text.clone(),
        E::Other(text) => (*text).to_string(),
        _ => "its layout is not the one this version reads".to_string(),
    }
}

fn truncated(expected: usize, actual: usize) -> DecodeError {
    DecodeError::Truncated {
        expected: expected as u64,
        actual: actual as u64,
    }
}

/// Decodes a plan file. The plan is not validated here: call [`Plan::validate`].
pub fn decode(bytes: &[u8]) -> Result<(Header, Plan), DecodeError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) && !bytes.is_empty() {
            return Err(truncated(FIXED_HEADER, bytes.len()));
        }
        return Err(DecodeError::BadMagic);
    }
    if bytes.len() < FIXED_HEADER {
        return Err(truncated(FIXED_HEADER, bytes.len()));
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let format_version = u16_at(8);
    let flags = u16_at(10);
    let stored = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let version_len = bytes[24] as usize;
    let header_len = FIXED_HEADER + version_len;
    if bytes.len() < header_len {
        return Err(truncated(header_len, bytes.len()));
    }
    let compiler_version = String::from_utf8_lossy(&bytes[FIXED_HEADER..header_len]).into_owned();
    if format_version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: format_version,
            compiler: compiler_version,
        });
    }
    if body_len > MAX_BODY {
        return Err(DecodeError::TooLarge(body_len));
    }
    let total = header_len + body_len as usize;
    if bytes.len() < total {
        return Err(truncated(total, bytes.len()));
    }
    if bytes.len() > total {
        return Err(DecodeError::TrailingBytes((bytes.len() - total) as u64));
    }
    let body = &bytes[header_len..];
    let computed = crc32(body);
    if computed != stored {
        return Err(DecodeError::BadChecksum { stored, computed });
    }
    let (plan, used): (Plan, usize) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| DecodeError::Body(body_problem(&e)))?;
    if used != body.len() {
        return Err(DecodeError::TrailingBytes((body.len() - used) as u64));
    }
    Ok((
        Header {
            format_version,
            has_secret: flags & FLAG_SECRET != 0,
            compiler_version,
        },
        plan,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's checksum is CRC-32/ISO-HDLC (reflected polynomial 0xEDB88320,
    /// initial value and final XOR 0xFFFFFFFF): plan files written before and after
    /// the change of implementation are the same bytes. The check values are the
    /// catalogue's (`123456789`) and zlib's.
    #[test]
    fn checksum_is_crc32_iso_hdlc() {
        assert_eq!(checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum(b""), 0);
        assert_eq!(
            checksum(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        // Longer than one block of the SIMD path, so the fast path is checked too.
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let bitwise = long.iter().fold(!0u32, |mut c, &b| {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        });
        assert_eq!(checksum(&long), !bitwise);
    }
}
