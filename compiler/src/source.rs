//! STUB: loading a configuration from a path, `-` or a URL; to be written.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

pub fn load(spec: &str) -> Result<Source, String> {
    std::fs::read_to_string(spec).map(|text| Source { name: spec.to_string(), text }).map_err(|e| format!("{spec}: {e}"))
}
