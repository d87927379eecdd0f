//! Mutations of DNS messages, shared by the tests that throw bad input at pathdns: the fuzz
//! targets' stable stand-in (tests/fuzz_smoke.rs, in process) and the mutation runs against
//! the real binary (tests/bad_input.rs, over UDP and TCP, and through a fake upstream).
//!
//! Two kinds: [`mutate_bytes`] knows nothing about DNS (bit flips, interesting values,
//! cuts, repeats, splices, a pointer anywhere); [`mutate_message`] knows the layout of a
//! message (counts, names, labels, RDLENGTH, EDNS options, record boundaries) and breaks it
//! the ways RFC 9267 lists: compression pointers to themselves, to each other, forward and
//! past the end; labels over 63 octets; names over 255; counts and lengths past the end.
//! [`mutate_query`] and [`mutate_response`] stack both and keep what makes a message reach
//! the code under test (QR clear for a query; ID, QR and opcode for an upstream's answer).

use std::path::Path;

use rand::rngs::StdRng;
use rand::Rng;

/// The seed files (`.bin`, `.toml`) in `dir`, sorted (the seed order must not depend on the
/// file system): e.g. the fuzz targets' committed seeds in fuzz/seeds/query.
pub fn seed_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read seeds in {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "bin" || ext == "toml")
        })
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|path| std::fs::read(path).expect("read seed"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Values that break parsers: lengths at their limits, pointer bits, the OPT type.
pub const INTERESTING_BYTES: [u8; 12] =
    [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xc0, 0xfe, 0xff, 12, 41];
pub const INTERESTING_WORDS: [u16; 10] = [0, 1, 2, 12, 41, 255, 512, 1232, 0x7fff, 0xffff];

/// One to four stacked mutations of a seed, or (sometimes) fresh random bytes.
pub fn binary_input(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_bool(0.05) {
        let len = rng.random_range(0..600);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        mutate_bytes(rng, &mut data, seeds);
    }
    data
}

pub fn mutate_bytes(rng: &mut StdRng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    if data.is_empty() {
        data.push(rng.random());
        return;
    }
    let at = rng.random_range(0..data.len());
    match rng.random_range(0..10) {
        0 => data[at] ^= 1 << rng.random_range(0..8),
        1 => data[at] = rng.random(),
        2 => data[at] = INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())],
        3 if at + 1 < data.len() => {
            // Counts, lengths, types, pointers: two bytes at a time.
            let word = INTERESTING_WORDS[rng.random_range(0..INTERESTING_WORDS.len())];
            data[at..at + 2].copy_from_slice(&word.to_be_bytes());
        }
        4 => data.truncate(at),
        5 => {
            let len = rng.random_range(1..=16).min(data.len() - at);
            data.drain(at..at + len);
        }
        6 => {
            let extra: Vec<u8> = (0..rng.random_range(1..=16))
                .map(|_| rng.random())
                .collect();
            data.splice(at..at, extra);
        }
        7 => {
            // Repeat a chunk: long names, many records.
            let len = rng.random_range(1..=64).min(data.len() - at);
            let chunk = data[at..at + len].to_vec();
            for _ in 0..rng.random_range(1..=8) {
                data.splice(at..at, chunk.iter().copied());
            }
        }
        8 => {
            // Splice in the tail of another seed.
            let other = &seeds[rng.random_range(0..seeds.len())];
            let from = rng.random_range(0..other.len().max(1));
            data.truncate(at);
            data.extend_from_slice(other.get(from..).unwrap_or_default());
        }
        _ => {
            // A compression pointer to anywhere.
            let target = rng.random_range(0..data.len().max(1) as u16 + 16);
            let pointer = (0xc000 | target).to_be_bytes();
            data.splice(at..at.saturating_add(2).min(data.len()), pointer);
        }
    }
}

/// Where the parts of a message start, as far as its counts hold: what [`mutate_message`]
/// aims at.
#[derive(Debug, Default)]
struct Layout {
    /// Start of each name: the question's, each record's owner, names at the start of
    /// RDATA (CNAME, SOA, ...).
    names: Vec<usize>,
    /// Offset of each record's RDLENGTH.
    rdlengths: Vec<usize>,
    /// Each record's first and one-past-last offset.
    records: Vec<(usize, usize)>,
    /// Offset of each EDNS option's length field.
    option_lengths: Vec<usize>,
    /// Ends of the question and of each record: places to cut.
    boundaries: Vec<usize>,
}

