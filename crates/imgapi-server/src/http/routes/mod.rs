//! Thin handlers, one module per resource: extract → call service → respond.

pub mod catalog;
pub mod changes;
pub mod datasets;
pub mod docker;
pub mod files;
pub mod images;
pub mod lifecycle;
pub mod lxd;
pub mod misc;
pub mod quotas;
pub mod recycle_bin;
pub mod retention;
pub mod signatures;
pub mod simplestreams;
pub mod uploads;
pub mod usage;
pub mod webhooks;
