//! A corpus of crafted packets after RFC 9267 ("Common Implementation Anti-Patterns Related
//! to DNS Resource Record Processing"), sent to the real pathdns over UDP and TCP, and
//! crafted answers from a fake upstream for the names it forwards.
//!
//! Each case has a name that failure messages carry, and the reaction it must get:
//! - no reply to a packet shorter than a header or with QR set (a response is never
//!   answered, RFC 1035 section 4.1.1);
//! - FORMERR to everything else malformed, the RFC's anti-patterns: compression pointers to
//!   themselves, to each other, forward, past the end or into the header; labels over 63
//!   octets and the reserved label types; names over 255 octets, spelt out or built from
//!   pointers; a name without its root label; counts and RDLENGTH past the end; and EDNS
//!   option lengths past the OPT record's RDATA and two OPT records (RFC 6891 section 6.1);
//! - the answer to valid controls, including queries padded to the largest frame.
//!
//! After every case a liveness query for an owned name must be answered, over UDP and TCP,
//! by the same process (same pid and start time, no panic in its log): see
//! [`common::Liveness`]. Failures are collected and reported together, one line per case.
//!
//! A question name of exactly 256 octets has its own test in tests/conformance.rs
//! (`rfc1035_3_1_question_name_of_256_octets_is_formerr`); the cases here use 257 octets
//! and more.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::packets::*;
use common::upstream::{FakeUpstream, Reply, Via};
use common::*;
use hickory_proto::op::{Message, ResponseCode};

/// Silence is judged after the next query on the same socket has been answered, plus this
/// much (UDP only: over TCP a reply to the case would come before that answer).
const UDP_GRACE: Duration = Duration::from_millis(200);
/// The longest any reply may take.
const REPLY_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Udp,
    Tcp,
}

/// The reaction a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// No reply at all.
    Silence,
    /// FORMERR with the case's ID, QR set, no records, decodable.
    FormErr,
    /// NOERROR with the owned name's address.
    Answer,
    /// Either of the two.
    AnswerOrFormErr,
}

struct Case {
    name: &'static str,
    packet: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, expect: Expect, packet: Vec<u8>) -> Case {
    Case {
        name,
        packet,
        expect,
    }
}

/// The owned name that the valid parts of the cases ask for.
fn owned() -> Vec<u8> {
    name(LIVENESS_NAME)
}

/// Header (with `counts`) and a valid question for the owned name.
fn asking(id: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut packet = header(id, QUERY_FLAGS, counts);
    packet.extend_from_slice(&question(&owned(), TYPE_A));
    packet
}

