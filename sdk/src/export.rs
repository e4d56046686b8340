//! The wasm32 exports of ABI.md: [`export_rule!`](crate::export_rule) and the guest-owned
//! statics it uses (input area, verdict array, manifest text, rule instance).
//!
//! The macro expands to nothing natively (apart from a check that the type is a
//! [`crate::Rule`]); on `wasm32` it generates `vigil_manifest`, `vigil_input_area`,
//! `vigil_verdicts`, `vigil_init`, `vigil_evaluate` and the ABI version globals, all thin
//! calls into [`crate::Runtime`].

/// Exports a [`Rule`](crate::Rule) type as a Vigil rule module (once per crate).
///
/// On `wasm32` this generates every export of ABI.md; natively it only checks the type,
/// so the crate's own `cargo test` runs the rule through [`crate::testing`].
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            /// ABI major version (ABI.md); exported as a global holding its address.
            #[unsafe(no_mangle)]
            pub static VIGIL_ABI_MAJOR: u32 = $crate::ABI_MAJOR;
            /// ABI minor version (ABI.md); exported as a global holding its address.
            #[unsafe(no_mangle)]
            pub static VIGIL_ABI_MINOR: u32 = $crate::ABI_MINOR;

            static RULE: $crate::__private::RuleSlot<$rule> = $crate::__private::RuleSlot::new();

            #[unsafe(no_mangle)]
            pub extern "C" fn vigil_manifest() -> i64 {
                $crate::__private::manifest::<$rule>(&RULE)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn vigil_input_area() -> i64 {
                $crate::__private::input_area()
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn vigil_verdicts() -> i64 {
                $crate::__private::verdicts()
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn vigil_init(config_len: i32) -> i32 {
                $crate::__private::init(&RULE, config_len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn vigil_evaluate(n_events: i32) -> i32 {
                $crate::__private::evaluate(&RULE, n_events)
            }
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_a_rule<R: $crate::Rule>() {}
            is_a_rule::<$rule>();
        };
    };
}

/// Support for [`export_rule!`](crate::export_rule); not an API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    #![allow(unsafe_code)]

    use std::cell::UnsafeCell;

    use crate::abi;
    use crate::rule::{Rule, Runtime};
    use crate::{INPUT_AREA_BYTES, MAX_EVENTS_PER_CALL};

    /// A static the guest owns.
    pub struct GuestCell<T>(UnsafeCell<T>);

    // SAFETY: wasm32-unknown-unknown has no threads: one export runs at a time and the host
    // never re-enters the guest from an import, so these statics are never shared.
    unsafe impl<T> Sync for GuestCell<T> {}

    #[repr(C, align(8))]
    struct InputArea([u8; INPUT_AREA_BYTES]);

    static INPUT: GuestCell<InputArea> = GuestCell(UnsafeCell::new(InputArea([0; INPUT_AREA_BYTES])));
    static VERDICTS: GuestCell<[u8; MAX_EVENTS_PER_CALL]> = GuestCell(UnsafeCell::new([0; MAX_EVENTS_PER_CALL]));
    static MANIFEST: GuestCell<Option<String>> = GuestCell(UnsafeCell::new(None));

    /// The rule instance, set by `vigil_init`.
    pub struct RuleSlot<R>(GuestCell<Option<Runtime<R>>>);

    impl<R> RuleSlot<R> {
        /// Empty until init.
        #[allow(clippy::new_without_default)]
        pub const fn new() -> RuleSlot<R> {
            RuleSlot(GuestCell(UnsafeCell::new(None)))
        }
    }

    fn pack(ptr: *const u8, len: usize) -> i64 {
        (((ptr as usize as u64) << 32) | (len as u64 & 0xFFFF_FFFF)) as i64
    }

    fn input() -> &'static [u8] {
        // SAFETY: the host writes the area only between export calls; within a call the
        // guest only reads it (see GuestCell).
        unsafe { &(*INPUT.0.get()).0 }
    }

    /// `vigil_manifest`: the static manifest before init, the configured one after it
    /// (ABI 1.3).
    pub fn manifest<R: Rule>(rule: &RuleSlot<R>) -> i64 {
        // SAFETY: only this function touches MANIFEST, and only init and evaluate touch the
        // rule slot, never re-entrantly.
        let (slot, runtime) = unsafe { (&mut *MANIFEST.0.get(), &*rule.0.0.get()) };
        let text = match runtime {
            Some(runtime) => slot.insert(runtime.manifest().to_json()),
            None => slot.get_or_insert_with(|| R::manifest().to_json()),
        };
        pack(text.as_ptr(), text.len())
    }

    /// `vigil_input_area`.
    pub fn input_area() -> i64 {
        pack(INPUT.0.get().cast::<u8>(), INPUT_AREA_BYTES)
    }

    /// `vigil_verdicts`.
    pub fn verdicts() -> i64 {
        pack(VERDICTS.0.get().cast::<u8>(), MAX_EVENTS_PER_CALL)
    }

    fn install_panic_hook() {
        std::panic::set_hook(Box::new(|info| {
            let msg = format!("Rule panicked: {info}");
            abi::log(0, msg.as_bytes());
        }));
    }

    /// `vigil_init`.
    pub fn init<R: Rule>(slot: &RuleSlot<R>, config_len: i32) -> i32 {
        install_panic_hook();
        let Some(config) = usize::try_from(config_len).ok().and_then(|n| input().get(..n)) else {
            abi::log(0, b"Rule init refused: config_len outside the input area");
            return 1;
        };
        match Runtime::<R>::init(config) {
            Ok(runtime) => {
                // SAFETY: only init and evaluate touch the slot, never re-entrantly.
                unsafe { *slot.0.0.get() = Some(runtime) };
                0
            }
            Err(msg) => {
                abi::log(0, format!("Rule init refused: {msg}").as_bytes());
                1
            }
        }
    }

    /// `vigil_evaluate`.
    pub fn evaluate<R: Rule>(slot: &RuleSlot<R>, n_events: i32) -> i32 {
        // SAFETY: only init and evaluate touch the slot, never re-entrantly.
        let Some(runtime) = (unsafe { &mut *slot.0.0.get() }).as_mut() else {
            abi::log(0, b"Rule evaluate called before a successful init");
            return 1;
        };
        // SAFETY: the verdict array is written only here, and read by the host between calls.
        let verdicts = unsafe { &mut *VERDICTS.0.get() };
        let n = usize::try_from(n_events).unwrap_or(usize::MAX);
        match runtime.evaluate(input(), n, verdicts) {
            Ok(()) => 0,
            Err(e) => {
                abi::log(0, format!("Rule evaluate failed: {e}").as_bytes());
                e.code()
            }
        }
    }
}
