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
//!   config ─> probe ─> health ─> failover ─> table ─> dns
//!   (TOML,    (tcp, tls,  (rise/    (best group,  (ready-made   (UDP/TCP listeners,
//!    presets,  https /v2/, fall per  when_all_down wire answers,  per-query handler,
//!    errors    icmp, path) probe)    policies)     swapped        forwarder + cache)
//!    with                                          atomically)
//!    file:line)
//!
//!   at the side: supervisor (probe reports -> health -> failover -> new table, events,
//!   status), discover (the owned names' addresses learned over the private path,
//!   verified by probes, kept on disk; the daemon overlays them on the config), daemon
//!   (start-up, reload, shutdown), systemd and activation (socket
//!   activation, fd store), control (HTTP), metrics, alert
//!   (webhook, Alertmanager), events, status, host (routes, links, addresses and the host
//!   name from the kernel; 100.x conflicts), wire (DNS wire format)
//! ```
//!
//! - [`config`]: one pipeline from TOML text to a validated [`config::Config`]: parse (TOML
//!   and serde errors) -> raw schema with spans -> the load step's host facts (the only host
//!   reads) -> pure validation rules, one room per concept -> the `[[registry]]` preset's
//!   expansion -> the whole-table checks; every error placed as file:line:column: field.
//! - [`probe`]: one run of each probe kind, and the [`probe::scheduler`] that runs every
//!   distinct probe on its own task, jittered, faster while suspect, and at once when the
//!   kernel reports that a target's local path changed ([`probe::trigger`]).
//! - [`health`]: the rise/fall state machine per probe, combined per target.
//! - [`failover`]: which answer a name gives from its targets' health.
//! - [`table`]: the answer table. Each owned name's response per query type is encoded once,
//!   when the table is built; the DNS path only loads the current table (an `ArcSwap`).
//! - [`dns`]: sockets and serving loops, the per-query [`dns::Handler`], and forwarding with
//!   hickory-resolver's name server pool (every upstream reply checked by
//!   [`dns::upstream`], hickory's types meeting [`wire`]'s only in [`dns::hickory_bridge`],
//!   rcodes passed through exactly, private addresses stripped by
//!   [`dns::rebinding`] only when the operator turns it on) behind pathdns's
//!   own answer cache, which serves expired answers when the upstreams fail (serve-stale,
//!   RFC 8767, [`dns::stale`]).
//! - [`supervisor`]: the loop from probe reports to answer tables, events and status.
//! - [`discover`]: beside the config, `discover`'s addresses: asked of a resolver inside the
//!   VPC, checked, verified by the name's probes, kept on disk as the last good ones; the
//!   daemon applies config + learned addresses as a new generation, as a reload does.
//! - [`abort`]: at the side of the supervisor, ending this host's stalled TCP connections
//!   to a target that is down and answered away from (`abort_stalled`), so clients retry.
//! - [`daemon`]: start-up order, live reload on SIGHUP, readiness, shutdown.
//! - [`systemd`], [`control`], [`metrics`], [`alert`], [`events`], [`status`]: how the agent
//!   tells systemd, Prometheus, operators and their alerting how it is.
//! - [`activation`]: the listening sockets systemd hands over (`pathdns.socket`) and keeps
//!   in its fd store across restarts and crashes, so no query is refused in between.
//! - [`resolver`]: `pathdns resolver enable/disable`, pointing the host's resolver at pathdns
//!   (plain resolv.conf or systemd-resolved split DNS) and putting it back.
//! - [`host`]: the host facts every part shares (the kernel's route for a target, links,
//!   addresses, the kernel's change notifications, the host name, the 100.x trap, failed
//!   reads); [`wire`]: the DNS wire format on the
//!   hot path; [`accept`]: accept-loop errors (EMFILE and friends) backed off, not spun on.
//!   The host room also reads the host's files: [`host::hosts_file`] and
//!   [`host::resolv_conf`] (glibc's semantics).
//! - [`doctor`]: `pathdns doctor`'s checks, one room per concern, with its remedy texts.
//! - [`dns_client`]: the one way pathdns builds a query of its own (watchdog, doctor), off
//!   the hot path; [`reason`]: how errors are worded for people; [`throttle`]: one log
//!   throttle for repeated warnings.
//!
//! The DNS hot path never waits on a probe, a reload, a webhook or a lock: owned names and
//! cache hits are answered inline by the thread (UDP) or connection task (TCP) that received
//! the query, from the current table; only cache misses go to the async runtime.

#![forbid(unsafe_code)]

pub mod abort;
pub mod accept;
pub mod activation;
pub mod alert;
pub mod config;
pub mod control;
pub mod daemon;
pub mod discover;
pub mod dns;
pub mod dns_client;
pub mod doctor;
pub mod events;
pub mod failover;
pub mod health;
pub mod host;
pub mod metrics;
pub mod probe;
pub mod reason;
pub mod resolver;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod table;
pub mod throttle;
pub mod wire;
