//! Building records from create/import bodies and applying updates (manifest.md §5).
// Implemented by the validation work item.
