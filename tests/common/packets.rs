//! DNS messages built byte by byte, for what no DNS library writes: the crafted packets of
//! RFC 9267 ("Common Implementation Anti-Patterns Related to DNS Resource Record
//! Processing"), seeds for mutation, and the answers of a fake upstream.
//!
//! Names are wire form (`name("a.example.")` is `\x01a\x07example\x00`); nothing here
//! validates, on purpose.

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;
/// EDNS option codes.
pub const OPTION_COOKIE: u16 = 10;
pub const OPTION_PADDING: u16 = 12;
/// Flags: RD for a query; QR, RD and RA for a response.
pub const QUERY_FLAGS: u16 = 0x0100;
pub const RESPONSE_FLAGS: u16 = 0x8180;
/// Offset of the question name, the usual target of a compression pointer.
pub const QUESTION_AT: u16 = 12;

/// A header: ID, flags, then QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// A name in wire form: `"a.example."` (or without the final dot), `"."` for the root.
pub fn name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// `count` labels of `len` letters each, without the root: for names of a chosen length.
pub fn labels(count: usize, len: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(len);
        out.extend(std::iter::repeat_n(b'a', usize::from(len)));
    }
    out
}

/// A compression pointer to `offset`.
pub fn pointer(offset: u16) -> [u8; 2] {
    (0xc000 | offset).to_be_bytes()
}

/// A question: name, type, class.
pub fn question(name: &[u8], qtype: u16) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// A resource record; RDLENGTH is the length of `rdata` (see [`record_claiming`] for one that
/// lies).
pub fn record(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    record_claiming(owner, rtype, ttl, rdata.len() as u16, rdata)
}

/// A resource record whose RDLENGTH says `rdlength`, whatever `rdata` holds.
pub fn record_claiming(owner: &[u8], rtype: u16, ttl: u32, rdlength: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&rdlength.to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// An OPT record (RFC 6891): root owner, payload size in the class, version 0, `rdata`
/// (the options) with an honest RDLENGTH.
pub fn opt(rdata: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&1232u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// One EDNS option: code, length, data.
pub fn option(code: u16, data: &[u8]) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A query for `qname` (wire form) and `qtype`, with RD, and an empty OPT when `edns`.
pub fn raw_query(id: u16, qname: &[u8], qtype: u16, edns: bool) -> Vec<u8> {
    let mut out = header(id, QUERY_FLAGS, [1, 0, 0, u16::from(edns)]);
    out.extend_from_slice(&question(qname, qtype));
    if edns {
        out.extend_from_slice(&opt(&[]));
    }
    out
}

/// A response to `query` (its ID and question copied) with one A record per address, owned
/// by the question name through a pointer, TTL `ttl`.
pub fn a_response(query: &[u8], addresses: &[[u8; 4]], ttl: u32) -> Option<Vec<u8>> {
    let end = question_end(query)?;
    let mut out = header(
        u16::from_be_bytes([query[0], query[1]]),
        RESPONSE_FLAGS,
        [1, addresses.len() as u16, 0, 0],
    );
    out.extend_from_slice(&query[12..end]);
    for address in addresses {
        out.extend_from_slice(&record(&pointer(QUESTION_AT), TYPE_A, ttl, address));
    }
    Some(out)
}

/// The end of the question section of a one-question message (uncompressed name), if it
/// has one.
pub fn question_end(message: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*message.get(at)?);
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    (at + 4 <= message.len()).then_some(at + 4)
}

/// The question name of a one-question message, lower-cased, as text with a final dot.
pub fn question_name(message: &[u8]) -> Option<String> {
    let end = question_end(message)?;
    let mut at = 12;
    let mut text = String::new();
    while at < end - 5 {
        let len = usize::from(message[at]);
        let label = message.get(at + 1..at + 1 + len)?;
        text.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        text.push('.');
        at += 1 + len;
    }
    Some(if text.is_empty() { ".".into() } else { text })
}

/// The header fields of a raw reply that the tests check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub id: u16,
    pub qr: bool,
    pub tc: bool,
    pub rcode: u8,
    pub counts: [u16; 4],
}

pub fn reply_header(reply: &[u8]) -> Option<ReplyHeader> {
    let word = |at: usize| u16::from_be_bytes([reply[at], reply[at + 1]]);
    (reply.len() >= 12).then(|| ReplyHeader {
        id: word(0),
        qr: reply[2] & 0x80 != 0,
        tc: reply[2] & 0x02 != 0,
        rcode: reply[3] & 0x0f,
        counts: [word(4), word(6), word(8), word(10)],
    })
}
