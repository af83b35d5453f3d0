//! Any bytes as a plan file: decoding, validating and explaining must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, plan)) = tcprelay_plan::decode(data) {
        let _ = plan.validate();
    }
    let _ = tcprelay_cc::explain::explain(data);
});
