//! Legacy v1 (DSAPI) manifest upgrade (manifest.md §10).
// Implemented by the validation work item.
