//! Any bytes as the start of a PROXY-accepting connection: the header parser must
//! never panic, never claim more bytes than it was given, and a header it reads
//! must be written back to bytes that read the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcprelay::proxy::{parse_accepting, write};
use tcprelay_plan::ProxyAccept;

fuzz_target!(|data: &[u8]| {
    for accept in [ProxyAccept::Any, ProxyAccept::V1, ProxyAccept::V2] {
        if let Ok(parsed) = parse_accepting(data, accept) {
            assert!(parsed.consumed <= data.len());
            // What is ignored (the rest of an UNKNOWN line, a LOCAL or unspecified
            // block) is not written back; the header must read back the same.
            let bytes = write(&parsed.header).expect("a header read is short enough to write");
            let again = parse_accepting(&bytes, ProxyAccept::Any).expect("a written header reads");
            assert_eq!(again.consumed, bytes.len());
            assert_eq!(again.header, parsed.header);
        }
    }
});
