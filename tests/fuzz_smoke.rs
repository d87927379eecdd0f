//! The fuzz targets on the stable toolchain: the bodies of `fuzz/fuzz_targets/*` (shared in
//! fuzz/src/lib.rs) run on 100,000 seeded random and mutated inputs each, as a plain
//! `cargo test`, so that every CI run exercises them even where nightly and cargo-fuzz are
//! missing. No coverage feedback: this is a smoke test, not a substitute for `fuzz/run`.
//!
//! An input that panics is written to `target/fuzz-smoke-failures/TARGET-N.bin` (replay it
//! with `cargo +nightly fuzz run TARGET FILE` from fuzz/) and the test fails with its bytes.
//! `PATHDNS_FUZZ_SMOKE_INPUTS=N` changes the number of inputs per target.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

/// The byte mutations, shared with the mutation runs against the real binary.
use crate::common::mutate;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use mutate::{binary_input, mutate_bytes, seed_files};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_INPUTS: usize = 100_000;

fn inputs() -> usize {
    std::env::var("PATHDNS_FUZZ_SMOKE_INPUTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_INPUTS)
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Tokens that config files are made of, and values at the edges of their types.
const CONFIG_TOKENS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    "#",
    "\n",
    ".",
    "*",
    "\\",
    "\"\"",
    "\"\"\"",
    "0",
    "-1",
    "256",
    "65536",
    "4294967296",
    "99999999999999999999",
    "1e400",
    "nan",
    "true",
    "\"0s\"",
    "\"1ns\"",
    "\"99999999999h\"",
    "\"1.5s\"",
    "\"*.x\"",
    "\"*\"",
    "\"x.*\"",
    "\"..\"",
    "\".\"",
    "\"-a.b\"",
    "\"a..b\"",
    "\"::\"",
    "\"::1\"",
    "\"0.0.0.0:0\"",
    "\"[::1]:53\"",
    "\"127.0.0.1:53\"",
    "\"10.0.0.0/33\"",
    "\"system\"",
    "\"\u{10FFFF}\"",
    "\u{0}",
    "\u{FEFF}",
    "\r\n",
    "\t",
    "[server]",
    "[upstream]",
    "[health]",
    "[control]",
    "[log]",
    "[[alert]]",
    "[[name]]",
    "[[registry]]",
    "name",
    "cname",
    "targets",
    "priority",
    "addr",
    "probe",
    "probes",
    "kind",
    "\"tcp\"",
    "\"tls\"",
    "\"https\"",
    "\"icmp\"",
    "\"path\"",
    "port",
    "interval",
    "timeout",
    "rise",
    "fall",
    "jitter",
    "when_all_down",
    "\"keep\"",
    "\"cname\"",
    "\"forward\"",
    "\"servfail\"",
    "fallback",
    "interface",
    "bucket",
    "oss_cname",
    "oss_wildcard",
    "backup",
    "ttl",
    "instance",
    "region",
    "registry",
    "auth",
    "oss",
    "listen",
    "allow",
    "servers",
    "cache_size",
    "max_tcp_connections",
    "tcp_idle_timeout",
    "max_queries_per_connection",
    "max_in_flight",
    "url",
    "level",
    "format",
];

/// Line and token mutations of a seed config: most stay valid UTF-8 and TOML-like.
fn text_input(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = &seeds[rng.random_range(0..seeds.len())];
    let mut lines: Vec<String> = String::from_utf8_lossy(seed)
        .lines()
        .map(str::to_owned)
        .collect();
    for _ in 0..rng.random_range(1..=4) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let at = rng.random_range(0..lines.len());
        match rng.random_range(0..7) {
            0 => {
                lines.remove(at);
            }
            1 => {
                let line = lines[at].clone();
                lines.insert(at, line);
            }
            2 => {
                let other = rng.random_range(0..lines.len());
                lines.swap(at, other);
            }
            3 => {
                // A line from another seed.
                let other = String::from_utf8_lossy(&seeds[rng.random_range(0..seeds.len())])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                if !other.is_empty() {
                    lines.insert(at, other[rng.random_range(0..other.len())].clone());
                }
            }
            4 => {
                // Replace the value of a `key = value` line.
                if let Some(eq) = lines[at].find('=') {
                    let token = CONFIG_TOKENS[rng.random_range(0..CONFIG_TOKENS.len())];
                    lines[at] = format!("{}= {token}", &lines[at][..eq]);
                }
            }
            5 => {
                // A token at a character boundary.
                let line = &mut lines[at];
                let bounds: Vec<usize> = line
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([line.len()])
                    .collect();
                let cut = bounds[rng.random_range(0..bounds.len())];
                let token = CONFIG_TOKENS[rng.random_range(0..CONFIG_TOKENS.len())];
                line.insert_str(cut, token);
            }
            _ => {
                // Cut the line at a character boundary.
                let line = &mut lines[at];
                let bounds: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
                if !bounds.is_empty() {
                    line.truncate(bounds[rng.random_range(0..bounds.len())]);
                }
            }
        }
    }
    let mut text = lines.join("\n");
    if rng.random_bool(0.02) {
        // And sometimes raw bytes, valid UTF-8 or not.
        let mut bytes = text.into_bytes();
        mutate_bytes(rng, &mut bytes, seeds);
        return bytes;
    }
    text.push('\n');
    text.into_bytes()
}

