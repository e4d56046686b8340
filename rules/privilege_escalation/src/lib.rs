//! `privilege_escalation`: a user without the admin role denied admin access.
//!
//! Offered `action=permission_denied` and failed `category=authorization` events; alerts
//! (P2) when the target is admin-only (`details.required_role` is the admin role, or the
//! `resource` starts with the admin path) and the user holds no admin role according to
//! `details.user_role` / `details.roles` (a JSON array or a comma-separated string).

use vigil_sdk::json::Value;
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// The rule.
pub struct PrivilegeEscalation {
    admin_role: String,
    admin_path_prefix: String,
}

impl Rule for PrivilegeEscalation {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Admin access denied to a user without the admin role")
            .severity(Severity::P2)
            .mitre(["T1068", "T1078"])
            .fields([
                "action",
                "category",
                "outcome",
                "user_id",
                "ip",
                "resource",
                "details.required_role",
                "details.user_role",
                "details.roles",
            ])
            .subscribe(Subscription::action("permission_denied"))
            .subscribe(Subscription::category("authorization").outcomes(["failure"]))
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["admin_role", "admin_path_prefix"])?;
        Ok(PrivilegeEscalation {
            admin_role: config.str_or("admin_role", "admin")?.to_owned(),
            admin_path_prefix: config.str_or("admin_path_prefix", "/admin")?.to_owned(),
        })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let denied = ev.action() == Some("permission_denied")
            || (ev.category() == Some("authorization") && ev.outcome() == Some("failure"));
        let required = ev.get("details.required_role");
        let resource = ev.resource();
        let admin_target = required.is_some_and(|r| r.trim().eq_ignore_ascii_case(&self.admin_role))
            || resource.is_some_and(|r| r.starts_with(&self.admin_path_prefix));
        if !denied || !admin_target || self.holds_admin(ev) {
            return false;
        }
        let user = ev.user_id().unwrap_or("unknown");
        ctx.emit(
            Alert::new(format!("Privilege escalation attempt: {user} denied admin access"))
                .severity(Severity::P2)
                .dedup_key(format!("user:{user}"))
                .field("user_id", user)
                .field("resource", resource)
                .field("required_role", required)
                .field("user_role", ev.get("details.user_role"))
                .field("ip", ev.ip())
                .action("Confirm with the user's manager whether admin access was expected")
                .action("Review the user's recent activity for other probing")
                .action("If the account is compromised, suspend it and rotate its credentials"),
        );
        true
    }
}

impl PrivilegeEscalation {
    fn holds_admin(&self, ev: &Event<'_>) -> bool {
        let is_admin = |role: &str| role.trim().eq_ignore_ascii_case(&self.admin_role);
        if ev.get("details.user_role").is_some_and(is_admin) {
            return true;
        }
        let Some(roles) = ev.get("details.roles") else { return false };
        if roles.trim_start().starts_with('[') {
            // Parsed only on denied admin access, which is rare.
            let parsed = Value::parse(roles).ok();
            let items = parsed.as_ref().and_then(Value::as_array).unwrap_or_default();
            items.iter().filter_map(Value::as_str).any(is_admin)
        } else {
            roles.split(',').any(is_admin)
        }
    }
}

vigil_sdk::export_rule!(PrivilegeEscalation);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    fn denied() -> TestEvent {
        TestEvent::new("authorization", "permission_denied").outcome("failure").user("mallory").ip("1.2.3.4")
    }

    #[test]
    fn non_admin_denied_admin_role_fires() {
        let mut h = Harness::<PrivilegeEscalation>::new();
        let alerts =
            h.run([denied().resource("/reports").detail("required_role", "admin").detail("user_role", "viewer")]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Some(Severity::P2));
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("user:mallory"));
    }

    #[test]
    fn admin_path_with_role_list_fires() {
        let mut h = Harness::<PrivilegeEscalation>::new();
        let ev = TestEvent::new("authorization", "access")
            .outcome("failure")
            .user("u2")
            .resource("/admin/users")
            .detail_json("roles", r#"["user","billing"]"#);
        assert_eq!(h.run([ev]).len(), 1);
    }

    #[test]
    fn admins_and_non_admin_targets_do_not_fire() {
        let mut h = Harness::<PrivilegeEscalation>::new();
        let events = [
            // Holds admin (role string, role list, comma list).
            denied().resource("/admin").detail("user_role", "Admin"),
            denied().resource("/admin").detail_json("roles", r#"["user","admin"]"#),
            denied().detail("required_role", "admin").detail("roles", "user, admin"),
            // Not an admin target.
            denied().resource("/reports").detail("required_role", "editor"),
            denied().resource("/docs/admin").detail("required_role", "editor"),
        ];
        assert!(h.run(events).is_empty());
    }

    #[test]
    fn successful_authorization_is_not_offered() {
        let mut h = Harness::<PrivilegeEscalation>::new();
        let ok = TestEvent::new("authorization", "access").outcome("success").resource("/admin");
        assert!(!h.step(ok).offered);
    }
}
