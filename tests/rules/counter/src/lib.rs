//! Test rule `counter`: offered every authentication event, matches each one. Built twice
//! (with and without feature `v2`) to hot-swap versions while clients ingest.

use vigil_sdk::{Config, Context, Event, Manifest, Rule, Subscription};

/// The rule.
pub struct Counter;

impl Rule for Counter {
    fn manifest() -> Manifest {
        let version = if cfg!(feature = "v2") { "2.0.0" } else { "1.0.0" };
        Manifest::detection("counter")
            .version(version)
            .fields(["user_id"])
            .subscribe(Subscription::category("authentication"))
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Counter)
    }

    fn evaluate(&mut self, _ev: &Event<'_>, _ctx: &mut Context) -> bool {
        true
    }
}

vigil_sdk::export_rule!(Counter);
