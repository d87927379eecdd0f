//! The answer table: every owned name's responses, ready-made in wire format.
//!
//! Owns: turning owned names and the addresses chosen for them into [`Prepared`] responses
//! per query type (A, AAAA, ANY, SOA, CNAME, anything else as NODATA with an SOA), CNAME
//! chains inside the table, wildcard matching (RFC 4592, simplified to "the nearest wildcard
//! above the name, unless an owned name stands in between"), and the atomically swapped
//! [`LiveTable`]. Must not: probe, decide health, or do I/O; a table is immutable once
//! built, and the DNS path reads it without locks.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use crate::config::OwnedName;
use crate::failover::Selection;
use crate::wire::{
    parent_suffixes, BodyWriter, Owner, Prepared, RData, Rcode, Section, TYPE_A, TYPE_AAAA,
    TYPE_ANY, TYPE_AXFR, TYPE_CNAME, TYPE_IXFR, TYPE_SOA,
};

/// SOA MNAME and RNAME of pathdns's answers (`.invalid` is reserved: RFC 6761).
const SOA_MNAME: &[u8] = b"\x02ns\x07pathdns\x07invalid\x00";
const SOA_RNAME: &[u8] = b"\x0ahostmaster\x07pathdns\x07invalid\x00";

/// The answers of one owned name.
#[derive(Debug)]
pub struct NameAnswers {
    a: Prepared,
    aaaa: Prepared,
    any: Prepared,
    soa: Prepared,
    cname: Prepared,
    /// Any other type: NODATA (or the CNAME chain with NODATA at its end).
    other: Prepared,
    /// Set when the name's CNAME chain leaves the table: the rest comes from upstream.
    upstream: Option<UpstreamCname>,
}

impl NameAnswers {
    /// SERVFAIL for every type but CNAME (every target down with the SERVFAIL policy, or a
    /// chain that upstream completes).
    fn servfail(cname: Prepared) -> NameAnswers {
        let servfail = || Prepared::empty(Rcode::ServFail, false);
        NameAnswers {
            a: servfail(),
            aaaa: servfail(),
            any: servfail(),
            soa: servfail(),
            other: servfail(),
            cname,
            upstream: None,
        }
    }
}

/// A CNAME to a name that pathdns does not own, e.g. a PrivateLink endpoint.
#[derive(Debug, Clone)]
pub struct UpstreamCname {
    /// The CNAME chain inside the table, first link first.
    pub links: Vec<CnameLink>,
    /// The name to resolve upstream: the last link's target.
    pub target: Name,
}

/// One CNAME record of a chain.
#[derive(Debug, Clone)]
pub struct CnameLink {
    /// `None` for the first link, whose owner is the query name (which may match a
    /// wildcard).
    pub owner: Option<Name>,
    pub ttl: u32,
    pub target: Name,
}

/// What to answer for a query type.
#[derive(Debug)]
pub enum Answer<'t> {
    Ready(&'t Prepared),
    /// Answer the chain, then what upstream says for `target` and the same type.
    ChaseUpstream(&'t UpstreamCname),
    /// Zone transfers are not offered.
    Refused,
}

impl NameAnswers {
    pub fn for_type(&self, qtype: u16) -> Answer<'_> {
        if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
            return Answer::Refused;
        }
        if qtype == TYPE_CNAME {
            return Answer::Ready(&self.cname);
        }
        if let Some(upstream) = &self.upstream {
            return Answer::ChaseUpstream(upstream);
        }
        Answer::Ready(match qtype {
            TYPE_A => &self.a,
            TYPE_AAAA => &self.aaaa,
            TYPE_ANY => &self.any,
            TYPE_SOA => &self.soa,
            _ => &self.other,
        })
    }
}

/// The table's hasher: the FxHash mix, eight bytes at a time. A lookup hashes the query
/// name once per table probed (up to a few per query); SipHash spent about a quarter of
/// the user-space time of an owned answer on that. The keys are the config's names, not
/// the clients', so a keyed hash buys nothing here (clients only look up).
#[derive(Debug, Default, Clone, Copy)]
pub struct NameHasher(u64);

impl NameHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<NameHasher>>;

/// All owned names. Immutable; replaced whole by [`LiveTable::store`].
#[derive(Debug, Default)]
pub struct AnswerTable {
    /// Keyed by the lower-case wire-form name.
    exact: NameMap<NameAnswers>,
    /// Keyed by the wire-form parent of the `*` label.
    wildcard: NameMap<NameAnswers>,
}