/// A header and a question whose name is `qname` as given (any bytes).
fn with_name(id: u16, qname: &[u8]) -> Vec<u8> {
    let mut packet = header(id, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.extend_from_slice(qname);
    packet.extend_from_slice(&TYPE_A.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    packet
}

/// A valid query for the owned name with an A record per owner in `owners` (any bytes) in
/// the additional section, which pathdns walks to find the OPT record.
fn with_additional(id: u16, owners: &[Vec<u8>]) -> Vec<u8> {
    let mut packet = asking(id, [1, 0, 0, owners.len() as u16]);
    for owner in owners {
        packet.extend_from_slice(&record(owner, TYPE_A, 0, &[192, 0, 2, 1]));
    }
    packet
}

/// A query for the owned name whose OPT record is `opt` (any bytes).
fn with_opt(id: u16, opt: &[u8]) -> Vec<u8> {
    let mut packet = asking(id, [1, 0, 0, 1]);
    packet.extend_from_slice(opt);
    packet
}

/// An OPT record whose RDLENGTH says `rdlength`, followed by `rdata`.
fn opt_claiming(rdlength: u16, rdata: &[u8]) -> Vec<u8> {
    let mut record = opt(&[]);
    let at = record.len() - 2;
    record[at..].copy_from_slice(&rdlength.to_be_bytes());
    record.extend_from_slice(rdata);
    record
}

/// A valid EDNS query for the owned name padded (RFC 7830 Padding option) to `size` bytes.
fn padded_query(id: u16, size: usize) -> Vec<u8> {
    let bare = asking(id, [1, 0, 0, 1]).len() + opt(&[]).len() + 4;
    let padding = vec![0u8; size - bare];
    let packet = with_opt(id, &opt(&option(OPTION_PADDING, &padding)));
    assert_eq!(packet.len(), size);
    packet
}

/// The client packets, with their IDs (0x5100 + index) and expected reactions.
fn query_cases(over: Over) -> Vec<Case> {
    use Expect::*;
    let id = |index: usize| 0x5100 + index as u16;
    let mut cases = Vec::new();
    let mut add = |name, expect, build: &dyn Fn(u16) -> Vec<u8>| {
        let packet = build(id(cases.len()));
        cases.push(case(name, expect, packet));
    };

    // Not queries: silence.
    add("empty packet", Silence, &|_| Vec::new());
    add("one byte", Silence, &|_| vec![0x42]);
    add("header cut at 11 bytes", Silence, &|id| {
        asking(id, [1, 0, 0, 0])[..11].to_vec()
    });
    add("QR=1, header only", Silence, &|id| {
        header(id, RESPONSE_FLAGS, [0, 0, 0, 0])
    });
    add("QR=1, a valid question", Silence, &|id| {
        let mut packet = asking(id, [1, 0, 0, 0]);
        packet[2] |= 0x80;
        packet
    });
    add("QR=1, a question pointer loop", Silence, &|id| {
        let mut packet = with_name(id, &pointer(QUESTION_AT));
        packet[2] |= 0x80;
        packet
    });
    add("QR=1, opcode 15", Silence, &|id| {
        let mut packet = asking(id, [1, 0, 0, 0]);
        packet[2] |= 0x80 | (15 << 3);
        packet
    });

    // Compression pointers in the question.
    add("question: pointer to itself", FormErr, &|id| {
        with_name(id, &pointer(QUESTION_AT))
    });
    add("question: two pointers to each other", FormErr, &|id| {
        with_name(
            id,
            &[pointer(QUESTION_AT + 2), pointer(QUESTION_AT)].concat(),
        )
    });
    add(
        "question: a label, then a pointer back to it",
        FormErr,
        &|id| with_name(id, &[&b"\x01a"[..], &pointer(QUESTION_AT)].concat()),
    );
    add(
        "question: pointer forward to a valid name",
        FormErr,
        &|id| {
            // The pointer, type and class, then the owned name it points at.
            let mut packet = with_name(id, &pointer(QUESTION_AT + 6));
            packet.extend_from_slice(&owned());
            packet
        },
    );
    add("question: pointer past the end", FormErr, &|id| {
        with_name(id, &pointer(200))
    });
    add("question: pointer to 0x3fff", FormErr, &|id| {
        with_name(id, &pointer(0x3fff))
    });
    add("question: pointer into the header", FormErr, &|id| {
        with_name(id, &pointer(4))
    });

    // Compression pointers in the additional section's owner names.
    add("additional: owner pointer to itself", FormErr, &|id| {
        let base = asking(id, [1, 0, 0, 1]).len() as u16;
        with_additional(id, &[pointer(base).to_vec()])
    });
    // Where the two additional records' owners start when the first owner is a pointer.
    let two_owners = |id| {
        let first = asking(id, [1, 0, 0, 2]).len() as u16;
        (first, first + 2 + 14)
    };
    add(
        "additional: two owners pointing at each other",
        FormErr,
        &|id| {
            let (first, second) = two_owners(id);
            with_additional(id, &[pointer(second).to_vec(), pointer(first).to_vec()])
        },
    );
    add(
        "additional: owner pointer forward to a valid name",
        FormErr,
        &|id| {
            let (_, second) = two_owners(id);
            with_additional(id, &[pointer(second).to_vec(), name("a.example.")])
        },
    );
    add("additional: owner pointer past the end", FormErr, &|id| {
        with_additional(id, &[pointer(0x3000).to_vec()])
    });
    add(
        "additional: owner label, pointer back to it",
        FormErr,
        &|id| {
            let base = asking(id, [1, 0, 0, 1]).len() as u16;
            with_additional(id, &[[&b"\x01a"[..], &pointer(base)].concat()])
        },
    );
    add(
        "additional: control, owner pointer to the question",
        Answer,
        &|id| with_additional(id, &[pointer(QUESTION_AT).to_vec()]),
    );

    // Labels and names (RFC 1035 section 3.1: labels of 63 octets, names of 255).
    add("question: label of 64 octets", FormErr, &|id| {
        with_name(id, &[labels(1, 64), vec![0]].concat())
    });
    add("question: label type 0x40 (extended)", FormErr, &|id| {
        with_name(id, &[&[0x41u8, b'a'][..], &[0]].concat())
    });
    add("question: label type 0x80 (reserved)", FormErr, &|id| {
        with_name(id, &[&[0x81u8, b'a'][..], &[0]].concat())
    });
    add("question: label length past the end", FormErr, &|id| {
        let mut packet = header(id, QUERY_FLAGS, [1, 0, 0, 0]);
        packet.push(63);
        packet.extend_from_slice(b"short");
        packet
    });
    add("question: name without its root label", FormErr, &|id| {
        let mut packet = header(id, QUERY_FLAGS, [1, 0, 0, 0]);
        let name = owned();
        packet.extend_from_slice(&name[..name.len() - 1]);
        packet
    });
    add("question: name of 257 octets", FormErr, &|id| {
        with_name(id, &[labels(4, 63), vec![0]].concat())
    });
    add("question: name of 301 octets", FormErr, &|id| {
        with_name(id, &[labels(5, 59), vec![0]].concat())
    });
    add("additional: owner label of 64 octets", FormErr, &|id| {
        with_additional(id, &[[labels(1, 64), vec![0]].concat()])
    });
    add(
        "additional: owner of 256+ octets from labels and a pointer",
        FormErr,
        &|id| {
            // 255 octets of labels, then the question's name: over 300 in all.
            with_additional(
                id,
                &[[labels(5, 50), pointer(QUESTION_AT).to_vec()].concat()],
            )
        },
    );
    add(
        "additional: owner of 256+ octets from a chain of pointers",
        FormErr,
        &|id| {
            // The first owner is 232 octets (valid); the second adds a label of 60 to it.
            let first = asking(id, [1, 0, 0, 2]).len() as u16;
            with_additional(
                id,
                &[
                    [labels(3, 60), pointer(QUESTION_AT).to_vec()].concat(),
                    [labels(1, 60), pointer(first).to_vec()].concat(),
                ],
            )
        },
    );
    add(
        "additional: control, owner of 232 octets via a pointer",
        Answer,
        &|id| {
            with_additional(
                id,
                &[[labels(3, 60), pointer(QUESTION_AT).to_vec()].concat()],
            )
        },
    );

    // Counts past the end.
    add("QDCOUNT 0", FormErr, &|id| {
        header(id, QUERY_FLAGS, [0, 0, 0, 0])
    });
    add("QDCOUNT 2, one question", FormErr, &|id| {
        asking(id, [2, 0, 0, 0])
    });
    add("QDCOUNT 65535, one question", FormErr, &|id| {
        asking(id, [0xffff, 0, 0, 0])
    });
    add("ANCOUNT 1, nothing follows", FormErr, &|id| {
        asking(id, [1, 1, 0, 0])
    });
    add("NSCOUNT 1, nothing follows", FormErr, &|id| {
        asking(id, [1, 0, 1, 0])
    });
    add("ARCOUNT 1, nothing follows", FormErr, &|id| {
        asking(id, [1, 0, 0, 1])
    });
    add("ARCOUNT 65535, one OPT", FormErr, &|id| {
        let mut packet = asking(id, [1, 0, 0, 0xffff]);
        packet.extend_from_slice(&opt(&[]));
        packet
    });
    add("all counts 65535, header only", FormErr, &|id| {
        header(id, QUERY_FLAGS, [0xffff; 4])
    });

    // The OPT record (RFC 6891 section 6.1): RDLENGTH and option lengths past the end.
    add("OPT: RDLENGTH 100, nothing follows", FormErr, &|id| {
        with_opt(id, &opt_claiming(100, &[]))
    });
    add("OPT: RDLENGTH 65535, 4 bytes follow", FormErr, &|id| {
        with_opt(id, &opt_claiming(0xffff, &[0, 10, 0, 0]))
    });
    add("OPT: fixed part cut short", FormErr, &|id| {
        with_opt(id, &opt(&[])[..7])
    });
    add("OPT: option length past the RDATA", FormErr, &|id| {
        // RDLENGTH 8: a COOKIE option that claims 100 bytes and has 4.
        let mut rdata = option(OPTION_COOKIE, &[1, 2, 3, 4]);
        rdata[2..4].copy_from_slice(&100u16.to_be_bytes());
        with_opt(id, &opt(&rdata))
    });
    add("OPT: option header cut (2 of 4 bytes)", FormErr, &|id| {
        with_opt(id, &opt(&[0, 10]))
    });
    add("OPT: two OPT records", FormErr, &|id| {
        let mut packet = asking(id, [1, 0, 0, 2]);
        packet.extend_from_slice(&opt(&[]));
        packet.extend_from_slice(&opt(&[]));
        packet
    });
    add("OPT: owner not the root", FormErr, &|id| {
        let mut record = name("a.");
        record.extend_from_slice(&opt(&[])[1..]);
        with_opt(id, &record)
    });
    add(
        "OPT: control, two options of 0 and 8 bytes",
        Answer,
        &|id| {
            let rdata = [option(3, &[]), option(OPTION_COOKIE, &[1; 8])].concat();
            with_opt(id, &opt(&rdata))
        },
    );

    // The largest frames, and controls.
    add("control: a plain query", Answer, &|id| {
        asking(id, [1, 0, 0, 0])
    });
    match over {
        Over::Tcp => {
            add("TCP frame of 65,535 bytes: padded query", Answer, &|id| {
                padded_query(id, 65_535)
            });
            add(
                "TCP frame of 65,535 bytes: label 0xff, then zeros",
                FormErr,
                &|id| {
                    let mut packet = header(id, QUERY_FLAGS, [1, 0, 0, 0]);
                    packet.push(0xff);
                    packet.resize(65_535, 0);
                    packet
                },
            );
        }
        Over::Udp => {
            add("UDP datagram of 4,000 bytes: padded query", Answer, &|id| {
                padded_query(id, 4000)
            });
            // Far beyond the 1,232 bytes pathdns offers: pathdns reads the first 4,096 bytes
            // of a datagram today, where the OPT record runs past the end (FORMERR); reading
            // it whole and answering would be as right.
            add(
                "UDP datagram of 65,507 bytes: padded query",
                AnswerOrFormErr,
                &|id| padded_query(id, 65_507),
            );
        }
    }
    cases
}

/// What came back for a case: the replies to it (not to the marker that follows it).
struct Outcome {
    replies: Vec<Vec<u8>>,
}

/// A query for the owned name sent right after a case: once it is answered, the case has
/// been read.
fn marker(id: u16) -> Vec<u8> {
    raw_query(id, &owned(), TYPE_A, false)
}

const MARKER_ID: u16 = 0x4d4d;

fn send_udp(server: SocketAddr, case: &Case) -> Result<Outcome, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    socket
        .send_to(&case.packet, server)
        .map_err(|err| format!("send: {err}"))?;
    socket
        .send_to(&marker(MARKER_ID), server)
        .expect("send marker");
    let mut replies = Vec::new();
    let mut marker_seen = false;
    // Once the marker is answered (and the case, when a reply is due): a grace for stray
    // or second replies.
    let mut settled_at: Option<Instant> = None;
    let start = Instant::now();
    let mut buf = vec![0u8; 65535];
    while settled_at.is_none_or(|at| at.elapsed() < UDP_GRACE) {
        if start.elapsed() > REPLY_DEADLINE {
            if !marker_seen {
                return Err("the query after the case got no answer within 5 s".into());
            }
            break;
        }
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let reply = buf[..len].to_vec();
        if !marker_seen && reply.get(..2) == Some(&MARKER_ID.to_be_bytes()[..]) {
            marker_seen = true;
        } else {
            replies.push(reply);
        }
        let reply_due = case.expect != Expect::Silence;
        if settled_at.is_none() && marker_seen && (!reply_due || !replies.is_empty()) {
            settled_at = Some(Instant::now());
        }
    }
    Ok(Outcome { replies })
}

fn send_tcp(server: SocketAddr, case: &Case) -> Result<Outcome, String> {
    let mut stream = TcpStream::connect(server).expect("connect");
    stream
        .set_read_timeout(Some(REPLY_DEADLINE))
        .expect("timeout");
    let mut bytes = (case.packet.len() as u16).to_be_bytes().to_vec();
    bytes.extend_from_slice(&case.packet);
    let marker = marker(MARKER_ID);
    bytes.extend_from_slice(&(marker.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&marker);
    stream
        .write_all(&bytes)
        .map_err(|err| format!("write: {err}"))?;
    let mut replies = Vec::new();
    let mut seen_marker = false;
    // Answers from the table come in order: a reply to the case comes before the marker's.
    while !seen_marker || (case.expect != Expect::Silence && replies.is_empty()) {
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .map_err(|err| format!("reading a reply (marker seen: {seen_marker}): {err}"))?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream
            .read_exact(&mut reply)
            .map_err(|err| format!("reading a reply: {err}"))?;
        if !seen_marker && reply.get(..2) == Some(&MARKER_ID.to_be_bytes()[..]) {
            seen_marker = true;
        } else {
            replies.push(reply);
        }
    }
    Ok(Outcome { replies })
}

/// Checks an outcome against what the case expects.
fn judge(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let id = case.packet.get(..2);
    match (case.expect, outcome.replies.as_slice()) {
        (Expect::Silence, []) => Ok(()),
        (Expect::Silence, replies) => Err(format!(
            "expected no reply, got {}: {:02x?}",
            replies.len(),
            &replies[0][..replies[0].len().min(64)]
        )),
        (_, []) => Err(format!("expected {:?}, got no reply", case.expect)),
        (expect, [reply]) => {
            let header = reply_header(reply).ok_or("a reply shorter than a header")?;
            if reply.get(..2) != id {
                return Err(format!("reply ID {:04x}, not the query's", header.id));
            }
            if !header.qr {
                return Err("reply without QR".into());
            }
            if reply[2] & 0x78 != case.packet[2] & 0x78 {
                return Err("opcode not copied".into());
            }
            let message = Message::from_vec(reply)
                .map_err(|err| format!("reply does not decode ({err}): {reply:02x?}"))?;
            let formerr = header.rcode == 1 && header.counts[1..3] == [0, 0];
            let answer = header.rcode == 0 && addresses(&message) == [LIVENESS_ADDR];
            match expect {
                Expect::FormErr if formerr => Ok(()),
                Expect::Answer if answer => Ok(()),
                Expect::AnswerOrFormErr if answer || formerr => Ok(()),
                _ => Err(format!("expected {expect:?}, got {header:?}: {message}")),
            }
        }
        (_, replies) => Err(format!("{} replies to one query", replies.len())),
    }
}

/// Runs every case over `over` against one agent, checking liveness after each, and fails
/// listing every case that did not get its reaction.
fn run_corpus(over: Over) {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let mut agent = Agent::start(&registry_config(upstream.addr, ""));
    let mut liveness = Liveness::of(&agent);
    let cases = query_cases(over);
    let mut failures = Vec::new();
    let start = Instant::now();
    for case in &cases {
        let outcome = match over {
            Over::Udp => send_udp(agent.addr, case),
            Over::Tcp => send_tcp(agent.addr, case),
        };
        if let Err(err) = outcome.and_then(|outcome| judge(case, &outcome)) {
            failures.push(format!("{:?} {}: {err}", over, case.name));
        }
        liveness.check(&mut agent, &format!("{over:?} case {:?}", case.name));
    }
    eprintln!(
        "crafted {over:?}: {} cases in {:.1?}, {} liveness queries answered (slowest {:.1?}), \
         {} failed",
        cases.len(),
        start.elapsed(),
        liveness.answered,
        liveness.slowest,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} crafted cases got the wrong reaction:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn crafted_queries_over_udp() {
    run_corpus(Over::Udp);
}

#[test]
fn crafted_queries_over_tcp() {
    run_corpus(Over::Tcp);
}

/// A TCP frame whose length promises more than follows, then the client closes its side:
/// no reply, and pathdns closes the connection (EOF) instead of waiting for the rest.
#[test]
fn tcp_frame_longer_than_what_follows_then_close() {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let mut agent = Agent::start(&registry_config(upstream.addr, ""));
    let mut liveness = Liveness::of(&agent);
    for (promised, sent) in [(512usize, 100usize), (65_535, 60_000), (2, 1), (13, 12)] {
        let context = format!("a frame of {promised} bytes promised, {sent} sent, then close");
        let mut stream = TcpStream::connect(agent.addr).expect("connect");
        stream
            .set_read_timeout(Some(REPLY_DEADLINE))
            .expect("timeout");
        let mut packet = padded_query(0x5200, 65_535);
        packet.truncate(sent);
        let mut bytes = (promised as u16).to_be_bytes().to_vec();
        bytes.extend_from_slice(&packet);
        stream.write_all(&bytes).expect("write");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let start = Instant::now();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        let waited = start.elapsed();
        assert!(
            read.is_ok(),
            "{context}: no EOF within {REPLY_DEADLINE:?}: {read:?}"
        );
        assert!(rest.is_empty(), "{context}: {} bytes of reply", rest.len());
        eprintln!("{context}: no reply, closed by pathdns after {waited:.1?}");
        liveness.check(&mut agent, &context);
    }
}

/// The corpus runner is not blind: a reply where silence is due, silence where a reply is
/// due, another ID, another rcode, and two replies are each reported.
#[test]
fn crafted_checks_catch_wrong_reactions() {
    let sent = asking(0x5300, [1, 0, 0, 0]);
    let formerr = {
        let mut reply = sent.clone();
        reply[2] |= 0x80;
        reply[3] = 1;
        reply
    };
    let silent = case("silent", Expect::Silence, sent.clone());
    let bad = case("bad", Expect::FormErr, sent.clone());
    let outcome = |replies: Vec<Vec<u8>>| Outcome { replies };
    assert!(judge(&bad, &outcome(vec![formerr.clone()])).is_ok());
    assert!(judge(&silent, &outcome(vec![])).is_ok());
    let mut other_id = formerr.clone();
    other_id[1] ^= 1;
    let mut servfail = formerr.clone();
    servfail[3] = 2;
    let mut no_qr = formerr.clone();
    no_qr[2] &= 0x7f;
    for (case, replies) in [
        (&silent, vec![formerr.clone()]),
        (&bad, vec![]),
        (&bad, vec![other_id]),
        (&bad, vec![servfail]),
        (&bad, vec![no_qr]),
        (&bad, vec![formerr.clone(), formerr.clone()]),
        (&bad, vec![formerr[..11].to_vec()]),
    ] {
        assert!(
            judge(case, &outcome(replies.clone())).is_err(),
            "{:?} passed for {}",
            replies,
            case.name
        );
    }
}

// --- The upstream-response path ------------------------------------------------------------

/// The address the fake upstream gives in its valid answers.
const REAL_ADDR: [u8; 4] = [192, 0, 2, 53];
const REAL_ADDR_TEXT: &str = "192.0.2.53";
/// The zone of the forwarded names whose answers are crafted: `CASE.MODE.crafted.example`.
const CRAFTED_ZONE: &str = "crafted.example.";

/// How the fake upstream delivers a crafted answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The crafted answer over UDP (and again over TCP, should pathdns ask there).
    Udp,
    /// The crafted answer over UDP, then the valid one in a second datagram.
    UdpThenValid,
    /// A truncated (TC) answer over UDP; over TCP the crafted answer.
    Tcp,
    /// A truncated answer over UDP; over TCP the crafted answer, then the valid one.
    TcpThenValid,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Udp, Mode::UdpThenValid, Mode::Tcp, Mode::TcpThenValid];

    fn label(self) -> &'static str {
        match self {
            Mode::Udp => "udp",
            Mode::UdpThenValid => "udp-then-valid",
            Mode::Tcp => "tcp",
            Mode::TcpThenValid => "tcp-then-valid",
        }
    }

    fn from_label(label: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.label() == label)
    }

    fn then_valid(self) -> bool {
        matches!(self, Mode::UdpThenValid | Mode::TcpThenValid)
    }

    fn over_tcp(self) -> bool {
        matches!(self, Mode::Tcp | Mode::TcpThenValid)
    }
}

