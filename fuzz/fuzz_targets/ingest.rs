//! libFuzzer target `ingest`: arbitrary bytes through the body parser, validation and the
//! masker (see `vigil_fuzz::ingest` for the invariants).
//! Run with: scripts/fuzz.sh ingest 600

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::ingest(data));