/// The end of the (possibly compressed) name at `at`, without following pointers.
fn name_end(data: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *data.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(len),
            0xc0..=0xff => return (at + 2 <= data.len()).then_some(at + 2),
            _ => return None,
        }
    }
}

fn layout(data: &[u8]) -> Layout {
    let mut layout = Layout::default();
    if data.len() < 12 {
        return layout;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
    let mut at = 12;
    for _ in 0..count(4).min(4) {
        layout.names.push(at);
        let Some(end) = name_end(data, at) else {
            return layout;
        };
        at = end + 4;
        if at > data.len() {
            return layout;
        }
        layout.boundaries.push(at);
    }
    let records = count(6) + count(8) + count(10);
    for _ in 0..records.min(64) {
        let start = at;
        layout.names.push(at);
        let Some(end) = name_end(data, at) else {
            return layout;
        };
        let Some(fixed) = data.get(end..end + 10) else {
            return layout;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        layout.rdlengths.push(end + 8);
        let rdata = end + 10;
        at = rdata + rdlength;
        if at > data.len() {
            return layout;
        }
        match rtype {
            // Names first in RDATA: CNAME, NS, PTR, SOA (MNAME), MX has a preference first.
            2 | 5 | 6 | 12 if rdlength > 0 => layout.names.push(rdata),
            41 => {
                let mut option = rdata;
                while option + 4 <= at {
                    layout.option_lengths.push(option + 2);
                    let len = usize::from(u16::from_be_bytes([data[option + 2], data[option + 3]]));
                    option += 4 + len;
                }
            }
            _ => {}
        }
        layout.records.push((start, at));
        layout.boundaries.push(at);
    }
    layout
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())])
}

/// Pointer targets that RFC 9267 says a parser must refuse, and some it must accept.
fn pointer_target(rng: &mut StdRng, data: &[u8], at: usize, layout: &Layout) -> u16 {
    let later = layout
        .names
        .iter()
        .copied()
        .filter(|&n| n > at)
        .collect::<Vec<_>>();
    let target = match rng.random_range(0..7) {
        0 => at,                                        // to itself
        1 => pick(rng, &later).unwrap_or(at + 2),       // forward
        2 => data.len() + rng.random_range(0..64),      // past the end
        3 => 0x3fff,                                    // as far as it goes
        4 => rng.random_range(0..12),                   // into the header
        5 => at.saturating_sub(rng.random_range(1..4)), // just before: mid-label
        _ => pick(rng, &layout.names).unwrap_or(12),    // another name, maybe earlier
    };
    (target as u16) & 0x3fff
}

