//! The rebinding filter (DNS rebinding protection, as Unbound's `private-address` and
//! dnsmasq's `--stop-dns-rebind`): private addresses are stripped from forwarded answers to
//! public names, so that a name on the internet cannot make a browser or a script on this
//! host talk to the host itself or to the data center's private network. Off by default
//! (`[upstream] rebinding_protection`): it is a home-router defence, and an IDC's own
//! resolvers answer private addresses for its internal names.
//!
//! Owns: which addresses count as private ([`is_private`]), which names may still resolve
//! to them ([`RebindingFilter::is_exempt`]: names pathdns owns and the targets of its
//! CNAMEs, names at or under a private domain), stripping A and AAAA records from an
//! upstream answer before it is cached, and a warning at a limited rate so that an
//! operator finds the internal domains to list in `private_domains`. Must not: touch owned
//! names' answers (the table's, private by design) or the answer to an owned CNAME chain
//! that leaves the table (the handler never filters it), or run per query on the hot path:
//! it runs once per upstream answer, and cache hits serve what it left. It works on an
//! [`UpstreamAnswer`] ([`super::upstream_answer`]) and never imports the forwarder that
//! calls it.
//!
//! Exempt names are kept as lower-case wire names in hash sets; a check walks the checked
//! name's suffixes, so its cost does not grow with the number of owned names.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record};

use super::upstream_answer::UpstreamAnswer;
use crate::config::RebindingSettings;
use crate::table::wire_name;
use crate::wire::parent_suffixes;

/// At most one warning per this long; the ones in between are counted into the next.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

pub struct RebindingFilter {
    enabled: bool,
    /// Exempt themselves: owned names, CNAME and fallback targets.
    exact: HashSet<Box<[u8]>>,
    /// Exempt with every name below: private domains.
    domains: HashSet<Box<[u8]>>,
    /// Every name strictly below is exempt: the parents of owned wildcards.
    below: HashSet<Box<[u8]>>,
    log: RateLimit,
}

impl std::fmt::Debug for RebindingFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebindingFilter")
            .field("enabled", &self.enabled)
            .field(
                "exempt",
                &(self.exact.len() + self.domains.len() + self.below.len()),
            )
            .finish()
    }
}

impl RebindingFilter {
    pub fn new(settings: &RebindingSettings) -> RebindingFilter {
        let lower = |name: &Name| wire_name(name).into_boxed_slice();
        let mut exact = HashSet::new();
        let mut below = HashSet::new();
        for name in &settings.owned {
            if name.is_wildcard() {
                below.insert(lower(&name.base_name()));
            } else {
                exact.insert(lower(name));
            }
        }
        RebindingFilter {
            enabled: settings.enabled,
            exact,
            domains: settings.private_domains.iter().map(lower).collect(),
            below,
            log: RateLimit::new(),
        }
    }

    /// May `name` resolve to private addresses?
    pub fn is_exempt(&self, name: &Name) -> bool {
        let wire = wire_name(name);
        if self.exact.contains(&wire[..]) || self.domains.contains(&wire[..]) {
            return true;
        }
        let exempt = parent_suffixes(&wire)
            .any(|parent| self.domains.contains(parent) || self.below.contains(parent));
        exempt
    }

    /// Strips the private A and AAAA records from `answer` to a question for `question`,
    /// unless `question` or the record's owner is exempt; returns how many went. Whatever
    /// else the answer holds stays; an answer left without records is a NODATA-like answer
    /// (NOERROR, nothing for the name), as Unbound gives.
    pub fn strip(&self, question: &Name, answer: &mut UpstreamAnswer) -> usize {
        if !self.enabled || self.is_exempt(question) {
            return 0;
        }
        let mut stripped = 0;
        let mut example = None;
        for section in [
            &mut answer.answers,
            &mut answer.authorities,
            &mut answer.additionals,
        ] {
            section.retain(|record| {
                let Some(ip) = private_address(record) else {
                    return true;
                };
                if self.is_exempt(&record.name) {
                    return true;
                }
                stripped += 1;
                example.get_or_insert(ip);
                false
            });
        }
        if let Some(address) = example {
            if let Some(suppressed) = self.log.allow() {
                tracing::warn!(
                    name = %question,
                    %address,
                    stripped,
                    suppressed,
                    "private addresses stripped from a forwarded answer (rebinding \
                     protection); if this domain is yours, add it to [upstream] \
                     private_domains"
                );
            }
        }
        stripped
    }
}

/// The address of an A or AAAA record, if it is private.
fn private_address(record: &Record) -> Option<IpAddr> {
    let ip = match &record.data {
        RData::A(a) => IpAddr::V4(a.0),
        RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
        _ => return None,
    };
    is_private(ip).then_some(ip)
}

/// Addresses no public name should resolve to: this host (loopback, unspecified), the
/// private networks (RFC 1918, ULA), shared address space (CGNAT, RFC 6598, where the
/// documents' auth and OSS addresses live), link-local, multicast, and the reserved and
/// benchmarking ranges. The documentation ranges (192.0.2.0/24, 2001:db8::/32, ...) are
/// public: nothing on a private network uses them.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 224 // multicast, reserved, broadcast
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    // IPv4 written as IPv6 (mapped ::ffff:a.b.c.d, or NAT64's 64:ff9b::a.b.c.d) reaches
    // the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return is_private_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local (ULA)
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] & 0xff00) == 0xff00 // multicast
}

