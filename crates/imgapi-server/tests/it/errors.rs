//! docs/errors.md is generated from the restCode table and must be fresh;
//! every error body has the documented shape.

use imgapi_types::RestCode;

#[test]
fn errors_doc_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        on_disk,
        imgapi_server::docs::errors_markdown(),
        "docs/errors.md is stale: run `cargo run -p xtask -- gen-docs`"
    );
}

#[test]
fn config_doc_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        on_disk,
        imgapi_server::docs::config_markdown(),
        "docs/config.md is stale: run `cargo run -p xtask -- gen-docs`"
    );
}

#[test]
fn every_code_has_a_status_and_description() {
    for code in RestCode::ALL {
        assert!((400..600).contains(&code.http_status()), "{code:?}");
        assert!(!code.description().is_empty());
    }
}
