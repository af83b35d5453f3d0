//! STUB: semantic checks; to be written.
use crate::ast;
use crate::diag::Diagnostic;
use crate::Selection;

#[derive(Debug, Clone)]
pub struct Model {}

pub fn check(file: &ast::File, selection: &Selection, diags: &mut Vec<Diagnostic>) -> Option<Model> {
    let _ = (file, selection, diags);
    None
}