/// Lets one event through per [`LOG_INTERVAL`], counting the ones it holds back; lock-free.
struct RateLimit {
    start: Instant,
    /// Milliseconds since `start` before which nothing is let through.
    next: AtomicU64,
    held: AtomicU64,
}

impl RateLimit {
    fn new() -> RateLimit {
        RateLimit {
            start: Instant::now(),
            next: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last one)` when this event may be logged.
    fn allow(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next.load(Ordering::Relaxed);
        let until = now.saturating_add(LOG_INTERVAL.as_millis() as u64);
        if now >= next
            && self
                .next
                .compare_exchange(next, until, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    fn filter() -> RebindingFilter {
        RebindingFilter::new(&RebindingSettings {
            enabled: true,
            private_domains: vec![name("corp.example."), name("privatelink.aliyuncs.com.")],
            owned: vec![name("registry.example."), name("*.oss.example.")],
            exemptions: Vec::new(),
        })
    }

    #[test]
    fn private_ranges() {
        let private = [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "64:ff9b::192.168.0.1",
        ];
        let public = [
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "2001:db8::1",
            "2400:3200::1",
            "::ffff:192.0.2.1",
            "64:ff9b::192.0.2.1",
        ];
        for text in private {
            assert!(is_private(text.parse().expect(text)), "{text} is private");
        }
        for text in public {
            assert!(!is_private(text.parse().expect(text)), "{text} is public");
        }
    }

    #[test]
    fn exempt_names() {
        let filter = filter();
        for exempt in [
            "corp.example.",
            "Host.CORP.example.",
            "ep-1.oss.cn-hangzhou.privatelink.aliyuncs.com.",
            "registry.example.",
            "bucket.oss.example.",
            "a.b.oss.example.",
        ] {
            assert!(filter.is_exempt(&name(exempt)), "{exempt} is exempt");
        }
        for not in [
            "example.",
            "notcorp.example.",
            "sub.registry.example.",
            "oss.example.",
            "aliyuncs.com.",
        ] {
            assert!(!filter.is_exempt(&name(not)), "{not} is not exempt");
        }
    }

    fn record(owner: &str, data: RData) -> Record {
        Record::from_rdata(name(owner), 60, data)
    }

    fn answer(records: Vec<Record>) -> UpstreamAnswer {
        UpstreamAnswer {
            rcode: ResponseCode::NoError,
            answers: records,
            authorities: Vec::new(),
            additionals: Vec::new(),
            lifetime: 60,
        }
    }

    #[test]
    fn strips_private_addresses_of_public_names_only() {
        let filter = filter();
        let mut mixed = answer(vec![
            record("www.example.", RData::A(A::new(10, 0, 0, 1))),
            record("www.example.", RData::A(A::new(192, 0, 2, 1))),
            record(
                "www.example.",
                RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            ),
        ]);
        mixed.additionals = vec![record("ns.example.", RData::A(A::new(127, 0, 0, 1)))];
        assert_eq!(filter.strip(&name("www.example."), &mut mixed), 3);
        assert_eq!(mixed.answers.len(), 1);
        assert!(mixed.additionals.is_empty());
        // A public name CNAMEd into a private domain keeps the private domain's address.
        let mut chained = answer(vec![
            record(
                "www.example.",
                RData::CNAME(CNAME(name("db.corp.example."))),
            ),
            record("db.corp.example.", RData::A(A::new(10, 1, 1, 1))),
        ]);
        assert_eq!(filter.strip(&name("www.example."), &mut chained), 0);
        assert_eq!(chained.answers.len(), 2);
        // An exempt question keeps everything, whatever the chain.
        let mut owned = answer(vec![
            record("registry.example.", RData::CNAME(CNAME(name("x.example.")))),
            record("x.example.", RData::A(A::new(100, 103, 7, 181))),
        ]);
        assert_eq!(filter.strip(&name("registry.example."), &mut owned), 0);
        // All stripped: nothing left, still NOERROR.
        let mut all = answer(vec![record(
            "evil.example.",
            RData::A(A::new(127, 0, 0, 1)),
        )]);
        assert_eq!(filter.strip(&name("evil.example."), &mut all), 1);
        assert!(all.answers.is_empty());
        assert_eq!(all.rcode, ResponseCode::NoError);
    }

    #[test]
    fn disabled_strips_nothing() {
        let filter = RebindingFilter::new(&RebindingSettings {
            enabled: false,
            private_domains: Vec::new(),
            owned: Vec::new(),
            exemptions: Vec::new(),
        });
        let mut private = answer(vec![record(
            "evil.example.",
            RData::A(A::new(127, 0, 0, 1)),
        )]);
        assert_eq!(filter.strip(&name("evil.example."), &mut private), 0);
        assert_eq!(private.answers.len(), 1);
    }

    #[test]
    fn the_log_is_rate_limited() {
        let limit = RateLimit::new();
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        limit.next.store(0, Ordering::Relaxed);
        assert_eq!(limit.allow(), Some(2));
    }
}