/// A crafted upstream answer, built from the query it answers (whose ID and question it
/// copies unless the case is about them).
struct UpstreamCase {
    label: &'static str,
    build: fn(&[u8]) -> Vec<Reply>,
    modes: &'static [Mode],
    /// The case breaks the upstream TCP connection, which pathdns (hickory-resolver's pool)
    /// shares between the queries in flight to one upstream: run it by itself.
    alone: bool,
    /// Run by its own test (`upstream_answer_to_another_question_is_not_accepted`), found
    /// as a bug of hickory's TCP client and fixed by `dns::upstream`.
    known_bug: bool,
}

/// Header (QR, RD, RA and `counts`) and the query's question.
fn answering(query: &[u8], counts: [u16; 4]) -> Vec<u8> {
    let id = u16::from_be_bytes([query[0], query[1]]);
    let mut reply = header(id, RESPONSE_FLAGS, counts);
    reply.extend_from_slice(&query[12..question_end(query).unwrap_or(query.len())]);
    reply
}

fn valid_answer(query: &[u8]) -> Vec<u8> {
    a_response(query, &[REAL_ADDR], 300).unwrap_or_default()
}

fn one(reply: Vec<u8>) -> Vec<Reply> {
    vec![Reply::Message(reply)]
}

/// An A record with `owner` (any bytes) and the real address.
fn a_record(owner: &[u8]) -> Vec<u8> {
    record(owner, TYPE_A, 300, &REAL_ADDR)
}

