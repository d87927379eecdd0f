//! A client packet through dns::Handler::respond_now on a table built from a small config.
//! The body is `pathdns_fuzz::handler` (fuzz/src/lib.rs), shared with tests/fuzz_smoke.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pathdns_fuzz::handler(data));
