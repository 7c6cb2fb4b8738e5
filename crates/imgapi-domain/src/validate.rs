//! Manifest validation (manifest.md §3, §4).
// Implemented by the validation work item.
