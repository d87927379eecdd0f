//! Upstream answers: Prepared::from_encoded, hickory-proto decoding and Forwarder::store.
//! The body is `pathdns_fuzz::upstream` (fuzz/src/lib.rs), shared with tests/fuzz_smoke.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pathdns_fuzz::upstream(data));
