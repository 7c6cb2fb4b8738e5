//! SQLite backend (embedded default). Implemented by the meta work item.
