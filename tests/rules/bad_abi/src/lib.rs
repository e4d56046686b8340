//! Test module: has every export a rule needs but declares ABI major 2, which the host refuses.
#![allow(unsafe_code)]

/// ABI major (wrong on purpose).
#[unsafe(no_mangle)]
pub static VIGIL_ABI_MAJOR: u32 = 2;
/// ABI minor.
#[unsafe(no_mangle)]
pub static VIGIL_ABI_MINOR: u32 = 0;

static MANIFEST: &[u8] = br#"{"name":"bad_abi","version":"1.0.0","kind":"detection"}"#;

/// Manifest location.
#[unsafe(no_mangle)]
pub extern "C" fn vigil_manifest() -> i64 {
    ((MANIFEST.as_ptr() as i64) << 32) | MANIFEST.len() as i64
}

/// Input area location (points at the manifest: never written, the host refuses first).
#[unsafe(no_mangle)]
pub extern "C" fn vigil_input_area() -> i64 {
    vigil_manifest()
}

/// Verdicts location.
#[unsafe(no_mangle)]
pub extern "C" fn vigil_verdicts() -> i64 {
    vigil_manifest()
}

/// Init.
#[unsafe(no_mangle)]
pub extern "C" fn vigil_init(_len: i32) -> i32 {
    0
}

/// Evaluate.
#[unsafe(no_mangle)]
pub extern "C" fn vigil_evaluate(_n: i32) -> i32 {
    0
}