/// A case in every mode.
const fn crafted(label: &'static str, build: fn(&[u8]) -> Vec<Reply>) -> UpstreamCase {
    UpstreamCase {
        label,
        build,
        modes: &Mode::ALL,
        alone: false,
        known_bug: false,
    }
}

/// The upstream cases: RFC 9267's malformations in the answer, answers with another ID or
/// for another question (to be ignored: pathdns waits for another), and a TCP frame that
/// lies about its length.
fn upstream_cases() -> Vec<UpstreamCase> {
    vec![
        crafted("owner-pointer-to-itself", |q| {
            let mut r = answering(q, [1, 1, 0, 0]);
            let at = r.len() as u16;
            r.extend_from_slice(&a_record(&pointer(at)));
            one(r)
        }),
        crafted("owners-pointing-at-each-other", |q| {
            let mut r = answering(q, [1, 2, 0, 0]);
            let first = r.len() as u16;
            let second = first + 2 + 14;
            r.extend_from_slice(&a_record(&pointer(second)));
            r.extend_from_slice(&a_record(&pointer(first)));
            one(r)
        }),
        crafted("owner-pointer-forward", |q| {
            // The A record's owner points at the CNAME target that follows it.
            let mut r = answering(q, [1, 2, 0, 0]);
            let target = r.len() as u16 + 2 + 14 + 2 + 10;
            r.extend_from_slice(&a_record(&pointer(target)));
            let cname = name("target.example.");
            r.extend_from_slice(&record(&pointer(QUESTION_AT), TYPE_CNAME, 300, &cname));
            one(r)
        }),
        crafted("owner-pointer-past-the-end", |q| {
            let mut r = answering(q, [1, 1, 0, 0]);
            r.extend_from_slice(&a_record(&pointer(0x3fff)));
            one(r)
        }),
        crafted("cname-target-pointer-loop", |q| {
            // The CNAME's target is a label, then a pointer back to that label.
            let mut r = answering(q, [1, 1, 0, 0]);
            let rdata_at = r.len() as u16 + 2 + 10;
            let target = [&b"\x01x"[..], &pointer(rdata_at)].concat();
            r.extend_from_slice(&record(&pointer(QUESTION_AT), TYPE_CNAME, 300, &target));
            one(r)
        }),
        crafted("owner-past-255-octets-via-a-pointer", |q| {
            let mut r = answering(q, [1, 1, 0, 0]);
            let owner = [labels(4, 60), pointer(QUESTION_AT).to_vec()].concat();
            r.extend_from_slice(&a_record(&owner));
            one(r)
        }),
        crafted("owner-label-of-64-octets", |q| {
            let mut r = answering(q, [1, 1, 0, 0]);
            r.extend_from_slice(&a_record(&[labels(1, 64), vec![0]].concat()));
            one(r)
        }),
        crafted("rdlength-past-the-end", |q| {
            let mut r = answering(q, [1, 1, 0, 0]);
            let owner = pointer(QUESTION_AT);
            r.extend_from_slice(&record_claiming(&owner, TYPE_A, 300, 400, &REAL_ADDR));
            one(r)
        }),
        crafted("ancount-past-the-end", |q| {
            let mut r = valid_answer(q);
            r[7] = 5;
            one(r)
        }),
        crafted("arcount-past-the-end", |q| {
            let mut r = valid_answer(q);
            r[11] = 3;
            one(r)
        }),
        crafted("opt-rdlength-past-the-end", |q| {
            let mut r = valid_answer(q);
            r[11] = 1;
            r.extend_from_slice(&opt_claiming(100, &[]));
            one(r)
        }),
        crafted("cut-mid-record", |q| {
            let mut r = valid_answer(q);
            r.truncate(r.len() - 3);
            one(r)
        }),
        crafted("another-id", |q| {
            let mut r = valid_answer(q);
            r[1] ^= 0x5a;
            one(r)
        }),
        UpstreamCase {
            known_bug: true,
            ..crafted("another-question", another_question)
        },
        UpstreamCase {
            // Over TCP: a length of 512, 20 bytes, then the upstream closes.
            modes: &[Mode::Tcp],
            alone: true,
            ..crafted("frame-longer-than-its-data-then-close", |q| {
                let mut raw = 512u16.to_be_bytes().to_vec();
                raw.extend_from_slice(&valid_answer(q)[..20]);
                vec![Reply::Raw(raw), Reply::Close]
            })
        },
    ]
}

