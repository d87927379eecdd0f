#!/usr/bin/env python3
"""Writes the seed inputs of pathdns's fuzz targets (fuzz/seeds/query, fuzz/seeds/upstream).

    python3 fuzz/seeds/generate.py

The output is deterministic and committed; run this again only after changing it. Seeds
are starting points for libFuzzer (fuzz/run passes them as a read-only corpus) and for the
stable stand-in (tests/fuzz_smoke.rs mutates them). The config target's seeds are the
example configs in config/.

query/: well-formed queries for owned and forwarded names (plain, EDNS with options, the
RFC 8906 matrix's odd cases) and crafted malformed packets after RFC 9267 (compression
pointer loops, oversized labels and names, counts and RDLENGTH past the end).
upstream/: upstream responses (answers, CNAME chains, NXDOMAIN and NODATA with an SOA,
truncated, with OPT) and crafted malformed ones.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

A, NS, CNAME, SOA, MX, TXT, AAAA, SRV, OPT, AXFR, ANY = 1, 2, 5, 6, 15, 16, 28, 33, 41, 252, 255
IN = 1


def name(text):
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def header(ident, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", ident, flags, qd, an, ns, ar)


def question(qname, qtype=A, qclass=IN):
    return name(qname) + struct.pack(">HH", qtype, qclass)


def opt(payload=1232, version=0, do=False, flags=0, options=b"", ext_rcode=0):
    ttl = (ext_rcode << 24) | (version << 16) | (0x8000 if do else 0) | flags
    return b"\x00" + struct.pack(">HHIH", OPT, payload, ttl, len(options)) + options


def option(code, data=b""):
    return struct.pack(">HH", code, len(data)) + data


def rr(owner, rtype, rdata, ttl=300, rclass=IN):
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


REGISTRY = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com"
BUCKET = "mybucket.oss-cn-hangzhou-internal.aliyuncs.com"
FORWARDED = "www.upstream.example"
RD = 0x0100
PTR_Q = b"\xc0\x0c"  # a pointer to the question name


def queries():
    seeds = {}
    seeds["plain-a"] = header(0x1001, RD) + question(REGISTRY)
    seeds["plain-aaaa-bucket"] = header(0x1002, RD) + question(BUCKET, AAAA)
    seeds["any"] = header(0x1003, RD) + question(REGISTRY, ANY)
    seeds["axfr"] = header(0x1004, 0) + question(REGISTRY, AXFR)
    seeds["cname-type"] = header(0x1005, RD) + question("alias.internal.example", CNAME)
    seeds["forwarded"] = header(0x1006, RD) + question(FORWARDED)
    seeds["edns"] = header(0x1007, RD, ar=1) + question(REGISTRY) + opt()
    seeds["edns-do-4096"] = header(0x1008, RD, ar=1) + question(REGISTRY) + opt(4096, do=True)
    seeds["edns-small-payload"] = header(0x1009, RD, ar=1) + question("many.internal.example") + opt(100)
    seeds["edns1"] = header(0x100A, RD, ar=1) + question(REGISTRY) + opt(version=1)
    seeds["edns-unknown-option"] = (
        header(0x100B, RD, ar=1) + question(REGISTRY) + opt(options=option(100, b"\x01\x02\x03"))
    )
    seeds["edns-unknown-flag"] = header(0x100C, RD, ar=1) + question(REGISTRY) + opt(flags=0x0080)
    seeds["edns-cookie"] = (
        header(0x100D, RD, ar=1) + question(FORWARDED) + opt(options=option(10, bytes(range(8))))
    )
    seeds["edns-nsid"] = header(0x100E, RD, ar=1) + question(REGISTRY) + opt(options=option(3))
    seeds["opcode15"] = header(0x100F, RD | (15 << 11)) + question(REGISTRY)
    seeds["notify"] = header(0x1010, 4 << 11) + question(REGISTRY, SOA)
    seeds["class-chaos"] = header(0x1011, RD) + question("version.bind", TXT, 3)
    seeds["z-ad-cd"] = header(0x1012, RD | 0x0070) + question(REGISTRY)
    seeds["big-answer"] = header(0x1013, RD) + question("many.internal.example")
    seeds["root"] = header(0x1014, RD) + b"\x00" + struct.pack(">HH", NS, IN)
    # Malformed (RFC 9267 and friends).
    seeds["short-header"] = header(0x2001, RD)[:11]
    seeds["qr-set"] = header(0x2002, 0x8000 | RD) + question(REGISTRY)
    seeds["qdcount0"] = header(0x2003, RD, qd=0)
    seeds["qdcount2"] = header(0x2004, RD, qd=2) + question(REGISTRY) + question(FORWARDED)
    seeds["question-pointer-loop"] = header(0x2005, RD) + PTR_Q + struct.pack(">HH", A, IN)
    seeds["label-64"] = header(0x2006, RD) + b"\x40" + b"a" * 64 + b"\x00" + struct.pack(">HH", A, IN)
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets
    seeds["name-257"] = header(0x2007, RD) + long_name + struct.pack(">HH", A, IN)
    name_256 = b"".join(b"\x3f" + b"a" * 63 for _ in range(3)) + b"\x3e" + b"a" * 62 + b"\x00"
    seeds["name-256"] = header(0x2008, RD) + name_256 + struct.pack(">HH", A, IN)
    seeds["question-cut"] = (header(0x2009, RD) + question(REGISTRY))[:30]
    seeds["arcount-past-end"] = header(0x200A, RD, ar=0xFFFF) + question(REGISTRY) + opt()
    seeds["ancount-set"] = header(0x200B, RD, an=1) + question(REGISTRY)
    bad_opt = opt()[:-2] + struct.pack(">H", 500)
    seeds["opt-rdlength-past-end"] = header(0x200C, RD, ar=1) + question(REGISTRY) + bad_opt
    seeds["two-opts"] = header(0x200D, RD, ar=2) + question(REGISTRY) + opt() + opt()
    loop_owner = header(0x200E, RD, ar=1) + question(REGISTRY)
    at = len(loop_owner)
    seeds["additional-pointer-loop"] = (
        loop_owner + struct.pack(">H", 0xC000 | at) + struct.pack(">HHIH", OPT, 1232, 0, 0)
    )
    seeds["opt-not-root"] = header(0x200F, RD, ar=1) + question(REGISTRY) + rr(PTR_Q, OPT, b"")
    return seeds


def responses():
    seeds = {}
    resp = 0x8180  # QR, RD, RA
    q = question(FORWARDED)
    seeds["a-two"] = (
        header(0x3001, resp, an=2) + q
        + rr(PTR_Q, A, bytes([192, 0, 2, 1])) + rr(PTR_Q, A, bytes([192, 0, 2, 2]), ttl=60)
    )
    target = name("edge.cdn.example")
    seeds["cname-chain"] = (
        header(0x3002, resp, an=2) + q + rr(PTR_Q, CNAME, target)
        + rr(b"\xc0" + bytes([12 + len(q)]), A, bytes([192, 0, 2, 3]))
    )
    soa = name("ns.example") + name("hostmaster.example") + struct.pack(">IIIII", 1, 3600, 600, 86400, 30)
    seeds["nxdomain-soa"] = header(0x3003, resp | 3, ns=1) + q + rr(name("example"), SOA, soa, ttl=30)
    seeds["nodata-soa"] = header(0x3004, resp, ns=1) + question(FORWARDED, AAAA) + rr(name("example"), SOA, soa)
    seeds["truncated"] = header(0x3005, resp | 0x0200) + q
    seeds["with-opt-cookie"] = (
        header(0x3006, resp, an=1, ar=1) + q + rr(PTR_Q, A, bytes([192, 0, 2, 4]))
        + opt(options=option(10, bytes(range(24))))
    )
    seeds["aaaa"] = header(0x3007, resp, an=1) + question(FORWARDED, AAAA) + rr(PTR_Q, AAAA, bytes(15) + b"\x01")
    mx = struct.pack(">H", 10) + name("mail.example")
    seeds["mx"] = header(0x3008, resp, an=1) + question(FORWARDED, MX) + rr(PTR_Q, MX, mx)
    seeds["txt"] = header(0x3009, resp, an=1) + question(FORWARDED, TXT) + rr(PTR_Q, TXT, b"\x05hello\x00")
    srv = struct.pack(">HHH", 1, 2, 443) + name("svc.example")
    seeds["srv"] = header(0x300A, resp, an=1) + question(FORWARDED, SRV) + rr(PTR_Q, SRV, srv)
    seeds["servfail"] = header(0x300B, resp | 2) + q
    seeds["ttl-zero"] = header(0x300C, resp, an=1) + q + rr(PTR_Q, A, bytes([192, 0, 2, 5]), ttl=0)
    seeds["referral"] = (
        header(0x300D, 0x8100, ns=1, ar=1) + q + rr(name("example"), NS, name("ns.example"))
        + rr(name("ns.example"), A, bytes([192, 0, 2, 53]))
    )
    # Malformed (RFC 9267): pointer loops, forward pointers, counts and RDLENGTH past the end.
    loop_at = 12 + len(q)
    seeds["answer-pointer-loop"] = (
        header(0x4001, resp, an=1) + q + struct.pack(">H", 0xC000 | loop_at)
        + struct.pack(">HHIH", A, IN, 300, 4) + bytes(4)
    )
    seeds["pointer-forward"] = (
        header(0x4002, resp, an=1) + q + struct.pack(">H", 0xC000 | (loop_at + 40))
        + struct.pack(">HHIH", A, IN, 300, 4) + bytes(4)
    )
    seeds["two-pointer-loop"] = (
        header(0x4003, resp, an=1) + q + struct.pack(">H", 0xC000 | (loop_at + 2))
        + struct.pack(">H", 0xC000 | loop_at) + struct.pack(">HHIH", A, IN, 300, 4) + bytes(4)
    )
    seeds["ancount-past-end"] = header(0x4004, resp, an=50) + q + rr(PTR_Q, A, bytes(4))
    seeds["rdlength-past-end"] = header(0x4005, resp, an=1) + q + PTR_Q + struct.pack(">HHIH", A, IN, 300, 900) + bytes(4)
    seeds["a-rdlength-5"] = header(0x4006, resp, an=1) + q + rr(PTR_Q, A, bytes(5))
    chain = b""
    for i in range(130):  # a name longer than 255 octets through pointers
        chain += b"\x01a"
    seeds["name-past-255"] = header(0x4007, resp, an=1) + q + chain + PTR_Q + struct.pack(">HHIH", A, IN, 300, 4) + bytes(4)
    seeds["cname-rdata-pointer-loop"] = (
        header(0x4008, resp, an=1) + q + PTR_Q + struct.pack(">HHIH", CNAME, IN, 300, 2)
        + struct.pack(">H", 0xC000 | (loop_at + 12))
    )
    # Found by the upstream target: an UPDATE-opcode reply (QR clear, as found, and set) with
    # an RDLENGTH 0 record, which hickory-proto decodes as an update placeholder.
    seeds["opcode-update-empty-rdata"] = (
        header(0x3009, 0x2C80, an=1) + question(FORWARDED, TXT)
        + PTR_Q + struct.pack(">HHIH", TXT, IN, 0, 0)
    )
    seeds["opcode-update-empty-a"] = (
        header(0x400A, 0x8000 | (5 << 11) | 0x0180, an=1) + q + PTR_Q + struct.pack(">HHIH", A, IN, 300, 0)
    )
    return seeds


def write(directory, seeds):
    path = os.path.join(HERE, directory)
    os.makedirs(path, exist_ok=True)
    for old in os.listdir(path):
        os.remove(os.path.join(path, old))
    for key, data in sorted(seeds.items()):
        with open(os.path.join(path, key + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("query", queries())
    write("upstream", responses())
