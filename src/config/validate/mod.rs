//! The pure rules: everything a value must satisfy beyond its serde type, each reported
//! through [`Site`](super::error::Site) with the file, line and field.
//!
//! One room per concept: [`server`], [`upstream`] (with [`stale`] and [`rebinding`]),
//! [`names`] (name and label syntax), [`discover`] (where addresses are learned), [`owned`] (`[[name]]` entries), [`table`] (the whole
//! table: duplicates, CNAME loops), [`probes`] (probe and failover keys), [`operations`]
//! (`[control]`, `[log]`, `[[alert]]`), [`values`] (small rules they share).
//!
//! Must not: read the host or the filesystem (what a rule needs from the host comes in as
//! [`HostFacts`](super::facts::HostFacts), read before validation), expand the
//! `[[registry]]` preset (`preset` does, with these rules), or import from `preset` or the
//! pipeline in `config/mod.rs`.

pub(super) mod discover;
pub(super) mod names;
pub(super) mod operations;
pub(super) mod owned;
pub(super) mod probes;
pub(super) mod rebinding;
pub(super) mod server;
pub(super) mod stale;
pub(super) mod table;
pub(super) mod upstream;
pub(super) mod values;