/// One mutation that knows the message format (see the module comment).
pub fn mutate_message(rng: &mut StdRng, data: &mut Vec<u8>) {
    if data.len() < 12 {
        data.resize(12, 0);
    }
    let layout = layout(data);
    match rng.random_range(0..10) {
        0 => {
            // A count: off by one, or far past the end.
            let at = 4 + 2 * rng.random_range(0..4);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            let new = match rng.random_range(0..3) {
                0 => old.wrapping_add(1),
                1 => old.wrapping_sub(1),
                _ => INTERESTING_WORDS[rng.random_range(0..INTERESTING_WORDS.len())],
            };
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
        }
        1 => {
            // A label length: over 63, the reserved 0x40 and 0x80 types, or 0 mid-name.
            if let Some(start) = pick(rng, &layout.names) {
                let mut at = start;
                for _ in 0..rng.random_range(0..3) {
                    match data.get(at) {
                        Some(&len @ 1..=63) => at += 1 + usize::from(len),
                        _ => break,
                    }
                }
                if let Some(byte) = data.get_mut(at) {
                    *byte = pick(rng, &[0, 0x3f, 0x40, 0x41, 0x7f, 0x80, 0xbf]).unwrap_or(0x40);
                }
            }
        }
        2 | 3 => {
            // A name replaced by a compression pointer: to itself, forward, past the end...
            // or two names pointing at each other.
            if let Some(at) = pick(rng, &layout.names) {
                let target = pointer_target(rng, data, at, &layout);
                let end = name_end(data, at)
                    .unwrap_or(data.len())
                    .max(at + 2)
                    .min(data.len());
                data.splice(at..end, super_pointer(target));
                if rng.random_bool(0.3) {
                    // The target's own name points back here.
                    let back = super_pointer(at as u16);
                    let target = usize::from(target);
                    if target + 2 <= data.len() {
                        data[target..target + 2].copy_from_slice(&back);
                    }
                }
            }
        }
        4 => {
            // A name longer than 255 octets: labels put in front of one (with its pointer,
            // if it has one, the whole is longer still).
            if let Some(at) = pick(rng, &layout.names) {
                let count = rng.random_range(3..6);
                let len = rng.random_range(50..=63u8);
                let mut long = Vec::new();
                for _ in 0..count {
                    long.push(len);
                    long.extend(std::iter::repeat_n(b'x', usize::from(len)));
                }
                data.splice(at..at, long);
            }
        }
        5 => {
            // RDLENGTH: off by one, zero, or past the end.
            if let Some(at) = pick(rng, &layout.rdlengths) {
                let old = u16::from_be_bytes([data[at], data[at + 1]]);
                let new = match rng.random_range(0..4) {
                    0 => old.wrapping_add(1),
                    1 => old.wrapping_sub(1),
                    2 => (data.len() - at) as u16 + rng.random_range(0..32),
                    _ => INTERESTING_WORDS[rng.random_range(0..INTERESTING_WORDS.len())],
                };
                data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            }
        }
        6 => {
            // An EDNS option's length past its RDATA (or an option added, cut short).
            match pick(rng, &layout.option_lengths) {
                Some(at) => {
                    let new = rng.random_range(1..=600u16);
                    data[at..at + 2].copy_from_slice(&new.to_be_bytes());
                }
                None => data.extend_from_slice(&[0, 0x0a, 0x01, 0x00, 1, 2, 3]),
            }
        }
        7 => {
            // A record twice (two OPTs, a repeated answer), counted or not.
            if let Some((start, end)) = pick(rng, &layout.records) {
                let copy = data[start..end].to_vec();
                data.extend_from_slice(&copy);
                if rng.random_bool(0.7) {
                    let at = 4 + 2 * rng.random_range(1..4);
                    let old = u16::from_be_bytes([data[at], data[at + 1]]);
                    data[at..at + 2].copy_from_slice(&old.wrapping_add(1).to_be_bytes());
                }
            }
        }
        8 => {
            // Cut at a boundary between parts, or a byte either side of one.
            if let Some(at) = pick(rng, &layout.boundaries) {
                let cut = (at + rng.random_range(0..3))
                    .saturating_sub(1)
                    .min(data.len());
                data.truncate(cut.max(rng.random_range(0..=12)));
            } else {
                data.truncate(rng.random_range(0..=data.len()));
            }
        }
        _ => {
            // Flags and rcode: anything (the callers put back what must stay).
            data[2] = rng.random();
            data[3] = rng.random();
        }
    }
}

fn super_pointer(target: u16) -> [u8; 2] {
    (0xc000 | (target & 0x3fff)).to_be_bytes()
}

/// A mutated query: one to three mutations of `seed` that know the format, sometimes a few
/// blind ones on top, and QR clear nine times in ten (so that it is processed, not dropped).
pub fn mutate_query(rng: &mut StdRng, seed: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        mutate_message(rng, &mut data);
    }
    if rng.random_bool(0.3) {
        mutate_bytes(rng, &mut data, seeds);
    }
    if data.len() > 2 && rng.random_bool(0.9) {
        data[2] &= 0x7f;
    }
    data
}

/// A mutated upstream answer to a query: mutations of `seed` (built for that query), then
/// the ID, QR and opcode put back nine times in ten, so that the forwarder does not simply
/// ignore it as someone else's. `keep_opcode`: never opcode UPDATE (5), the one opcode whose
/// records hickory-proto decodes with empty RDATA (see
/// `TOLERATE_UPDATE_OPCODE_FROM_UPSTREAM` in tests/bad_input.rs).
pub fn mutate_response(
    rng: &mut StdRng,
    seed: &[u8],
    seeds: &[Vec<u8>],
    keep_opcode: bool,
) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        mutate_message(rng, &mut data);
    }
    if rng.random_bool(0.2) {
        mutate_bytes(rng, &mut data, seeds);
    }
    if data.len() >= 4 && seed.len() >= 4 && rng.random_bool(0.9) {
        data[..2].copy_from_slice(&seed[..2]);
        data[2] = (data[2] & 0x07) | (seed[2] & 0xf8);
    }
    if data.len() >= 3 && keep_opcode && (data[2] >> 3) & 0x0f == 5 {
        data[2] &= 0x87;
    }
    data
}
