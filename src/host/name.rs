//! The host name, from gethostname(2): the kernel's UTS name, readable under any sandbox
//! (/proc/sys/kernel/hostname is absent under the unit's ProcSubset=pid).
//!
//! Owns: [`hostname`]. Must not: set the name or fall back silently.

use super::failures::{self, HostRead};

/// This host's name, as alerts carry it. A failing gethostname(2) is recorded; then
/// /etc/hostname, then "localhost", stand in.
pub fn hostname() -> String {
    match nix::unistd::gethostname() {
        Ok(name) => match name.into_string() {
            Ok(name) if !name.is_empty() => {
                failures::succeeded(HostRead::Hostname);
                return name;
            }
            Ok(_) => failures::failed(HostRead::Hostname, "gethostname(2) gave an empty name"),
            Err(_) => failures::failed(HostRead::Hostname, "gethostname(2) gave a non-UTF-8 name"),
        },
        Err(err) => failures::failed(HostRead::Hostname, &format!("gethostname(2): {err}")),
    }
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_name_is_the_kernels() {
        let kernel = nix::unistd::gethostname().unwrap();
        assert_eq!(super::hostname(), kernel.to_str().unwrap());
    }
}
