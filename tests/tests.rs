//! pathdns's integration tests: one test binary (ripgrep's layout), so that tokio, hickory,
//! rustls and reqwest are linked once instead of once per file. Each module below is one
//! area; `common` is the shared harness (the real binary on port 0, packet builders, fake
//! upstreams, network namespaces).
//!
//! Run one area with `cargo test --test integration MODULE::` (e.g. `failover_netns::`).
//! Network-namespace tests need root and are skipped, loudly, without it.

mod common;

mod abort_stalled;
mod access;
mod alerts;
mod bad_input;
mod check;
mod conformance;
mod container_host;
mod control;
mod crafted;
mod discovery;
mod dns_answers;
mod doctor;
mod failover;
mod failover_netns;
mod floods;
mod forwarding;
mod fuzz_smoke;
mod host_netns;
mod import_hosts;
mod monitoring;
mod netns_topology;
mod node_local;
mod packaging;
mod passthrough;
mod pipelining;
mod rebinding;
mod reload;
mod resolver;
mod serve_stale;
mod sock_diag;
mod socket_activation;
mod spoofing;
mod status_page;
mod systemd;
mod truncation;
mod wildcard_listen;
