//! Conformance suite. Implemented by the blob work item.
