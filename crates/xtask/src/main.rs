//! `cargo run -p xtask -- gen-docs`: write docs/errors.md, docs/config.md
//! and docs/openapi.json.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("gen-docs") => gen_docs(),
        _ => {
            eprintln!("usage: cargo run -p xtask -- gen-docs");
            ExitCode::from(2)
        }
    }
}

fn gen_docs() -> ExitCode {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let files = [
        ("errors.md", imgapi_server::docs::errors_markdown()),
        ("config.md", imgapi_server::docs::config_markdown()),
        (
            "openapi.json",
            imgapi_server::http::openapi::document_json(),
        ),
    ];
    for (name, text) in files {
        let path = docs.join(name);
        if let Err(e) = std::fs::create_dir_all(&docs).and_then(|()| std::fs::write(&path, text)) {
            eprintln!("xtask: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
