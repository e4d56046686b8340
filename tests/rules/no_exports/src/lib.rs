//! Test module: a valid WebAssembly module with none of the rule ABI's exports.
#![allow(unsafe_code)]

/// Not a rule entry point.
#[unsafe(no_mangle)]
pub extern "C" fn hello(x: i32) -> i32 {
    x + 1
}