/// Runs `body` on `count` inputs from `generate`; an input that panics fails the test,
/// saved for replay.
fn run(
    target: &str,
    body: fn(&[u8]),
    seeds: &[Vec<u8>],
    generate: fn(&mut StdRng, &[Vec<u8>]) -> Vec<u8>,
) {
    let count = inputs();
    let seed = target.bytes().fold(0x7061_7468_646e_7300_u64, |h, b| {
        h.rotate_left(8) ^ u64::from(b)
    });
    let mut rng = StdRng::seed_from_u64(seed);
    // The seeds themselves first, unmutated.
    let inputs = seeds
        .iter()
        .cloned()
        .chain(std::iter::repeat_with(|| generate(&mut rng, seeds)))
        .take(count.max(seeds.len()));
    let start = std::time::Instant::now();
    for (index, input) in inputs.enumerate() {
        if catch_unwind(AssertUnwindSafe(|| body(&input))).is_err() {
            let dir = repo().join("target").join("fuzz-smoke-failures");
            let saved = std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    let path = dir.join(format!("{target}-{index}.bin"));
                    std::fs::write(&path, &input).map(|()| path)
                })
                .map_or_else(
                    |err| format!("(not saved: {err})"),
                    |p| p.display().to_string(),
                );
            panic!(
                "fuzz target {target}: input {index} panicked (see above); saved to {saved}\n\
                 input: {input:02x?}"
            );
        }
    }
    eprintln!(
        "fuzz smoke: {target}: {} inputs, no panic, {:.1?}",
        count.max(seeds.len()),
        start.elapsed()
    );
}

fn query_seeds() -> Vec<Vec<u8>> {
    seed_files(&repo().join("fuzz/seeds/query"))
}

/// Asserts that at least `percent` of this run's inputs reached a stage (counted by the
/// target bodies): a harness whose inputs all stop at the first check tests nothing.
fn reached(target: &str, stage: &str, counter: &AtomicUsize, percent: usize) {
    let count = counter.load(Ordering::Relaxed);
    let total = inputs();
    eprintln!("fuzz smoke: {target}: {count} of {total} inputs reached {stage}");
    assert!(
        count * 100 >= total * percent,
        "{target}: only {count} of {total} inputs reached {stage} (expected {percent}%)"
    );
}

#[test]
fn fuzz_smoke_query_path() {
    run("query", targets::query, &query_seeds(), binary_input);
    reached(
        "query",
        "a parsed query",
        &targets::REACHED.parsed_queries,
        10,
    );
}

#[test]
fn fuzz_smoke_handler_respond_now() {
    run("handler", targets::handler, &query_seeds(), binary_input);
    let reached_ = &targets::REACHED;
    reached("handler", "an answer at once", &reached_.answered_now, 20);
    reached("handler", "a forward upstream", &reached_.sent_upstream, 5);
}

#[test]
fn fuzz_smoke_upstream_responses() {
    let seeds = seed_files(&repo().join("fuzz/seeds/upstream"));
    run("upstream", targets::upstream, &seeds, binary_input);
    let reached_ = &targets::REACHED;
    reached(
        "upstream",
        "a decoded message",
        &reached_.decoded_messages,
        10,
    );
    reached("upstream", "Forwarder::store", &reached_.stored_answers, 5);
    reached("upstream", "a Prepared body", &reached_.prepared_bodies, 10);
}

#[test]
fn fuzz_smoke_config_parse() {
    let mut seeds = seed_files(&repo().join("config"));
    seeds.push(targets::FIXTURE_CONFIG.as_bytes().to_vec());
    run("config", targets::config, &seeds, text_input);
    reached(
        "config",
        "a valid config",
        &targets::REACHED.valid_configs,
        10,
    );
}

/// The checks are real: a reply or a question that breaks an invariant is caught.
#[test]
fn fuzz_smoke_checks_can_fail() {
    let query = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
    ];
    let mut reply = query.to_vec();
    reply[2] |= 0x80;
    targets::check_reply(&query, &reply, Some(targets::Rcode::NoError), 512);
    let mut wrong_id = reply.clone();
    wrong_id[1] ^= 1;
    for bad in [wrong_id, query.to_vec(), reply[..15].to_vec()] {
        let caught = catch_unwind(|| targets::check_reply(&query, &bad, None, 512));
        assert!(caught.is_err(), "{bad:02x?} passed the reply checks");
    }
    assert!(catch_unwind(|| targets::check_reply(&query, &reply, None, 18)).is_err());
    // Question names of 257 and 256 octets (RFC 1035 allows 255), and a label of 64.
    let mut long: Vec<u8> = (0..4)
        .flat_map(|_| [[63u8].as_slice(), &[b'a'; 63]].concat())
        .collect();
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(long.len(), 257 + 4);
    assert!(catch_unwind(|| targets::check_question(&long)).is_err());
    let mut long_256 = long.clone();
    long_256.remove(1);
    long_256[0] = 62;
    assert_eq!(long_256.len(), 256 + 4);
    assert!(catch_unwind(|| targets::check_question(&long_256)).is_err());
    let mut label_64 = vec![64u8];
    label_64.extend_from_slice(&[b'a'; 64]);
    label_64.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert!(catch_unwind(|| targets::check_question(&label_64)).is_err());
    targets::check_question(&long[64..]);
}
