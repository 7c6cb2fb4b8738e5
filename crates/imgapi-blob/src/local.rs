//! Local filesystem backend. Implemented by the blob work item.
