//! Receivers the configuration can never reach: declared under `[[receivers]]` but named by
//! neither `default_router`'s lists (its `[rules.config.default_router]` table, else its
//! built-in lists), nor `[routing] default_receivers`, nor an escalation level, nor a
//! digest's `via`. `vigil config check` prints one warning per such receiver and
//! `vigil serve` logs it at start; a routing rule deployed later may still name it, which
//! the configuration cannot see, so this is a warning, never an error.

use super::Config;

/// `rules/default_router`'s lists when its configuration does not replace them (kept equal
/// to `rules/default_router/src/lib.rs` by a test).
pub const DEFAULT_ROUTER_LISTS: [(&str, &[&str]); 4] =
    [("P1", &["pager", "chat", "email"]), ("P2", &["chat", "email", "pager"]), ("P3", &["email"]), ("P4", &["digest"])];

impl Config {
    /// `default_router`'s receivers per severity as this configuration sets them
    /// (`P1 = ["a", "b"]` or `P1 = "a,b"`; a missing key keeps the built-in list).
    pub fn default_router_lists(&self) -> Vec<(&'static str, Vec<String>)> {
        let table = self.rules.config.get("default_router");
        DEFAULT_ROUTER_LISTS
            .iter()
            .map(|(severity, builtin)| {
                let list = match table.and_then(|t| t.get(*severity)) {
                    Some(toml::Value::Array(items)) => {
                        items.iter().filter_map(|v| v.as_str()).map(|s| s.trim().to_owned()).collect()
                    }
                    Some(toml::Value::String(s)) => {
                        s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
                    }
                    _ => builtin.iter().map(|s| (*s).to_owned()).collect(),
                };
                (*severity, list)
            })
            .collect()
    }

    /// One warning per receiver nothing in the configuration routes to, naming it and
    /// saying how to route to it (empty when every receiver is reachable).
    ///
    /// A receiver is reached when a `default_router` list names it, or when a list names no
    /// configured receiver at all (then the alert falls back to the default receivers: the
    /// router never silences an alert) and it is one of those defaults; or when `[routing]
    /// default_receivers`, an escalation level or a digest's `via` names it.
    pub fn unreachable_receiver_warnings(&self) -> Vec<String> {
        let lists = self.default_router_lists();
        let configured = |n: &String| self.receivers.iter().any(|r| &r.name == n);
        let defaults: Vec<&str> = match &self.routing.default_receivers {
            Some(d) => d.iter().map(String::as_str).collect(),
            None => self.receivers.iter().filter(|r| r.kind != "digest").map(|r| r.name.as_str()).collect(),
        };
        let mut named: Vec<&str> = lists.iter().flat_map(|(_, l)| l.iter().map(String::as_str)).collect();
        if lists.iter().any(|(_, l)| !l.iter().any(configured)) {
            named.extend(defaults.iter().copied());
        }
        named.extend(self.routing.default_receivers.iter().flatten().map(String::as_str));
        named.extend(self.escalation.iter().flat_map(|p| &p.levels).flat_map(|l| &l.receivers).map(String::as_str));
        named.extend(self.receivers.iter().filter_map(|r| r.via.as_deref()));
        let shown: Vec<String> = lists
            .iter()
            .map(|(s, l)| format!("{s} {}", if l.is_empty() { "(none)".into() } else { l.join(", ") }))
            .collect();
        self.receivers
            .iter()
            .filter(|r| !named.contains(&r.name.as_str()))
            .map(|r| {
                let mut p1 = lists[0].1.clone();
                p1.push(r.name.clone());
                let p1: Vec<String> = p1.iter().map(|n| format!("{n:?}")).collect();
                let fallback = if self.routing.default_receivers.is_none() && r.kind != "digest" {
                    " (with [routing] default_receivers unset it is a fallback receiver, used only while no \
                     routing rule is active, or when one fails or names no configured receiver)"
                } else {
                    ""
                };
                format!(
                    "receiver `{name}` ({kind}) gets no alerts: default_router routes {routes}, and neither \
                     [routing] default_receivers nor an escalation policy names it{fallback}, unless a routing rule \
                     you deploy names it. To route to it, add it to a list, e.g.\n    \
                     [rules.config.default_router]\n    P1 = [{p1}]",
                    name = r.name,
                    kind = r.kind,
                    routes = shown.join("; "),
                    p1 = p1.join(", "),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::DEFAULT_ROUTER_LISTS;

    #[test]
    fn the_built_in_lists_are_default_routers() {
        let source = include_str!("../../../rules/default_router/src/lib.rs");
        for (severity, list) in DEFAULT_ROUTER_LISTS {
            let quoted: Vec<String> = list.iter().map(|n| format!("{n:?}")).collect();
            let call = format!("config.strings_or({severity:?}, &[{}])", quoted.join(", "));
            assert!(source.contains(&call), "rules/default_router no longer has {call}");
        }
    }

    #[test]
    fn a_receiver_nothing_names_is_warned_about() {
        let hook = "[[receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://siem.example/h\"\n";
        let others = "[[receivers]]\nname = \"email\"\nkind = \"email\"\nsmtp_url = \"smtps://m.example\"\n\
                      from = \"v@example.org\"\nto = [\"s@example.org\"]\n\
                      [[receivers]]\nname = \"digest\"\nkind = \"digest\"\nvia = \"email\"\n";
        let warnings = |text: String| {
            let config: Config = toml::from_str(&text).unwrap();
            config.validate().unwrap();
            config.unreachable_receiver_warnings()
        };
        let with = |extra: &str| warnings(format!("{hook}{others}{extra}"));
        // Every default_router list names a configured receiver: nothing reaches `hook`.
        let w = with("");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("receiver `hook` (webhook)") && w[0].contains("unless a routing rule you deploy"));
        assert!(w[0].contains("P1 = [\"pager\", \"chat\", \"email\", \"hook\"]"), "{}", w[0]);
        // Named by default_router's configuration (array or comma list), the fallback list or
        // an escalation level: reachable.
        assert!(with("[rules.config.default_router]\nP3 = [\"email\", \"hook\"]\n").is_empty());
        assert!(with("[rules.config.default_router]\nP1 = \"pager, hook\"\n").is_empty());
        assert!(with("[routing]\ndefault_receivers = [\"hook\"]\n").is_empty());
        assert!(
            with("[[escalation]]\nseverity = \"P1\"\n[[escalation.levels]]\nafter = \"15m\"\nreceivers = [\"hook\"]\n")
                .is_empty()
        );
        // A list naming no configured receiver falls back to the defaults (every receiver
        // but digests when unset): `hook` gets those alerts.
        assert!(with("[rules.config.default_router]\nP2 = [\"chat\"]\n").is_empty());
        assert!(warnings(hook.to_owned()).is_empty(), "alone, hook gets every alert by fallback");
        // ...unless the defaults are set without it.
        let w = with("[rules.config.default_router]\nP2 = [\"chat\"]\n[routing]\ndefault_receivers = [\"email\"]\n");
        assert_eq!(w.len(), 1, "{w:?}");
        // Lists replaced so that `chat` is named nowhere.
        let chat = "[[receivers]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"https://hooks.example/x\"\n";
        let w = warnings(format!(
            "{hook}{others}{chat}[rules.config.default_router]\nP1 = [\"hook\"]\nP2 = \"hook\"\nP3 = [\"email\"]\n"
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("receiver `chat` (slack)") && w[0].contains("P1 hook; P2 hook"), "{}", w[0]);
    }
}