/// A valid answer, with the query's ID, for another name.
fn another_question(query: &[u8]) -> Vec<Reply> {
    let mut other = query[..12].to_vec();
    other.extend_from_slice(&question(&name("other.example."), TYPE_A));
    one(valid_answer(&other))
}

/// What the fake upstream sends for `query`: crafted per the name's first two labels,
/// `CASE.MODE.crafted.example`, otherwise a valid answer.
fn crafted_upstream(query: &[u8], via: Via) -> Vec<Reply> {
    let qname = question_name(query).unwrap_or_default();
    let labels: Vec<&str> = qname.split('.').collect();
    let found = qname
        .ends_with(CRAFTED_ZONE)
        .then(|| {
            let case = upstream_cases()
                .into_iter()
                .find(|case| case.label == labels[0])?;
            Some((case, Mode::from_label(labels.get(1)?)?))
        })
        .flatten();
    let Some((case, mode)) = found else {
        return one(valid_answer(query));
    };
    if via == Via::Udp && mode.over_tcp() {
        // Truncated: pathdns must ask again over TCP.
        let mut truncated = answering(query, [1, 0, 0, 0]);
        truncated[2] |= 0x02;
        return one(truncated);
    }
    let mut replies = (case.build)(query);
    if mode.then_valid() {
        replies.push(Reply::Message(valid_answer(query)));
    }
    replies
}

