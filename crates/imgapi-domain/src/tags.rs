//! Tag search form (manifest.md §7).
// Implemented by the validation work item.
