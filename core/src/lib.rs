//! bosun-core: the GitOps logic that needs no I/O.
//!
//! Manifest parsing, resource identity, content-addressed bundles, tracking identity,
//! sync planning (order, prune set), drift comparison and health assessment. Every function
//! here is pure: no sockets, no files, no clocks; it cannot fail for I/O reasons.
//!
//! Architecture invariant: nothing in this crate does I/O (it has no async runtime, no
//! network or filesystem dependency).

pub mod app;
pub mod argo;
pub mod assignment;
pub mod bundle;
pub mod cluster;
pub mod diff;
pub mod health;
pub mod jq;
pub mod kustomize;
pub mod manifest;
pub mod object;
pub mod options;
pub mod plan;
pub mod quantity;
pub mod rollout;
pub mod schedule;
pub mod schema;
pub mod selector;
pub mod status;
pub mod sync;
pub mod template;
pub mod tracking;
pub mod tree;
pub mod webhook;

pub use app::{AppSpec, Destination, Source, SyncPolicy};
pub use assignment::{Assignment, Removal};
pub use bundle::Bundle;
pub use object::ObjectRef;
pub use status::{Health, SyncStatus};
