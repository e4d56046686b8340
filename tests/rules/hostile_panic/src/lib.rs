//! Test rule `hostile_panic`: panics, on every `action=attack` event.

use vigil_sdk::{Config, Context, Event, Manifest, Rule, Subscription};

/// The rule.
pub struct Hostile;

impl Rule for Hostile {
    fn manifest() -> Manifest {
        Manifest::detection("hostile_panic")
            .version("1.0.0")
            .fields(["user_id"])
            .subscribe(Subscription::action("attack"))
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Hostile)
    }

    fn evaluate(&mut self, ev: &Event<'_>, _ctx: &mut Context) -> bool {
        panic!("hostile_panic refuses event {}", ev.seq())
    }
}

vigil_sdk::export_rule!(Hostile);
