//! Integration tests: a real server on 127.0.0.1 (ephemeral port, temp
//! dirs), spoken to over HTTP. One binary for compile speed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cloned_ref_to_slice_refs
)]

mod support;

mod access_matrix;
mod audit;
mod auth;
mod binary;
mod catalog;
mod changes;
mod channels;
mod check;
mod conditional;
mod config_safety;
mod crash;
mod db_outage;
mod dc_mode;
mod deprecation;
mod docker;
mod dsapi;
mod errors;
mod export;
mod faults;
mod files;
mod hardening;
mod head;
mod health;
mod job_retention;
mod lifecycle;
mod limits_under_load;
mod listing;
mod lxd;
mod lxd_roundtrip;
mod lxd_serve;
mod metrics;
mod migrate;
mod mirror;
mod mirror_follow;
mod misc;
mod multi_instance;
mod openapi;
mod persistence;
mod private_pg;
mod quotas;
mod recycle_bin;
mod remote_import;
mod restart;
mod retention;
mod signatures;
mod signatures_travel;
mod storage_errors;
mod store_probe;
mod upload_races;
mod uploads;
mod usage;
mod webhooks;
mod wire_types;
mod writes;
