//! Any bytes as the start of a TLS client's stream: the ClientHello parser that
//! routes by SNI must never panic, never claim more bytes than it was given, and
//! read a ClientHello it accepts the same from exactly the bytes it says it took.
//! The input is also read as a ClientHello message in records of every size it
//! fixes (its first byte), so that the fuzzer reaches the extensions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcprelay::sni::{example, parse, MAX_HELLO};

fuzz_target!(|data: &[u8]| {
    let raw = data.to_vec();
    let framed = match data.split_first() {
        Some((size, message)) => example::records(message, usize::from(*size) + 1),
        None => Vec::new(),
    };
    for bytes in [raw, framed] {
        if let Ok(hello) = parse(&bytes) {
            assert!(hello.length <= bytes.len() && hello.length <= MAX_HELLO);
            assert_eq!(parse(&bytes[..hello.length]), Ok(hello.clone()));
            if let Some(name) = &hello.server_name {
                assert!(!name.is_empty() && !name.ends_with('.'));
                assert_eq!(name, &name.to_ascii_lowercase());
            }
        }
    }
});
