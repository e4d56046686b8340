//! `pii_export_by_non_admin`: records containing PII exported by a user without the admin role.
//!
//! Offered `category=data_access` events whose `action` is an export: `export`,
//! `data_export`, `bulk_export` or `export_data`. Skipped: `outcome=failure` (the export was
//! blocked or failed, nothing left) and `details.record_count` = 0 (nothing exported).
//!
//! The export contains PII when any of:
//! - `details.contains_pii` is true (JSON `true` or the string `"true"`);
//! - `details.pii_fields` is a non-empty list of field names (a JSON array, or a
//!   comma-separated string), e.g. `["email", "ssn"]`;
//! - `details.data_classification` is one of `pii_classifications` (`["pii"]`),
//!   case-insensitively (a string, a comma-separated string or a JSON array).
//!
//! The user holds the admin role, as in `privilege_escalation`, when `details.user_role` is
//! `admin_role` (`"admin"`, case-insensitive) or `details.roles` (a JSON array or a
//! comma-separated string) contains it. An export without role information is by a
//! non-admin. Every such export alerts (P1; it is not a threshold), dedup key
//! `user:<user_id>` (`user:unknown` without `user_id`); `details.record_count` is reported
//! when present.
//!
//! Configuration: `admin_role` (`"admin"`), `pii_classifications` (`["pii"]`; a JSON array
//! or a comma-separated string; empty disables that signal).

use vigil_sdk::json::Value;
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// The export actions offered (actions are stored lower-case).
pub const EXPORT_ACTIONS: [&str; 4] = ["export", "data_export", "bulk_export", "export_data"];

/// The rule.
pub struct PiiExportByNonAdmin {
    admin_role: String,
    pii_classifications: Vec<String>,
}

impl Rule for PiiExportByNonAdmin {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Export of records containing PII by a user without the admin role")
            .severity(Severity::P1)
            .mitre(["T1530", "T1213", "T1567"])
            .fields([
                "outcome",
                "user_id",
                "ip",
                "resource",
                "details.contains_pii",
                "details.pii_fields",
                "details.data_classification",
                "details.record_count",
                "details.user_role",
                "details.roles",
            ])
            .subscribe(Subscription::category("data_access").actions(EXPORT_ACTIONS))
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["admin_role", "pii_classifications"])?;
        let admin_role = config.str_or("admin_role", "admin")?.trim().to_owned();
        if admin_role.is_empty() {
            return Err("admin_role must not be empty".to_owned());
        }
        let pii_classifications = config.strings_or("pii_classifications", &["pii"])?;
        Ok(PiiExportByNonAdmin { admin_role, pii_classifications })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        if ev.outcome() == Some("failure") {
            return false;
        }
        let records = ev.i64("details.record_count");
        if records == Some(0) {
            return false;
        }
        let pii_fields = ev.get("details.pii_fields").map(list_items).unwrap_or_default();
        let classification = ev.get("details.data_classification");
        let classified_pii = classification.is_some_and(|c| {
            list_items(c).iter().any(|item| self.pii_classifications.iter().any(|p| item.eq_ignore_ascii_case(p)))
        });
        let contains_pii = ev.bool("details.contains_pii") == Some(true) || !pii_fields.is_empty() || classified_pii;
        if !contains_pii || self.holds_admin(ev) {
            return false;
        }
        let user = ev.user_id().filter(|u| !u.is_empty()).unwrap_or("unknown");
        let what = match records {
            Some(n) => format!("{n} records"),
            None => "records".to_owned(),
        };
        let pii_fields =
            (!pii_fields.is_empty()).then(|| Value::Array(pii_fields.into_iter().map(Value::from).collect()));
        ctx.emit(
            Alert::new(format!("PII export by non-admin: {user} exported {what} containing PII"))
                .severity(Severity::P1)
                .dedup_key(format!("user:{user}"))
                .field("user_id", user)
                .field("records", records)
                .field("pii_fields", pii_fields)
                .field("data_classification", classification)
                .field("resource", ev.resource())
                .field("user_role", ev.get("details.user_role"))
                .field("roles", ev.get("details.roles"))
                .field("ip", ev.ip())
                .action("Block further exports by the user and revoke access to the exported file or link")
                .action("Review what the export contained and where it was sent")
                .action("Investigate the user's intent with their manager (data theft?)"),
        );
        true
    }
}

impl PiiExportByNonAdmin {
    fn holds_admin(&self, ev: &Event<'_>) -> bool {
        let is_admin = |role: &str| role.trim().eq_ignore_ascii_case(&self.admin_role);
        ev.get("details.user_role").is_some_and(is_admin)
            || ev.get("details.roles").is_some_and(|roles| list_items(roles).iter().any(|r| is_admin(r)))
    }
}

