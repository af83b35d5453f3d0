//! STUB: railroad diagrams; to be written.
pub fn svg() -> String {
    String::new()
}
pub fn html() -> String {
    String::new()
}