impl AnswerTable {
    /// Builds the table from each name's current selection (`selections[i]` for
    /// `names[i]`): the targets chosen by health and failover, a CNAME, SERVFAIL, or
    /// `Forward` (then the name is left out and forwarded like any other).
    pub fn build(names: &[OwnedName], selections: &[Selection]) -> Self {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let by_name: HashMap<&Name, usize> = names
            .iter()
            .enumerate()
            .map(|(index, n)| (&n.name, index))
            .collect();
        let mut table = AnswerTable::default();
        for (index, name) in names.iter().enumerate() {
            let Some(answers) = build_answers(index, names, selections, &by_name, serial) else {
                continue;
            };
            if name.is_wildcard() {
                table
                    .wildcard
                    .insert(wire_name(&name.name.base_name()).into(), answers);
            } else {
                table.exact.insert(wire_name(&name.name).into(), answers);
            }
        }
        table
    }

    /// The answers for a lower-case wire-form name, or `None` if pathdns does not own it
    /// (it is then forwarded, never NXDOMAIN).
    pub fn lookup(&self, qname: &[u8]) -> Option<&NameAnswers> {
        if let Some(answers) = self.exact.get(qname) {
            return Some(answers);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        for suffix in parent_suffixes(qname) {
            if let Some(answers) = self.wildcard.get(suffix) {
                return Some(answers);
            }
            if self.exact.contains_key(suffix) {
                return None;
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The table the DNS path reads: loaded without locks, replaced atomically.
#[derive(Debug)]
pub struct LiveTable(ArcSwap<AnswerTable>);

impl LiveTable {
    pub fn new(table: AnswerTable) -> Self {
        LiveTable(ArcSwap::from_pointee(table))
    }

    /// A snapshot for one query (cheap: no lock, no reference-count traffic in the
    /// common case).
    pub fn load(&self) -> arc_swap::Guard<Arc<AnswerTable>> {
        self.0.load()
    }

    pub fn store(&self, table: AnswerTable) {
        self.0.store(Arc::new(table));
    }
}

/// Where an owned name's CNAME chain (possibly empty) ends.
enum ChainEnd<'a> {
    /// Addresses of an owned name; `owner` is the name they belong to (wire form, `None`
    /// for the question name), `apex` the owner of the SOA for NODATA.
    Addresses {
        owner: Option<Vec<u8>>,
        apex: Option<Vec<u8>>,
        ttl: u32,
        addresses: &'a [IpAddr],
    },
    /// The rest comes from upstream.
    Upstream(Name),
    /// Every target is down and the policy says SERVFAIL.
    Servfail,
}

/// `None` when the name is not to be owned now (its selection is `Forward`).
fn build_answers(
    index: usize,
    names: &[OwnedName],
    selections: &[Selection],
    by_name: &HashMap<&Name, usize>,
    serial: u32,
) -> Option<NameAnswers> {
    let chain = follow_chain(index, names, selections, by_name)?;
    let cname = cname_answer(&chain, serial);
    Some(match &chain.end {
        ChainEnd::Upstream(target) => NameAnswers {
            upstream: Some(UpstreamCname {
                links: chain.named_links.clone(),
                target: target.clone(),
            }),
            ..NameAnswers::servfail(cname)
        },
        ChainEnd::Servfail => NameAnswers::servfail(cname),
        ChainEnd::Addresses { .. } => {
            let soa_in_answer = chain.links.is_empty() && !names[index].is_wildcard();
            let with = |filter: &dyn Fn(&IpAddr) -> bool, soa_in_answer: bool| {
                let mut writer = BodyWriter::new();
                for (owner, ttl, target) in &chain.links {
                    writer.record(Section::Answer, owner_of(owner), *ttl, RData::Cname(target));
                }
                addresses_or_nodata(writer, &chain.end, filter, soa_in_answer, serial)
            };
            NameAnswers {
                a: with(&|ip| ip.is_ipv4(), false),
                aaaa: with(&|ip| ip.is_ipv6(), false),
                any: with(&|_| true, false),
                soa: with(&|_| false, soa_in_answer),
                other: with(&|_| false, false),
                cname,
                upstream: None,
            }
        }
    })
}

/// An owned name's CNAME chain through other owned names, and where it ends.
struct Chain<'a> {
    /// (owner wire form, `None` for the question name; TTL; target wire form).
    links: Vec<(Option<Vec<u8>>, u32, Vec<u8>)>,
    /// The same links by name, for answers completed upstream.
    named_links: Vec<CnameLink>,
    end: ChainEnd<'a>,
}

/// Follows `names[index]`'s selection through owned CNAME targets. `None` when the name is
/// not to be owned now (its selection, or that of its first link, is `Forward`).
fn follow_chain<'a>(
    index: usize,
    names: &[OwnedName],
    selections: &'a [Selection],
    by_name: &HashMap<&Name, usize>,
) -> Option<Chain<'a>> {
    let mut chain = Chain {
        links: Vec::new(),
        named_links: Vec::new(),
        end: ChainEnd::Servfail,
    };
    let mut current = index;
    let mut current_owner: Option<Vec<u8>> = None;
    chain.end = loop {
        let owned = &names[current];
        match selections.get(current)? {
            Selection::Addresses(addresses) => {
                let apex = if owned.is_wildcard() {
                    Some(wire_name(&owned.name.base_name()))
                } else {
                    current_owner.clone()
                };
                break ChainEnd::Addresses {
                    owner: current_owner.clone(),
                    apex,
                    ttl: owned.ttl,
                    addresses,
                };
            }
            Selection::Forward => {
                break ChainEnd::Upstream(chain.named_links.last()?.target.clone())
            }
            Selection::Servfail => break ChainEnd::Servfail,
            Selection::Cname(target) => {
                let target_wire = wire_name(target);
                chain
                    .links
                    .push((current_owner.clone(), owned.ttl, target_wire.clone()));
                chain.named_links.push(CnameLink {
                    owner: chain.named_links.last().map(|link| link.target.clone()),
                    ttl: owned.ttl,
                    target: target.clone(),
                });
                // Validation rejected loops, but a bound keeps a bad table finite anyway.
                match find_owned(target, by_name).filter(|_| chain.links.len() <= 8) {
                    Some(next) => {
                        current = next;
                        current_owner = Some(target_wire);
                    }
                    None => break ChainEnd::Upstream(target.clone()),
                }
            }
        }
    };
    Some(chain)
}

/// The answer to a CNAME question: the chain's first link, else SERVFAIL or NODATA.
fn cname_answer(chain: &Chain<'_>, serial: u32) -> Prepared {
    let mut writer = BodyWriter::new();
    if let Some((owner, ttl, target)) = chain.links.first() {
        writer.record(Section::Answer, owner_of(owner), *ttl, RData::Cname(target));
        writer.finish(Rcode::NoError, true)
    } else if matches!(chain.end, ChainEnd::Servfail) {
        Prepared::empty(Rcode::ServFail, false)
    } else {
        nodata(writer, &chain.end, serial)
    }
}

/// An owned name by exact name, or the wildcard that covers it.
fn find_owned(target: &Name, by_name: &HashMap<&Name, usize>) -> Option<usize> {
    if let Some(&owned) = by_name.get(target) {
        return Some(owned);
    }
    let mut parent = target.base_name();
    while !parent.is_root() {
        if let Ok(wildcard) = Name::from_ascii("*").and_then(|star| star.append_domain(&parent)) {
            if let Some(&owned) = by_name.get(&wildcard) {
                return Some(owned);
            }
        }
        if by_name.contains_key(&parent) {
            return None;
        }
        parent = parent.base_name();
    }
    None
}

fn owner_of(owner: &Option<Vec<u8>>) -> Owner<'_> {
    match owner {
        Some(name) => Owner::Name(name),
        None => Owner::Question,
    }
}