/// The non-empty items of a list field: a JSON array (strings as themselves, other values
/// as JSON) or a comma-separated string. Parsed only for export events, which are rare.
fn list_items(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[')
        && let Ok(Value::Array(items)) = Value::parse(trimmed)
    {
        return items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_json(), |s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .collect();
    }
    trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

vigil_sdk::export_rule!(PiiExportByNonAdmin);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    /// A successful `data_export` of 250 customer records by `user`, a viewer.
    fn export(user: &str) -> TestEvent {
        TestEvent::new("data_access", "data_export")
            .outcome("success")
            .user(user)
            .ip("198.51.100.4")
            .resource("/customers/export.csv")
            .detail("record_count", 250)
            .detail("user_role", "viewer")
    }

    fn pii(ev: TestEvent) -> TestEvent {
        ev.detail("contains_pii", true)
    }

    fn fires(ev: TestEvent) -> bool {
        let mut h = Harness::<PiiExportByNonAdmin>::new();
        let step = h.step(ev);
        assert_eq!(step.matched, !step.alerts.is_empty());
        step.alerts.len() == 1
    }

    #[test]
    fn pii_export_by_viewer_fires_p1() {
        let mut h = Harness::<PiiExportByNonAdmin>::new();
        let alerts = h.run([pii(export("mallory")).detail_json("pii_fields", r#"["email","ssn"]"#)]);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.severity, Some(Severity::P1));
        assert_eq!(a.dedup_key.as_deref(), Some("user:mallory"));
        assert_eq!(a.title, "PII export by non-admin: mallory exported 250 records containing PII");
        assert_eq!(a.event_seqs, [1]);
        assert_eq!(a.field_value("records").and_then(Value::as_i64), Some(250));
        assert_eq!(a.field_value("pii_fields").map(Value::to_json).as_deref(), Some(r#"["email","ssn"]"#));
        assert_eq!(a.field_value("user_role").and_then(Value::as_str), Some("viewer"));
        assert_eq!(a.field_value("resource").and_then(Value::as_str), Some("/customers/export.csv"));
        assert_eq!(a.field_value("ip").and_then(Value::as_str), Some("198.51.100.4"));
        assert!(!a.actions.is_empty());
    }

    #[test]
    fn every_pii_signal_fires() {
        assert!(fires(pii(export("u"))), "contains_pii true");
        assert!(fires(export("u").detail("contains_pii", "true")), "contains_pii as a string");
        assert!(fires(export("u").detail_json("pii_fields", r#"["email"]"#)), "pii_fields array");
        assert!(fires(export("u").detail("pii_fields", "email, phone")), "pii_fields comma list");
        assert!(fires(export("u").detail("data_classification", "pii")), "classification");
        assert!(fires(export("u").detail("data_classification", "PII")), "classification, any case");
        assert!(fires(export("u").detail_json("data_classification", r#"["internal","pii"]"#)), "classification list");
        // One positive signal is enough, whatever the others say.
        assert!(fires(export("u").detail("contains_pii", false).detail_json("pii_fields", r#"["ssn"]"#)));
    }

    #[test]
    fn exports_without_pii_do_not_fire() {
        for ev in [
            export("u"),
            export("u").detail("contains_pii", false),
            export("u").detail("contains_pii", "yes"),
            export("u").detail_json("pii_fields", "[]"),
            export("u").detail_json("pii_fields", r#"["", null]"#),
            export("u").detail("pii_fields", ""),
            export("u").detail("pii_fields", " , "),
            export("u").detail("data_classification", "internal"),
            export("u").detail("data_classification", "non-pii"),
            export("u").detail_json("data_classification", r#"["public","internal"]"#),
        ] {
            assert!(!fires(ev.clone()), "{:?}", ev.body().to_json());
        }
    }

    #[test]
    fn admins_do_not_fire() {
        for ev in [
            pii(export("root")).detail("user_role", "admin"),
            pii(export("root")).detail("user_role", " Admin "),
            pii(export("root")).detail("user_role", "analyst").detail_json("roles", r#"["analyst","admin"]"#),
            pii(export("root")).detail("user_role", "analyst").detail("roles", "analyst, ADMIN"),
        ] {
            assert!(!fires(ev.clone()), "{:?}", ev.body().to_json());
        }
    }

    #[test]
    fn non_admin_roles_and_missing_roles_fire() {
        // Roles that merely contain the word, and role lists without it.
        assert!(fires(pii(export("u")).detail("user_role", "admin_assistant")));
        assert!(fires(pii(export("u")).detail("user_role", "sysadmin")));
        assert!(fires(pii(export("u")).detail_json("roles", r#"["support","billing"]"#)));
        assert!(fires(pii(export("u")).detail("roles", "support,billing")));
        // No role information at all.
        let no_role = TestEvent::new("data_access", "export").user("u").detail("contains_pii", true);
        assert!(fires(no_role));
        // No user either.
        let mut h = Harness::<PiiExportByNonAdmin>::new();
        let anonymous = h.run([TestEvent::new("data_access", "export").detail("contains_pii", true)]);
        assert_eq!(anonymous.len(), 1);
        assert_eq!(anonymous[0].dedup_key.as_deref(), Some("user:unknown"));
        assert_eq!(anonymous[0].title, "PII export by non-admin: unknown exported records containing PII");
        assert_eq!(anonymous[0].field_value("records"), None);
    }

    #[test]
    fn failed_and_empty_exports_do_not_fire() {
        assert!(!fires(pii(export("u")).outcome("failure")), "blocked export");
        assert!(!fires(pii(export("u")).detail("record_count", 0)), "nothing exported");
        assert!(fires(pii(export("u")).outcome("unknown")), "the default outcome");
        assert!(fires(pii(export("u")).field("outcome", Value::Null)), "no outcome");
        assert!(fires(pii(export("u")).detail("record_count", "12")), "count as a string");
    }

    #[test]
    fn only_data_access_exports_are_offered() {
        let mut h = Harness::<PiiExportByNonAdmin>::new();
        for action in EXPORT_ACTIONS {
            let step = h.step(pii(TestEvent::new("data_access", action).user("u")));
            assert!(step.offered && step.alerts.len() == 1, "{action}");
        }
        for ev in [
            pii(TestEvent::new("data_access", "read").user("u")),
            pii(TestEvent::new("data_access", "records_viewed").user("u")),
            pii(TestEvent::new("compliance", "data_export").user("u")),
            pii(TestEvent::new("configuration", "export").user("u")),
        ] {
            assert!(!h.step(ev).offered);
        }
    }

    #[test]
    fn every_export_alerts_under_one_dedup_key_per_user() {
        let mut h = Harness::<PiiExportByNonAdmin>::new();
        let alerts = h.run([pii(export("eve")), pii(export("eve")), pii(export("frank")), export("eve")]);
        let keys: Vec<_> = alerts.iter().map(|a| a.dedup_key.as_deref().unwrap_or_default()).collect();
        assert_eq!(keys, ["user:eve", "user:eve", "user:frank"]);
        assert_eq!(h.state().len(), 0, "stateless");
    }

    #[test]
    fn configuration() {
        let config = r#"{"admin_role": "superuser", "pii_classifications": ["pii", "restricted"]}"#;
        let mut h = Harness::<PiiExportByNonAdmin>::new().config(config);
        assert_eq!(h.run([pii(export("u")).detail("user_role", "admin")]).len(), 1, "admin is not the admin role");
        assert!(h.run([pii(export("u")).detail("user_role", "SuperUser")]).is_empty());
        assert_eq!(h.run([export("u").detail("data_classification", "Restricted")]).len(), 1);
        let mut comma = Harness::<PiiExportByNonAdmin>::new().config(r#"{"pii_classifications": "phi, pci"}"#);
        assert_eq!(comma.run([export("u").detail("data_classification", "phi")]).len(), 1);
        assert!(comma.run([export("u").detail("data_classification", "pii")]).is_empty(), "replaced, not added");
        let mut none = Harness::<PiiExportByNonAdmin>::new().config(r#"{"pii_classifications": []}"#);
        assert!(none.run([export("u").detail("data_classification", "pii")]).is_empty());
        assert_eq!(none.run([pii(export("u"))]).len(), 1, "other signals still count");
        for bad in
            [r#"{"admin": "x"}"#, r#"{"admin_role": ""}"#, r#"{"admin_role": 1}"#, r#"{"pii_classifications": 1}"#]
        {
            assert!(Harness::<PiiExportByNonAdmin>::new().config(bad).init().is_err(), "{bad}");
        }
        let unknown = Harness::<PiiExportByNonAdmin>::new().config(r#"{"admin": "x"}"#).init().unwrap_err();
        assert!(unknown.contains("`admin`"), "{unknown}");
    }

    #[test]
    fn reads_only_declared_fields() {
        let mut h = Harness::<PiiExportByNonAdmin>::new();
        h.run([pii(export("u")).detail_json("pii_fields", r#"["email"]"#).detail("data_classification", "pii")]);
        assert_eq!(h.lazy_field_reads(), 0);
    }

    #[test]
    fn list_items_parses_arrays_and_comma_lists() {
        assert_eq!(list_items(r#"["a", " b ", "", null, 3]"#), ["a", "b", "3"]);
        assert_eq!(list_items("a, b,,c"), ["a", "b", "c"]);
        assert_eq!(list_items("[not json"), ["[not json"]);
        assert!(list_items("  ").is_empty());
    }
}
