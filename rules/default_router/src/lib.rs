//! `default_router`: the routing rule that sends alerts to receivers by severity.
//!
//! P1: pager, chat, email. P2: chat, email, pager. P3: email. P4: digest. Each list can
//! be replaced in the configuration (`{"P3": ["email", "chat"]}` or `{"P3": "email,chat"}`).

use vigil_sdk::{Config, Context, Event, Manifest, Rule};

/// The rule: receivers per severity, `P1` first.
pub struct DefaultRouter {
    receivers: [Vec<String>; 4],
}

impl Rule for DefaultRouter {
    fn manifest() -> Manifest {
        Manifest::routing(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Routes alerts by severity: P1 pager+chat+email, P2 chat+email+pager, P3 email, P4 digest")
            .fields(["severity", "rule"])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["P1", "P2", "P3", "P4"])?;
        Ok(DefaultRouter {
            receivers: [
                config.strings_or("P1", &["pager", "chat", "email"])?,
                config.strings_or("P2", &["chat", "email", "pager"])?,
                config.strings_or("P3", &["email"])?,
                config.strings_or("P4", &["digest"])?,
            ],
        })
    }

    fn evaluate(&mut self, alert: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(severity) = alert.severity() else { return false };
        let receivers = &self.receivers[severity as usize];
        for r in receivers {
            ctx.route(r);
        }
        !receivers.is_empty()
    }
}

vigil_sdk::export_rule!(DefaultRouter);

#[cfg(test)]
mod tests {
    use vigil_sdk::Severity;
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    #[test]
    fn routes_by_severity() {
        let mut h = Harness::<DefaultRouter>::new();
        let route = |h: &mut Harness<DefaultRouter>, s| h.step(TestEvent::alert("brute_force", s)).routes;
        assert_eq!(route(&mut h, Severity::P1), ["pager", "chat", "email"]);
        assert_eq!(route(&mut h, Severity::P2), ["chat", "email", "pager"]);
        assert_eq!(route(&mut h, Severity::P3), ["email"]);
        assert_eq!(route(&mut h, Severity::P4), ["digest"]);
    }

    #[test]
    fn unknown_severity_is_not_routed_and_config_overrides() {
        let mut h = Harness::<DefaultRouter>::new().config(r#"{"P3": ["email", "chat"], "P4": []}"#);
        let odd = TestEvent::alert("x", Severity::P1).field("severity", "P9");
        let step = h.step(odd);
        assert!(step.offered && !step.matched && step.routes.is_empty());
        assert_eq!(h.step(TestEvent::alert("x", Severity::P3)).routes, ["email", "chat"]);
        assert!(h.step(TestEvent::alert("x", Severity::P4)).routes.is_empty());
        let batch = h.run_detailed([TestEvent::alert("a", Severity::P1), TestEvent::alert("b", Severity::P3)]);
        assert_eq!(batch.routes.iter().filter(|(pos, _)| *pos == 1).count(), 2);
    }
}