/// What pathdns answered for one upstream case.
#[derive(Debug)]
struct Forwarded {
    /// SERVFAIL (false) or the real answer (true).
    answered: bool,
    took: Duration,
    /// The repeated query: from the cache (true) or asked upstream again (false).
    repeat_cached: bool,
}

/// One query for `qname` to the agent: a reply that decodes, with its ID, and either
/// SERVFAIL with no records or NOERROR with one A record for `qname`, the real address.
fn forwarded_reply(agent: SocketAddr, qname: &str, tcp: bool) -> Result<(bool, Duration), String> {
    let message = query(qname, hickory_proto::rr::RecordType::A, true);
    let bytes = message.to_vec().expect("encode");
    let start = Instant::now();
    let raw = if tcp {
        ask_raw_tcp(agent, &bytes, REPLY_DEADLINE)
    } else {
        exchange_raw_udp(agent, &bytes, REPLY_DEADLINE)
    };
    let took = start.elapsed();
    let over = if tcp { "TCP" } else { "UDP" };
    let raw = raw.ok_or_else(|| format!("no {over} reply within {REPLY_DEADLINE:?}"))?;
    let reply = Message::from_vec(&raw)
        .map_err(|err| format!("the {over} reply does not decode ({err}): {raw:02x?}"))?;
    if reply.metadata.id != message.metadata.id {
        return Err(format!("the {over} reply has another ID"));
    }
    let records = reply.answers.len() + reply.authorities.len();
    let owners_match = reply
        .answers
        .iter()
        .all(|record| record.name.to_ascii().eq_ignore_ascii_case(qname));
    match (rcode(&reply), addresses(&reply)) {
        (ResponseCode::ServFail, _) if records == 0 => Ok((false, took)),
        (ResponseCode::NoError, found)
            if found == [REAL_ADDR_TEXT] && records == 1 && owners_match =>
        {
            Ok((true, took))
        }
        _ => Err(format!("unexpected {over} reply: {reply}")),
    }
}