fn addresses_or_nodata(
    mut writer: BodyWriter,
    end: &ChainEnd<'_>,
    filter: &dyn Fn(&IpAddr) -> bool,
    soa_in_answer: bool,
    serial: u32,
) -> Prepared {
    let ChainEnd::Addresses {
        owner,
        ttl,
        addresses,
        ..
    } = end
    else {
        return writer.finish(Rcode::ServFail, false);
    };
    let mut any = false;
    for addr in addresses.iter().filter(|ip| filter(ip)) {
        writer.record(
            Section::Answer,
            owner_of(owner),
            *ttl,
            RData::Address(*addr),
        );
        any = true;
    }
    if soa_in_answer {
        write_soa(&mut writer, Section::Answer, end, serial);
        return writer.finish(Rcode::NoError, true);
    }
    if any {
        writer.finish(Rcode::NoError, true)
    } else {
        nodata(writer, end, serial)
    }
}

/// NOERROR with no records of the type, and the SOA in the authority section (RFC 2308).
fn nodata(mut writer: BodyWriter, end: &ChainEnd<'_>, serial: u32) -> Prepared {
    write_soa(&mut writer, Section::Authority, end, serial);
    writer.finish(Rcode::NoError, true)
}

fn write_soa(writer: &mut BodyWriter, section: Section, end: &ChainEnd<'_>, serial: u32) {
    if let ChainEnd::Addresses { apex, ttl, .. } = end {
        writer.record(
            section,
            owner_of(apex),
            *ttl,
            RData::Soa {
                mname: SOA_MNAME,
                rname: SOA_RNAME,
                serial,
                minimum: *ttl,
            },
        );
    }
}

