//! The RFC 8906 test matrix ("A Common Operational Problem in DNS Servers: Failure to
//! Communicate", section 8), run with `dig` against the real pathdns on loopback, for an owned
//! name and for a name forwarded to a real dnsmasq upstream. Each test is named after the
//! section it checks; the EDNS cases run over UDP and again over TCP.
//!
//! The RFC's queries ask for the zone's SOA. For the owned name we ask exactly that (pathdns
//! answers an owned name's SOA from its table, with AA); for the forwarded name we ask for
//! its A record, which the upstream has, and expect the answer without AA (pathdns is a cache
//! for it, not its authority). Where the RFC expects "aa", an owned name must have it and a
//! forwarded name must not.
//!
//! Below the matrix: bugs found by fuzzing, each with the test that keeps it fixed.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::upstream::{FakeUpstream, Reply, Via};
use common::*;
use hickory_proto::op::Message;

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
const FORWARDED: &str = "www.upstream.example.";
const FORWARDED_ADDR: &str = "192.0.2.1";
/// An owned name with 100 addresses: 1,600 bytes of answer, more than any UDP limit.
const BIG_OWNED: &str = "many.internal.example.";
/// A forwarded name with 100 addresses at the upstream.
const BIG_FORWARDED: &str = "big.upstream.example.";
const BIG: usize = 100;

/// One side of the matrix: a name and the query type that has an answer for it.
#[derive(Debug, Clone, Copy)]
struct Target {
    name: &'static str,
    qtype: &'static str,
    owned: bool,
}

const OWNED: Target = Target {
    name: REGISTRY,
    qtype: "SOA",
    owned: true,
};

const FORWARDED_A: Target = Target {
    name: FORWARDED,
    qtype: "A",
    owned: false,
};

/// The upstream and the agent, both on loopback ports of their own.
struct Servers {
    _upstream: Dnsmasq,
    agent: Agent,
}

