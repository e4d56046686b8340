//! Test rule `hostile_alloc`: allocates without end, on every `action=attack` event.

use vigil_sdk::{Config, Context, Event, Manifest, Rule, Subscription};

/// The rule.
pub struct Hostile;

impl Rule for Hostile {
    fn manifest() -> Manifest {
        Manifest::detection("hostile_alloc")
            .version("1.0.0")
            .fields(["user_id"])
            .subscribe(Subscription::action("attack"))
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Hostile)
    }

    fn evaluate(&mut self, ev: &Event<'_>, _ctx: &mut Context) -> bool {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![ev.seq() as u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

vigil_sdk::export_rule!(Hostile);
