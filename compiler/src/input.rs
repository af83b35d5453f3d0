//! The input of `tcprelay-cc diff` and `route`: a plan file or a configuration, told
//! apart by one rule. A path (not `-`, not a URL) whose file the plan reader takes
//! (a regular file of at most `MAX_PLAN_SIZE`, opened without blocking, so a FIFO
//! never hangs the command) and that starts with the plan magic `TCPRPLAN` is a plan
//! file: decoded and validated as the runtime does. Anything else is a
//! configuration, compiled as `check` compiles it.

use tcprelay_plan::Plan;

use crate::{Compiled, Selection};

/// What an input holds.
#[derive(Debug)]
pub enum Input {
    /// A plan file, decoded and valid.
    Plan(Box<Plan>),
    /// A configuration compiled here, with its diagnostics and places; its `plan`
    /// is `None` when it has errors.
    Config(Box<Compiled>),
}

/// Reads `input` (see the module's rule). The error is one line without the
/// program's name: a plan file that does not decode or validate, or a configuration
/// that cannot be read.
pub fn load(input: &str, selection: &Selection) -> Result<Input, String> {
    let is_path = input != "-" && !input.contains("://") && !input.starts_with("file:");
    if is_path {
        // A larger or unreadable file is left to the configuration loader, which
        // says why in its own words.
        if let Ok(bytes) = tcprelay_plan::read_plan(std::path::Path::new(input)) {
            if bytes.starts_with(&tcprelay_plan::MAGIC) {
                let (_, plan) =
                    tcprelay_plan::decode(&bytes).map_err(|e| format!("{input}: {e}"))?;
                plan.validate()
                    .map_err(|e| format!("{input}: the plan is not valid: {e}"))?;
                return Ok(Input::Plan(Box::new(plan)));
            }
        }
    }
    let src = crate::source::load(input).map_err(|e| e.to_string())?;
    let compiled = crate::compile_with(&src.text, &src.name, selection, &crate::process_env);
    Ok(Input::Config(Box::new(compiled)))
}
