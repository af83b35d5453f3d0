//! Any bytes as a configuration: lexing, parsing, checking, lowering and rendering
//! the diagnostics in every format must never panic, and every span must lie inside
//! the source.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcprelay_cc::{check, diag, lexer, Selection};

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    let (plan, diags) = tcprelay_cc::compile(&src, "fuzz.cfg", &Selection::default());
    for d in &diags {
        assert!(d.span.start <= d.span.end && d.span.end <= src.len());
    }
    if let Some(plan) = plan {
        assert!(plan.validate().is_ok());
        let bytes = tcprelay_plan::encode(&plan, "fuzz");
        let (_, back) = tcprelay_plan::decode(&bytes).expect("a fresh plan decodes");
        assert_eq!(back, plan);
    }
    let shown = check::redact(&src, &lexer::secret_spans(&src));
    let _ = diag::render::human(&diags, "fuzz.cfg", &shown, false);
    let _ = diag::render::short(&diags, "fuzz.cfg", &shown);
    let _ = diag::render::json(&diags, "fuzz.cfg", &shown);
});