/// Runs one case: a query over UDP, then the same over TCP, each checked; the first must be
/// SERVFAIL unless a valid answer also came; nothing crafted may be cached.
fn run_upstream_case(
    agent: SocketAddr,
    upstream: &FakeUpstream,
    case: &UpstreamCase,
    mode: Mode,
) -> Result<Forwarded, String> {
    let qname = format!("{}.{}.{CRAFTED_ZONE}", case.label, mode.label());
    let asked = || upstream.queries_for(&qname, Via::Udp) + upstream.queries_for(&qname, Via::Tcp);
    let (answered, took) = forwarded_reply(agent, &qname, false)?;
    if asked() == 0 {
        return Err("the upstream was never asked".into());
    }
    if mode.over_tcp() && upstream.queries_for(&qname, Via::Tcp) == 0 {
        return Err("a truncated answer was not followed by a query over TCP".into());
    }
    if answered && !mode.then_valid() {
        return Err("answered from a crafted answer alone".into());
    }
    let before = asked();
    let (again, _) = forwarded_reply(agent, &qname, true)?;
    let repeat_cached = asked() == before;
    match (answered, again, repeat_cached) {
        (false, _, true) => Err("a SERVFAIL was served from the cache".into()),
        (true, true, true) | (false, _, false) => Ok(Forwarded {
            answered,
            took,
            repeat_cached,
        }),
        (true, _, _) => Err(format!(
            "the valid answer was not cached (repeat: answered {again}, cached {repeat_cached})"
        )),
    }
}