/// A name in uncompressed, lower-case wire form.
pub fn wire_name(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AnswerSpec, Role, Target};

    fn owned(name: &str, answer: AnswerSpec) -> OwnedName {
        OwnedName {
            name: Name::from_ascii(name).expect("name"),
            answer,
            ttl: 30,
            role: Role::Custom,
            origin: "test".into(),
            health: crate::config::HealthSettings::unprobed(),
            discover: None,
        }
    }

    fn targets(addrs: &[(&str, u8)]) -> AnswerSpec {
        AnswerSpec::Targets(
            addrs
                .iter()
                .map(|(addr, priority)| Target {
                    addr: addr.parse().expect("addr"),
                    priority: *priority,
                })
                .collect(),
        )
    }

    fn wire(name: &str) -> Vec<u8> {
        wire_name(&Name::from_ascii(name).expect("name"))
    }

    fn build(names: &[OwnedName]) -> AnswerTable {
        let selections: Vec<Selection> = names
            .iter()
            .map(|n| crate::failover::select(n, |_| crate::health::Verdict::Unknown, None).0)
            .collect();
        AnswerTable::build(names, &selections)
    }

    fn table() -> AnswerTable {
        build(&[
            owned("oss.example.", targets(&[("10.0.0.1", 1)])),
            owned("*.oss.example.", targets(&[("10.0.0.2", 1)])),
            owned("mybucket.oss.example.", targets(&[("10.0.0.3", 1)])),
            owned("reg.example.", targets(&[("10.0.0.4", 1), ("10.0.0.5", 2)])),
            owned(
                "alias.example.",
                AnswerSpec::Cname(Name::from_ascii("x.oss.example.").expect("n")),
            ),
            owned(
                "away.example.",
                AnswerSpec::Cname(Name::from_ascii("elsewhere.example.").expect("n")),
            ),
        ])
    }

    fn answer_count(table: &AnswerTable, name: &str, qtype: u16) -> Option<u16> {
        match table.lookup(&wire(name))?.for_type(qtype) {
            Answer::Ready(prepared) => Some(prepared.answers),
            _ => None,
        }
    }

    #[test]
    fn exact_names_win_over_wildcards() {
        let table = table();
        let Answer::Ready(bucket) = table
            .lookup(&wire("mybucket.oss.example."))
            .expect("owned")
            .for_type(TYPE_A)
        else {
            panic!("ready")
        };
        assert!(bucket.body.ends_with(&[10, 0, 0, 3]));
        let Answer::Ready(other) = table
            .lookup(&wire("other.oss.example."))
            .expect("owned")
            .for_type(TYPE_A)
        else {
            panic!("ready")
        };
        assert!(other.body.ends_with(&[10, 0, 0, 2]));
    }

    #[test]
    fn rfc4592_wildcards_cover_deeper_names_unless_an_owned_name_stands_between() {
        let table = table();
        assert!(table.lookup(&wire("a.b.oss.example.")).is_some());
        assert!(table.lookup(&wire("deep.mybucket.oss.example.")).is_none());
        assert!(table.lookup(&wire("example.")).is_none());
        assert!(table.lookup(&wire("sibling.example.")).is_none());
    }

    #[test]
    fn only_the_primary_group_answers_before_health_is_known() {
        let table = table();
        assert_eq!(answer_count(&table, "reg.example.", TYPE_A), Some(1));
    }

    #[test]
    fn cname_chains_into_a_wildcard_carry_the_target_records() {
        let table = table();
        assert_eq!(answer_count(&table, "alias.example.", TYPE_A), Some(2));
        assert_eq!(answer_count(&table, "alias.example.", TYPE_CNAME), Some(1));
        // AAAA: the CNAME, then NODATA for the target with the wildcard's SOA.
        let Answer::Ready(aaaa) = table
            .lookup(&wire("alias.example."))
            .expect("owned")
            .for_type(TYPE_AAAA)
        else {
            panic!("ready")
        };
        assert_eq!((aaaa.answers, aaaa.authorities), (1, 1));
    }

    #[test]
    fn cname_leaving_the_table_is_chased_upstream() {
        let table = table();
        let answers = table.lookup(&wire("away.example.")).expect("owned");
        match answers.for_type(TYPE_A) {
            Answer::ChaseUpstream(upstream) => {
                assert_eq!(upstream.target.to_ascii(), "elsewhere.example.");
                assert_eq!(upstream.links.len(), 1);
            }
            other => panic!("expected a chase, got {other:?}"),
        }
        assert!(matches!(answers.for_type(TYPE_CNAME), Answer::Ready(_)));
        assert!(matches!(answers.for_type(TYPE_AXFR), Answer::Refused));
    }
}
