//! Renders diagnostics: `human` (ariadne), `short` (one line each) and `json`.
//! STUB: to be written.

use super::Diagnostic;

pub fn human(diags: &[Diagnostic], file_name: &str, src: &str, color: bool) -> String {
    let _ = (file_name, src, color);
    short(diags, file_name, src)
}

pub fn short(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    let _ = src;
    diags.iter().map(|d| format!("{file_name}: {}[{}]: {}\n", d.severity.as_str(), d.code, d.message)).collect()
}

pub fn json(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    let _ = (diags, file_name, src);
    String::new()
}
