//! Conformance suite every MetaStore backend runs. Implemented by the meta work item.
