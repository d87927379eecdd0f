//! A client packet through wire::parse_query and every response writer.
//! The body is `pathdns_fuzz::query` (fuzz/src/lib.rs), shared with tests/fuzz_smoke.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pathdns_fuzz::query(data));
