//! pathdns: a node-local DNS and connectivity agent for hosts that pull container images
//! from an Alibaba Cloud Container Registry Enterprise Edition instance over a private path
//! (CEN, VPN, Express Connect).
//!
//! It answers the registry, `dockerauth` and OSS names authoritatively on a local address
//! that resolv.conf points at, and forwards every other name to the host's previous
//! resolvers through a cache, so pointing resolv.conf at it never breaks other lookups.
//!
//! # Architecture
//!
//! Data flows one way; no module imports back up the flow:
//!
//! ```text
//!   config ──> table ──> dns (handler ──> forward/cache)
//!   (TOML,     (ready-made   (UDP/TCP listeners, per-query decision,
//!    presets)   wire answers, upstream pool and answer cache)
//!               swapped
//!               atomically)
//! ```
//!
//! - [`config`]: the TOML schema, validation with file:line:field errors, the `[[registry]]`
//!   preset that expands into the documents' three names, and the embedded demo config.
//! - [`table`]: the answer table. Each owned name's response per query type is encoded once,
//!   when the table is built; the DNS path only loads the current table (an `ArcSwap`).
//! - [`wire`]: the DNS wire format on the hot path: query parsing and response writing
//!   without allocation. Used by `table` (to build answers) and `dns` (to send them).
//! - [`dns`]: sockets and serving loops, the per-query [`dns::Handler`], and forwarding with
//!   hickory-resolver's name server pool behind pathdns's own answer cache.
//! - [`daemon`]: wires the pieces together for `pathdns run` and `pathdns demo`.
//!
//! The DNS hot path never waits on a probe, a reload, a webhook or a lock: owned names and
//! cache hits are answered in the task that received the query.

#![forbid(unsafe_code)]

pub mod alert;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dns;
pub mod events;
pub mod failover;
pub mod health;
pub mod metrics;
pub mod netinfo;
pub mod probe;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod table;
pub mod wire;
