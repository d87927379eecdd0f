//! Arbitrary UTF-8 through config::Config::parse, and a table built from what validates.
//! The body is `pathdns_fuzz::config` (fuzz/src/lib.rs), shared with tests/fuzz_smoke.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pathdns_fuzz::config(data));
