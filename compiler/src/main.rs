//! `tcprelay-cc`: the configuration compiler. The command line is defined and run in
//! the library ([`tcprelay_cc::cli`]), where the man pages and completions are
//! generated from the same definition.

use std::process::ExitCode;

fn main() -> ExitCode {
    tcprelay_cc::cli::main()
}