fn start() -> Servers {
    let big_records: Vec<(String, String)> = (1..=BIG)
        .map(|i| {
            (
                BIG_FORWARDED.trim_end_matches('.').to_owned(),
                format!("198.51.100.{i}"),
            )
        })
        .collect();
    let mut records: Vec<(&str, &str)> = vec![(FORWARDED.trim_end_matches('.'), FORWARDED_ADDR)];
    records.extend(big_records.iter().map(|(n, a)| (n.as_str(), a.as_str())));
    // `--local`: dnsmasq answers its own NODATA and NXDOMAIN for upstream.example instead of
    // REFUSED, as a real upstream would.
    let upstream = Dnsmasq::start_with(&records, &["--local=/upstream.example/"]);
    let targets: Vec<String> = (1..=BIG)
        .map(|i| format!("\"10.20.{}.{}\"", i / 250, i % 250))
        .collect();
    let extra = format!(
        "\n[[name]]\nname = \"{}\"\ntargets = [{}]\n",
        BIG_OWNED.trim_end_matches('.'),
        targets.join(", ")
    );
    let agent = Agent::start(&registry_config(upstream.addr, &extra));
    Servers {
        _upstream: upstream,
        agent,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];

/// What dig printed, parsed.
#[derive(Debug, Default)]
struct Dig {
    text: String,
    opcode: String,
    status: String,
    /// Header flags: qr, aa, tc, rd, ra, ad, cd.
    flags: BTreeSet<String>,
    /// dig prints `MBZ: 0x...` when the header's Z bit is set.
    header_mbz: bool,
    counts: [usize; 4],
    opt: Option<Opt>,
    answers: Vec<String>,
    authority: Vec<String>,
    size: usize,
}

#[derive(Debug, Default)]
struct Opt {
    version: u8,
    flags: BTreeSet<String>,
    /// dig prints `MBZ: 0x...` when undefined EDNS flag bits are set.
    mbz: bool,
    /// Option names as dig prints them: COOKIE, NSID, EXPIRE, CLIENT-SUBNET, OPT=100, ...
    options: Vec<(String, String)>,
}

impl Dig {
    fn has(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    fn opt(&self) -> &Opt {
        self.opt
            .as_ref()
            .unwrap_or_else(|| panic!("no OPT record in the response:\n{}", self.text))
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.opt()
            .options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs dig against the agent; `args` are dig's query options, type and name.
fn dig(agent: &Agent, transport: Transport, args: &[&str]) -> Dig {
    let binary = which("dig").expect(
        "dig is not installed: run `sudo tests/run.sh`, which installs it \
         (apt-get install dnsutils)",
    );
    let mut command = Command::new(binary);
    command
        // -r: no ~/.digrc; one try, a 5 s wait: an unanswered query fails the test.
        .args(["-r", "+tries=1", "+time=5", "+nosearch"])
        .arg(format!("@{}", agent.addr.ip()))
        .args(["-p", &agent.addr.port().to_string()])
        .args(args);
    if transport == Transport::Tcp {
        command.arg("+tcp");
    }
    let output = command.output().expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let reply = parse(&text);
    let context = format!("dig {} ({transport:?})", args.join(" "));
    assert!(
        output.status.success() && !reply.status.is_empty(),
        "{context}: no response (exit {:?}):\n{text}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("malformed") && !text.contains("extra bytes"),
        "{context}: dig reports a malformed response:\n{text}"
    );
    reply
}

fn parse(text: &str) -> Dig {
    let mut reply = Dig {
        text: text.to_owned(),
        ..Dig::default()
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(";; ->>HEADER<<- ") {
            for part in rest.split(", ") {
                if let Some(opcode) = part.strip_prefix("opcode: ") {
                    reply.opcode = opcode.to_owned();
                } else if let Some(status) = part.strip_prefix("status: ") {
                    reply.status = status.to_owned();
                }
            }
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            let mut parts = rest.split(';');
            reply.flags = parts
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            for part in parts {
                let part = part.trim();
                if part.starts_with("MBZ") {
                    reply.header_mbz = true;
                }
                for (i, label) in ["QUERY: ", "ANSWER: ", "AUTHORITY: ", "ADDITIONAL: "]
                    .iter()
                    .enumerate()
                {
                    for piece in part.split(", ") {
                        if let Some(n) = piece.strip_prefix(label) {
                            reply.counts[i] = n.trim().parse().unwrap_or(usize::MAX);
                        }
                    }
                }
            }
        } else if let Some(rest) = line.strip_prefix("; EDNS: ") {
            let mut opt = Opt::default();
            for part in rest.split(';').flat_map(|p| p.split(", ")) {
                let part = part.trim();
                if let Some(version) = part.strip_prefix("version: ") {
                    opt.version = version.parse().unwrap_or(u8::MAX);
                } else if let Some(flags) = part.strip_prefix("flags:") {
                    opt.flags = flags.split_whitespace().map(str::to_owned).collect();
                } else if part.starts_with("MBZ") {
                    opt.mbz = true;
                }
            }
            reply.opt = Some(opt);
            section = "opt";
        } else if let Some(rest) = line.strip_prefix(";; MSG SIZE  rcvd: ") {
            reply.size = rest.trim().parse().unwrap_or(usize::MAX);
        } else if line.starts_with(";; ") && line.ends_with("SECTION:") {
            section = match line {
                ";; ANSWER SECTION:" => "answer",
                ";; AUTHORITY SECTION:" => "authority",
                _ => "",
            };
        } else if line.is_empty() {
            section = "";
        } else if section == "opt" {
            if let Some((name, value)) = line.trim_start_matches("; ").split_once(':') {
                if let Some(opt) = reply.opt.as_mut() {
                    opt.options.push((name.to_owned(), value.trim().to_owned()));
                }
            }
        } else if section == "answer" {
            reply.answers.push(line.to_owned());
        } else if section == "authority" {
            reply.authority.push(line.to_owned());
        }
    }
    reply
}

/// Records of `rtype` in `lines` (dig's `owner TTL class type data` lines).
fn of_type<'a>(lines: &'a [String], rtype: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|line| line.split_whitespace().nth(3) == Some(rtype))
        .collect()
}

/// The answer the target has: its SOA (owned) or its A record (forwarded), AA only when
/// owned, RD not invented, the header's Z bit clear.
fn expect_answer(reply: &Dig, target: Target) {
    let text = &reply.text;
    assert_eq!(reply.status, "NOERROR", "{text}");
    assert!(reply.has("qr"), "QR: {text}");
    assert_eq!(reply.has("aa"), target.owned, "AA iff owned: {text}");
    assert!(!reply.has("tc"), "TC: {text}");
    assert!(!reply.header_mbz, "Z copied into the response: {text}");
    let found = of_type(&reply.answers, target.qtype);
    assert_eq!(found.len(), 1, "one {} record: {text}", target.qtype);
    if !target.owned {
        assert!(found[0].ends_with(FORWARDED_ADDR), "{text}");
    }
}

/// RFC 6891 section 6.1.3: BADVERS, no answer, our OPT with version 0.
fn expect_badvers(reply: &Dig) {
    let text = &reply.text;
    assert_eq!(reply.status, "BADVERS", "{text}");
    assert!(reply.answers.is_empty(), "no answer with BADVERS: {text}");
    assert!(!reply.has("aa"), "no AA with BADVERS: {text}");
    assert_eq!(reply.opt().version, 0, "our EDNS version: {text}");
}

fn expect_edns0(reply: &Dig) {
    let opt = reply.opt();
    assert_eq!(opt.version, 0, "{}", reply.text);
    assert!(!opt.mbz, "undefined EDNS flags echoed: {}", reply.text);
}

/// dig's arguments: `options`, then the target's type and name.
fn ask(options: &[&'static str], target: Target) -> Vec<&'static str> {
    let mut args = options.to_vec();
    args.extend([target.qtype, target.name]);
    args
}

/// Starts the servers, asks dig with `options` for the target over UDP and then over TCP,
/// and hands each reply to `check`.
fn over_both(target: Target, options: &[&'static str], check: impl Fn(&Dig)) {
    let servers = start();
    for transport in BOTH {
        check(&dig(&servers.agent, transport, &ask(options, target)));
    }
}

/// The named pair of tests `..._owned` and `..._forwarded` that run one case function,
/// for [`OWNED`] and [`FORWARDED_A`] or for the two arguments given. The names are spelt
/// out in full: CI output and the README quote them.
macro_rules! owned_and_forwarded {
    ($case:ident, $owned:ident, $forwarded:ident) => {
        owned_and_forwarded!($case(OWNED, FORWARDED_A), $owned, $forwarded);
    };
    ($case:ident($owned_arg:expr, $forwarded_arg:expr), $owned:ident, $forwarded:ident) => {
        #[test]
        fn $owned() {
            $case($owned_arg);
        }

        #[test]
        fn $forwarded() {
            $case($forwarded_arg);
        }
    };
}

// --- 8.1 Basic DNS ---------------------------------------------------------------------------

/// 8.1.1: is the server configured for the zone? A plain query gets the answer, with AA for
/// an owned name, RD not set (it was not asked for), and no OPT (none was sent).
fn is_configured(target: Target) {
    over_both(target, &["+noedns", "+noad", "+norec"], |reply| {
        expect_answer(reply, target);
        assert!(!reply.has("rd"), "RD invented: {}", reply.text);
        assert!(!reply.has("ad"), "AD: {}", reply.text);
        assert!(reply.opt.is_none(), "OPT without EDNS: {}", reply.text);
    });
}

owned_and_forwarded!(
    is_configured,
    rfc8906_8_1_1_is_the_server_configured_owned,
    rfc8906_8_1_1_is_the_server_configured_forwarded
);

/// 8.1.2: an unknown type is NOERROR with an empty answer (NODATA), with the SOA and AA when
/// the name is owned.
fn unknown_type(target: Target) {
    let servers = start();
    for transport in BOTH {
        let args = ["+noedns", "+noad", "+norec", "TYPE1000", target.name];
        let reply = dig(&servers.agent, transport, &args);
        assert_eq!(reply.status, "NOERROR", "{}", reply.text);
        assert!(reply.answers.is_empty(), "{}", reply.text);
        assert_eq!(reply.has("aa"), target.owned, "{}", reply.text);
        if target.owned {
            assert_eq!(of_type(&reply.authority, "SOA").len(), 1, "{}", reply.text);
        }
    }
}

owned_and_forwarded!(
    unknown_type,
    rfc8906_8_1_2_unknown_types_owned,
    rfc8906_8_1_2_unknown_types_forwarded
);

/// 8.1.3.1: CD=1 queries are answered.
fn cd_queries(target: Target) {
    over_both(target, &["+noedns", "+noad", "+norec", "+cd"], |reply| {
        expect_answer(reply, target);
    });
}

owned_and_forwarded!(
    cd_queries,
    rfc8906_8_1_3_1_cd_queries_owned,
    rfc8906_8_1_3_1_cd_queries_forwarded
);

/// 8.1.3.2: AD=1 queries are answered; pathdns validates nothing, so AD stays clear.
fn ad_queries(target: Target) {
    over_both(target, &["+noedns", "+norec", "+ad"], |reply| {
        expect_answer(reply, target);
        assert!(
            !reply.has("ad"),
            "AD set by a non-validator: {}",
            reply.text
        );
    });
}

owned_and_forwarded!(
    ad_queries,
    rfc8906_8_1_3_2_ad_queries_owned,
    rfc8906_8_1_3_2_ad_queries_forwarded
);

/// 8.1.3.3: the reserved header bit (Z) is answered and not copied to the response.
fn reserved_bit(target: Target) {
    over_both(target, &["+noedns", "+noad", "+norec", "+zflag"], |reply| {
        // expect_answer checks that MBZ is absent.
        expect_answer(reply, target);
    });
}

owned_and_forwarded!(
    reserved_bit,
    rfc8906_8_1_3_3_reserved_bit_owned,
    rfc8906_8_1_3_3_reserved_bit_forwarded
);

/// 8.1.4: an unknown opcode is NOTIMP, without answer, AA or RA; with a question (owned or
/// forwarded name) and header-only as the RFC sends it.
fn unknown_opcode(target: Target) {
    let servers = start();
    for transport in BOTH {
        for args in [
            ask(&["+noedns", "+noad", "+opcode=15", "+norec"], target),
            vec!["+noedns", "+noad", "+opcode=15", "+norec", "+header-only"],
        ] {
            let reply = dig(&servers.agent, transport, &args);
            let text = &reply.text;
            assert_eq!(reply.status, "NOTIMP", "{text}");
            assert_eq!(reply.opcode, "RESERVED15", "opcode echoed: {text}");
            assert!(reply.answers.is_empty(), "{text}");
            assert!(!reply.has("aa"), "{text}");
            // RA belongs to replies to QUERY (RFC 1035 section 4.1.1); NSD and Knot leave
            // it clear on NOTIMP too.
            assert!(!reply.has("ra"), "RA on a reply to opcode 15: {text}");
            assert!(!reply.header_mbz, "{text}");
        }
    }
}

owned_and_forwarded!(
    unknown_opcode,
    rfc8906_8_1_4_unknown_opcodes_owned,
    rfc8906_8_1_4_unknown_opcodes_forwarded
);

/// 8.1.5: TCP queries are answered (RFC 7766).
fn tcp(target: Target) {
    let servers = start();
    let reply = dig(
        &servers.agent,
        Transport::Tcp,
        &ask(&["+noedns", "+noad", "+norec"], target),
    );
    expect_answer(&reply, target);
}

owned_and_forwarded!(tcp, rfc8906_8_1_5_tcp_owned, rfc8906_8_1_5_tcp_forwarded);

// --- 8.2 Extended DNS ------------------------------------------------------------------------

/// 8.2.1: a plain EDNS query gets the answer and an OPT record of version 0, with no
/// options.
fn minimal_edns(target: Target) {
    over_both(
        target,
        &["+nocookie", "+edns=0", "+noad", "+norec"],
        |reply| {
            expect_answer(reply, target);
            expect_edns0(reply);
            assert!(reply.opt().options.is_empty(), "{}", reply.text);
        },
    );
}

owned_and_forwarded!(
    minimal_edns,
    rfc8906_8_2_1_minimal_edns_owned,
    rfc8906_8_2_1_minimal_edns_forwarded
);

/// dig's options for an EDNS version 1 query (no fallback to version 0, no cookie).
const EDNS1: [&str; 5] = ["+nocookie", "+edns=1", "+noednsneg", "+noad", "+norec"];

/// [`EDNS1`] and one more option.
fn edns1_and(option: &'static str) -> Vec<&'static str> {
    let mut options = EDNS1.to_vec();
    options.push(option);
    options
}

/// 8.2.2: EDNS version 1 gets BADVERS and version 0 (RFC 6891 section 6.1.3).
fn version_negotiation(target: Target) {
    over_both(target, &EDNS1, expect_badvers);
}

owned_and_forwarded!(
    version_negotiation,
    rfc8906_8_2_2_edns_version_negotiation_owned,
    rfc8906_8_2_2_edns_version_negotiation_forwarded
);

/// 8.2.3: an unknown EDNS option is ignored and not echoed (RFC 6891 section 6.1.2).
fn unknown_option(target: Target) {
    let options = ["+nocookie", "+edns=0", "+noad", "+norec", "+ednsopt=100"];
    over_both(target, &options, |reply| {
        expect_answer(reply, target);
        expect_edns0(reply);
        assert_eq!(reply.option("OPT=100"), None, "{}", reply.text);
    });
}

owned_and_forwarded!(
    unknown_option,
    rfc8906_8_2_3_unknown_edns_options_owned,
    rfc8906_8_2_3_unknown_edns_options_forwarded
);

/// 8.2.4: unknown EDNS flags are answered and not echoed: MBZ clear (RFC 6891 section
/// 6.1.4). 0x40 is the RFC's; 0x80 too, and with DO (which is copied, RFC 3225) alongside.
fn unknown_flags(target: Target) {
    let servers = start();
    for transport in BOTH {
        for flags in [
            &["+ednsflags=0x40"][..],
            &["+ednsflags=0x80"][..],
            &["+ednsflags=0x80", "+dnssec"][..],
        ] {
            let mut options = vec!["+nocookie", "+edns=0", "+noad", "+norec"];
            options.extend(flags);
            let reply = dig(&servers.agent, transport, &ask(&options, target));
            expect_answer(&reply, target);
            expect_edns0(&reply);
            assert_eq!(
                reply.opt().flags.contains("do"),
                flags.contains(&"+dnssec"),
                "DO copied: {}",
                reply.text
            );
        }
    }
}

owned_and_forwarded!(
    unknown_flags,
    rfc8906_8_2_4_unknown_edns_flags_owned,
    rfc8906_8_2_4_unknown_edns_flags_forwarded
);

/// 8.2.5: EDNS version 1 with unknown flags: BADVERS, MBZ clear.
fn version_with_flags(target: Target) {
    over_both(target, &edns1_and("+ednsflags=0x40"), |reply| {
        expect_badvers(reply);
        assert!(!reply.opt().mbz, "{}", reply.text);
    });
}

owned_and_forwarded!(
    version_with_flags,
    rfc8906_8_2_5_edns_version_negotiation_with_unknown_flags_owned,
    rfc8906_8_2_5_edns_version_negotiation_with_unknown_flags_forwarded
);

/// 8.2.6: EDNS version 1 with an unknown option: BADVERS, the option not echoed.
fn version_with_option(target: Target) {
    over_both(target, &edns1_and("+ednsopt=100"), |reply| {
        expect_badvers(reply);
        assert_eq!(reply.option("OPT=100"), None, "{}", reply.text);
    });
}

owned_and_forwarded!(
    version_with_option,
    rfc8906_8_2_6_edns_version_negotiation_with_unknown_options_owned,
    rfc8906_8_2_6_edns_version_negotiation_with_unknown_options_forwarded
);

/// 8.2.7: a response too large for UDP comes back truncated (TC, no records, within the
/// client's limit) and whole over TCP; dig itself retries over TCP and gets everything.
fn truncated(name: &'static str) {
    let servers = start();
    let agent = &servers.agent;
    for (options, limit) in [
        (&["+noedns", "+norec", "+ignore"][..], 512),
        (&["+edns=0", "+bufsize=512", "+norec", "+ignore"][..], 512),
        (&["+edns=0", "+bufsize=1232", "+norec", "+ignore"][..], 1232),
        (&["+edns=0", "+bufsize=4096", "+norec", "+ignore"][..], 1232),
    ] {
        let mut args = options.to_vec();
        args.extend(["A", name]);
        let reply = dig(agent, Transport::Udp, &args);
        let text = &reply.text;
        assert_eq!(reply.status, "NOERROR", "{text}");
        assert!(reply.has("tc"), "TC over UDP: {text}");
        assert!(
            reply.size <= limit,
            "{} bytes over {limit}: {text}",
            reply.size
        );
        assert_eq!(reply.counts[1], 0, "no partial RRset: {text}");
        if args.contains(&"+edns=0") {
            expect_edns0(&reply);
        }
    }
    for (transport, options) in [
        (Transport::Tcp, &["+edns=0", "+norec"][..]),
        (Transport::Tcp, &["+noedns", "+norec"][..]),
        // Without +ignore, dig sees TC over UDP and asks again over TCP.
        (Transport::Udp, &["+edns=0", "+norec"][..]),
    ] {
        let mut args = options.to_vec();
        args.extend(["A", name]);
        let reply = dig(agent, transport, &args);
        let text = &reply.text;
        assert_eq!(reply.status, "NOERROR", "{text}");
        assert!(!reply.has("tc"), "{text}");
        assert_eq!(
            of_type(&reply.answers, "A").len(),
            BIG,
            "the whole RRset: {text}"
        );
    }
}

owned_and_forwarded!(
    truncated(BIG_OWNED, BIG_FORWARDED),
    rfc8906_8_2_7_truncated_responses_owned,
    rfc8906_8_2_7_truncated_responses_forwarded
);

/// 8.2.8: DO=1 queries are answered with OPT version 0 (no DNSSEC here; DO may be
/// copied, RFC 3225).
fn dnssec(target: Target) {
    let options = ["+nocookie", "+edns=0", "+noad", "+norec", "+dnssec"];
    over_both(target, &options, |reply| {
        expect_answer(reply, target);
        expect_edns0(reply);
    });
}

owned_and_forwarded!(
    dnssec,
    rfc8906_8_2_8_dnssec_queries_owned,
    rfc8906_8_2_8_dnssec_queries_forwarded
);

/// 8.2.9: EDNS version 1 with DO=1: BADVERS.
fn version_with_dnssec(target: Target) {
    over_both(target, &edns1_and("+dnssec"), expect_badvers);
}

owned_and_forwarded!(
    version_with_dnssec,
    rfc8906_8_2_9_edns_version_negotiation_with_dnssec_owned,
    rfc8906_8_2_9_edns_version_negotiation_with_dnssec_forwarded
);

/// 8.2.10: several defined options at once (COOKIE, NSID, EXPIRE, CLIENT-SUBNET), and each
/// of COOKIE and NSID alone: answered, OPT version 0. pathdns implements none of them, so
/// none comes back; if a COOKIE ever does, it must carry the client's cookie (RFC 7873).
fn defined_options(target: Target) {
    let servers = start();
    for transport in BOTH {
        for options in [
            &["+cookie", "+nsid", "+expire", "+subnet=0.0.0.0/0"][..],
            &["+cookie"][..],
            &["+nsid"][..],
        ] {
            let mut args = vec!["+edns=0", "+noad", "+norec"];
            args.extend(options);
            let reply = dig(&servers.agent, transport, &ask(&args, target));
            expect_answer(&reply, target);
            expect_edns0(&reply);
            if let Some(cookie) = reply.option("COOKIE") {
                assert!(
                    cookie
                        .split_whitespace()
                        .next()
                        .is_some_and(|c| c.len() >= 16),
                    "a COOKIE without the client cookie: {}",
                    reply.text
                );
            }
            let known = ["COOKIE", "NSID"];
            for (name, _) in &reply.opt().options {
                assert!(
                    known.contains(&name.as_str()),
                    "{name} echoed: {}",
                    reply.text
                );
            }
        }
    }
}

owned_and_forwarded!(
    defined_options,
    rfc8906_8_2_10_multiple_defined_edns_options_owned,
    rfc8906_8_2_10_multiple_defined_edns_options_forwarded
);

// --- RFC 8945 (TSIG) -------------------------------------------------------------------------

/// A key pathdns cannot know (it holds none): `dig -y`, HMAC-SHA256.
const TSIG_KEY: &str = "hmac-sha256:key1.example:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LWtleQ==";

/// RFC 8945 section 5.2.2 (and 5.3.2): a TSIG-signed query with a key the server does not
/// know gets NOTAUTH and an unsigned TSIG record (MAC size 0) with the client's key name and
/// algorithm and error BADKEY, no answer. Owned and forwarded names alike: pathdns does not
/// forward a signed query with its signature dropped, and the upstream never sees it.
fn tsig_unknown_key(target: Target) {
    let servers = start();
    for transport in BOTH {
        for edns in ["+noedns", "+edns=0"] {
            let args = ask(&[edns, "+noad", "+norec", "-y", TSIG_KEY], target);
            let reply = dig(&servers.agent, transport, &args);
            let text = &reply.text;
            assert_eq!(reply.status, "NOTAUTH", "{text}");
            assert!(reply.answers.is_empty(), "no answer: {text}");
            assert!(!reply.has("aa"), "{text}");
            let tsig: Vec<&str> = text
                .lines()
                .filter(|line| line.split_whitespace().nth(3) == Some("TSIG"))
                .collect();
            assert_eq!(tsig.len(), 1, "one TSIG record: {text}");
            let fields: Vec<&str> = tsig[0].split_whitespace().collect();
            assert_eq!(fields[0], "key1.example.", "the key name: {text}");
            assert_eq!(fields[4], "hmac-sha256.", "the algorithm: {text}");
            // dig prints: time signed, fudge, MAC size, [MAC,] original ID, error, other len.
            assert_eq!(fields[7], "0", "MAC size 0 (unsigned): {text}");
            assert_eq!(fields[9], "BADKEY", "TSIG error: {text}");
            assert_eq!(
                reply.opt.is_some(),
                edns == "+edns=0",
                "OPT iff asked: {text}"
            );
        }
    }
    assert_eq!(
        servers
            ._upstream
            .queries_for(target.name.trim_end_matches('.')),
        0,
        "a signed query never reaches the upstream"
    );
}

owned_and_forwarded!(
    tsig_unknown_key,
    rfc8945_5_2_2_unknown_key_is_notauth_badkey_owned,
    rfc8945_5_2_2_unknown_key_is_notauth_badkey_forwarded
);

/// TSIG RDATA (RFC 8945 section 4.2): hmac-sha256, a time, fudge 300, a 32-byte MAC,
/// original ID `id`, no error, no other data.
fn tsig_rdata(id: u16) -> Vec<u8> {
    let mut rdata = common::packets::name("hmac-sha256.");
    rdata.extend_from_slice(&[0, 0, 0x65, 0x43, 0x21, 0x00, 1, 44, 0, 32]);
    rdata.extend_from_slice(&[7; 32]);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    rdata
}

/// RFC 8945 section 5.1: a TSIG record that is not the last additional record, or whose
/// RDATA does not parse, is FORMERR; the same record in its place gets NOTAUTH (BADKEY).
#[test]
fn rfc8945_5_1_a_tsig_record_out_of_place_or_malformed_is_formerr() {
    use common::packets::{name, opt, raw_query, record};
    let servers = start();
    let qname = name(FORWARDED);
    let key = name("key1.example.");
    let tsig = record(&key, 250, 0, &tsig_rdata(0x4242));
    let signed = |additionals: &[Vec<u8>]| {
        let mut packet = raw_query(0x4242, &qname, 1, false);
        packet[11] = additionals.len() as u8;
        for record in additionals {
            packet.extend_from_slice(record);
        }
        packet
    };
    let mut cut = tsig_rdata(0x4242);
    cut.truncate(cut.len() - 2);
    let cases = [
        ("TSIG last", signed(&[opt(&[]), tsig.clone()]), 9),
        ("TSIG before the OPT", signed(&[tsig.clone(), opt(&[])]), 1),
        ("two TSIG records", signed(&[tsig.clone(), tsig.clone()]), 1),
        (
            "TSIG RDATA cut short",
            signed(&[record(&key, 250, 0, &cut)]),
            1,
        ),
    ];
    for (what, packet, expected) in cases {
        let reply = exchange_raw_udp(servers.agent.addr, &packet, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{what}: no reply"));
        Message::from_vec(&reply).unwrap_or_else(|err| panic!("{what}: malformed reply: {err}"));
        eprintln!("{what}: rcode {}", reply[3] & 0x0f);
        assert_eq!(reply[3] & 0x0f, expected, "{what}: {reply:02x?}");
    }
}

/// The matrix's checks can fail: dig's report of a response that breaks them is caught.
#[test]
fn the_checks_catch_a_nonconforming_response() {
    let good = "\
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1
;; flags: qr ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232

;; ANSWER SECTION:
www.upstream.example.\t300\tIN\tA\t192.0.2.1

;; MSG SIZE  rcvd: 70
";
    let reply = parse(good);
    assert_eq!(reply.counts, [1, 1, 0, 1]);
    assert_eq!(reply.size, 70);
    expect_answer(&reply, FORWARDED_A);
    expect_edns0(&reply);
    let broken = [
        good.replace("flags: qr ra;", "flags: qr ra; MBZ: 0x4;"),
        good.replace("flags: qr ra;", "flags: qr aa ra;"),
        good.replace("status: NOERROR", "status: SERVFAIL"),
        good.replace("192.0.2.1", "192.0.2.2"),
        good.replace("www.upstream.example.\t300\tIN\tA\t192.0.2.1\n", ""),
    ];
    for text in broken {
        let reply = parse(&text);
        let caught = std::panic::catch_unwind(|| expect_answer(&reply, FORWARDED_A));
        assert!(caught.is_err(), "passed expect_answer:\n{text}");
    }
    for text in [
        good.replace("flags:; udp", "flags:; MBZ: 0x0040, udp"),
        good.replace("version: 0", "version: 1"),
    ] {
        let reply = parse(&text);
        let caught = std::panic::catch_unwind(|| expect_edns0(&reply));
        assert!(caught.is_err(), "passed expect_edns0:\n{text}");
    }
    let with_option = parse(&good.replace("udp: 1232\n", "udp: 1232\n; OPT=100: 61 62 (\"ab\")\n"));
    assert_eq!(with_option.option("OPT=100"), Some("61 62 (\"ab\")"));
    let badvers = parse(&good.replace("status: NOERROR", "status: BADVERS"));
    assert!(std::panic::catch_unwind(|| expect_badvers(&badvers)).is_err());
}

// --- Bugs found by fuzzing (see fuzz/src/lib.rs) -------------------------------------------

/// RFC 1035 section 3.1: a name is at most 255 octets. A question name of 256 is malformed:
/// FORMERR, as for 257 (which pathdns already rejects).
#[test]
fn rfc1035_3_1_question_name_of_256_octets_is_formerr() {
    let servers = start();
    for labels in [4usize, 3] {
        // 3 labels of 63 plus one of 62: 256 octets with the root; 4 of 63: 257.
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..labels {
            packet.push(63);
            packet.extend_from_slice(&[b'a'; 63]);
        }
        if labels == 3 {
            packet.push(62);
            packet.extend_from_slice(&[b'a'; 62]);
        }
        packet.push(0);
        let name_len = packet.len() - 12;
        packet.extend_from_slice(&[0, 1, 0, 1]);
        let reply = exchange_raw_udp(servers.agent.addr, &packet, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no reply to a {name_len}-octet name"));
        assert_eq!(reply[3] & 0x0f, 1, "{name_len}-octet name: FORMERR");
    }
}

/// An upstream reply whose opcode is UPDATE (or anything but QUERY) is not an answer to our
/// query. hickory-resolver does not check the opcode, and hickory-proto decodes a record
/// with RDLENGTH 0 as an UPDATE placeholder that encodes back as an A record with no
/// address (`dig`: "malformed message packet"); pathdns used to pass that on and cache it.
/// Now such a reply is refused: the client gets SERVFAIL, well-formed, and nothing is
/// cached (the second query reaches the upstream again).
#[test]
fn upstream_reply_with_opcode_update_is_not_passed_on() {
    let upstream = odd_upstream();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"{}\"]\n\
         timeout = \"1500ms\"\n",
        upstream.addr
    );
    let agent = Agent::start(&config);
    let packet = common::query("www.odd.example.", hickory_proto::rr::RecordType::A, true)
        .to_vec()
        .expect("encode");
    for attempt in 1..=2 {
        let raw = exchange_raw_udp(agent.addr, &packet, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no reply to query {attempt}"));
        let reply = Message::from_vec(&raw)
            .unwrap_or_else(|err| panic!("reply {attempt} is malformed ({err}): {raw:02x?}"));
        assert_eq!(
            rcode(&reply),
            hickory_proto::op::ResponseCode::ServFail,
            "reply {attempt}: {reply:?}"
        );
        assert!(reply.answers.is_empty(), "reply {attempt}: {reply:?}");
        assert_eq!(
            upstream.queries_for("www.odd.example.", Via::Udp),
            attempt,
            "query {attempt} reached the upstream: nothing was cached"
        );
    }
}

/// A loopback upstream that answers every query, over UDP and over TCP (where pathdns tries
/// again), with opcode UPDATE and one A record with RDLENGTH 0.
fn odd_upstream() -> FakeUpstream {
    FakeUpstream::start(|query, _| {
        let Some(end) = common::packets::question_end(query) else {
            return Vec::new();
        };
        let mut reply = query[..2].to_vec();
        // QR, opcode 5 (UPDATE), RD, RA; one question, one answer.
        reply.extend_from_slice(&(0x8000u16 | 5 << 11 | 0x0180).to_be_bytes());
        reply.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
        reply.extend_from_slice(&query[12..end]);
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 0]);
        vec![Reply::Message(reply)]
    })
}
