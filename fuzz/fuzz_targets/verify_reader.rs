//! libFuzzer target `verify_reader`: arbitrary bytes as an export file for the offline
//! verifier (see `vigil_fuzz::verify_reader` for the invariants).
//! Run with: scripts/fuzz.sh verify_reader 600

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::verify_reader(data));
