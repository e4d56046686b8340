//! Test rule `hostile_trap`: reads far outside its linear memory (a wasm trap, not a
//! panic), on every `action=attack` event.
#![allow(unsafe_code)]

use vigil_sdk::{Config, Context, Event, Manifest, Rule, Subscription};

/// The rule.
pub struct Hostile;

impl Rule for Hostile {
    fn manifest() -> Manifest {
        Manifest::detection("hostile_trap")
            .version("1.0.0")
            .fields(["user_id"])
            .subscribe(Subscription::action("attack"))
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Hostile)
    }

    fn evaluate(&mut self, ev: &Event<'_>, _ctx: &mut Context) -> bool {
        let far = std::hint::black_box(0xFFFF_FFF0usize - (ev.seq() as usize & 1));
        // SAFETY: none; this rule exists to trap with an out-of-bounds memory access.
        unsafe { std::ptr::read_volatile(far as *const u64) > 0 }
    }
}

vigil_sdk::export_rule!(Hostile);
