//! Generates the parser from `grammar/tcprelay.lalrpop` at the workspace root, the
//! one grammar definition that both the parser and the railroad diagrams use.

fn main() {
    let grammar_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../grammar");
    println!("cargo:rerun-if-changed={}", grammar_dir.display());
    lalrpop::Configuration::new()
        .set_in_dir(&grammar_dir)
        .set_out_dir(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .emit_rerun_directives(true)
        .process()
        .expect("the grammar in grammar/ must build");
}
