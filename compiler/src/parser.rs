pub fn parse(src: &str) -> (Option<crate::ast::File>, Vec<crate::diag::Diagnostic>) { let _ = src; (None, vec![]) }
