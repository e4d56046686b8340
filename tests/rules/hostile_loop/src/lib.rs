//! Test rule `hostile_loop`: loops forever, on every `action=attack` event.

use vigil_sdk::{Config, Context, Event, Manifest, Rule, Subscription};

/// The rule.
pub struct Hostile;

impl Rule for Hostile {
    fn manifest() -> Manifest {
        Manifest::detection("hostile_loop")
            .version("1.0.0")
            .fields(["user_id"])
            .subscribe(Subscription::action("attack"))
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Hostile)
    }

    fn evaluate(&mut self, ev: &Event<'_>, _ctx: &mut Context) -> bool {
        let mut n: u64 = ev.seq() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

vigil_sdk::export_rule!(Hostile);
