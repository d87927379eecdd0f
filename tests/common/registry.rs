//! The `[[registry]]` preset that the namespace tests run pathdns on: the documents'
//! instance `xxxxxx` in `cn-hangzhou`, its registry (and OSS) name on the [`PRIMARY`]
//! target, the registry's backup on [`BACKUP`], the preset's default probes, and the
//! topology's test CA as `ca_file`.
//!
//! [`PRIMARY`]: super::netns::PRIMARY
//! [`BACKUP`]: super::netns::BACKUP

use super::netns::Topology;

/// The registry endpoint's name.
pub const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com";
/// The token realm the registry stand-ins name (`Topology::start_registry`).
pub const REALM: &str = "dockerauth-vpc.cn-hangzhou.aliyuncs.com";
/// The primary target's address (the documents' example; only inside the namespaces).
pub const PRIMARY_ADDR: &str = "10.94.205.198";
/// The backup target's address (a second instance, global sync).
pub const BACKUP_ADDR: &str = "10.95.0.10";

/// The preset for `topology`, listening on `127.0.0.1:0`: `health` goes into `[health]`,
/// `registry` into the `[[registry]]` table.
pub fn config(topology: &Topology, health: &str, registry: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:5399"]

[health]
{health}

[[registry]]
instance = "xxxxxx"
region = "cn-hangzhou"
registry = ["{PRIMARY_ADDR}"]
oss = ["{PRIMARY_ADDR}"]
backup = {{ registry = ["{BACKUP_ADDR}"] }}
ca_file = "{ca}"
{registry}
"#,
        ca = topology.ca_cert.display()
    )
}