/// An agent forwarding to a fake upstream that crafts its answers, with liveness checks.
struct UpstreamBench {
    upstream: FakeUpstream,
    addr: SocketAddr,
    checked: Mutex<(Agent, Liveness)>,
}

impl UpstreamBench {
    fn start() -> UpstreamBench {
        let upstream = FakeUpstream::start(crafted_upstream);
        let agent = Agent::start(&registry_config(upstream.addr, ""));
        let liveness = Liveness::of(&agent);
        UpstreamBench {
            upstream,
            addr: agent.addr,
            checked: Mutex::new((agent, liveness)),
        }
    }

    /// Runs the cases at once (one thread each), then checks liveness.
    fn run(&self, runs: &[(&UpstreamCase, Mode)]) -> Vec<(String, Result<Forwarded, String>)> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .iter()
                .map(|&(case, mode)| {
                    scope.spawn(move || {
                        let name = format!("{} ({})", case.label, mode.label());
                        let result = run_upstream_case(self.addr, &self.upstream, case, mode);
                        self.check(&format!("upstream case {name}"));
                        (name, result)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("case thread"))
                .collect()
        })
    }

    fn check(&self, context: &str) {
        let mut guard = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let (agent, liveness) = &mut *guard;
        liveness.check(agent, context);
    }
}

/// Crafted upstream answers (RFC 9267's malformations, another ID, another question, a TCP
/// frame that lies about its length) for forwarded names, over UDP and over TCP after a
/// truncated UDP answer, with and without a valid answer after the crafted one. The client
/// always gets a well-formed reply: SERVFAIL, or the real answer when a valid one also came;
/// nothing crafted is cached (a SERVFAIL is asked upstream again, a real answer comes from
/// the cache); after each case the owned name is still answered by the same process.
#[test]
fn crafted_upstream_answers_give_servfail_and_are_never_cached() {
    let bench = UpstreamBench::start();
    let cases = upstream_cases();
    let runs = |alone: bool| -> Vec<(&UpstreamCase, Mode)> {
        cases
            .iter()
            .filter(|case| case.alone == alone && !case.known_bug)
            .flat_map(|case| case.modes.iter().map(move |&mode| (case, mode)))
            .collect()
    };
    let start = Instant::now();
    // At once: a case that ends in SERVFAIL waits out the upstream timeout. Then the cases
    // that break the shared upstream connection, one by one.
    let mut results = bench.run(&runs(false));
    for run in runs(true) {
        results.extend(bench.run(&[run]));
    }
    let mut failures = Vec::new();
    let (mut servfails, mut answers) = (0, 0);
    for (name, result) in &results {
        match result {
            Ok(outcome) => {
                *if outcome.answered {
                    &mut answers
                } else {
                    &mut servfails
                } += 1;
                eprintln!(
                    "upstream case {name}: {} in {:.0?}; repeat {}",
                    if outcome.answered {
                        "answered"
                    } else {
                        "SERVFAIL"
                    },
                    outcome.took,
                    if outcome.repeat_cached {
                        "from the cache"
                    } else {
                        "asked upstream again"
                    }
                );
            }
            Err(err) => failures.push(format!("{name}: {err}")),
        }
    }
    let (_, liveness) = &*bench.checked.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "crafted upstream: {} cases in {:.1?} ({servfails} SERVFAIL, {answers} real answers), \
         upstream got {} queries and sent {} replies, {} liveness queries answered \
         (slowest {:.1?})",
        results.len(),
        start.elapsed(),
        bench.upstream.queries(),
        bench.upstream.replies(),
        liveness.answered,
        liveness.slowest
    );
    assert!(
        failures.is_empty(),
        "{} of {} upstream cases failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

/// An upstream answer with the right ID for another question is ignored, over UDP and over
/// TCP: the client gets SERVFAIL (or the valid answer that follows it), never the other
/// name's records under its own question, and nothing is cached. Every mode, as in
/// [`crafted_upstream_answers_give_servfail_and_are_never_cached`].
#[test]
fn upstream_answer_to_another_question_is_not_accepted() {
    let bench = UpstreamBench::start();
    let cases = upstream_cases();
    let runs: Vec<_> = cases
        .iter()
        .filter(|case| case.known_bug)
        .flat_map(|case| case.modes.iter().map(move |&mode| (case, mode)))
        .collect();
    assert!(!runs.is_empty());
    let failures: Vec<String> = bench
        .run(&runs)
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|err| format!("{name}: {err}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
