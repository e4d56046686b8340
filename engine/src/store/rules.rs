//! Deployed rule modules (`rules` table): the [`StoredRule`] row and the `Store` methods that
//! save, quarantine, delete and load them, used by `deploy`.

use super::{Store, StoreError, dispatch};

/// A deployed rule module as stored in the `rules` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// Rule name (manifest name).
    pub name: String,
    /// Lowercase hex SHA-256 of `module`.
    pub sha256: String,
    /// The `.wasm` bytes.
    pub module: Vec<u8>,
    /// Configuration JSON its init was given at deploy.
    pub config: String,
    /// `api` or `file:<path>`.
    pub source: String,
    /// Key id (or `rules_dir`) that deployed it.
    pub actor: String,
    /// When deployed, epoch ms.
    pub deployed_at: i64,
    /// `active` or `quarantined`.
    pub status: String,
    /// Why quarantined.
    pub reason: Option<String>,
    /// When the status was set, epoch ms.
    pub status_at: i64,
}

impl Store {
    /// Stores (or replaces) the deployed module of a rule name.
    pub async fn save_rule(&self, rule: &StoredRule) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_rule(rule).await)
    }

    /// Sets the status of the stored version `sha256` of a rule; false when that version
    /// is not the stored one.
    pub async fn set_rule_status(
        &self,
        name: &str,
        sha256: &str,
        status: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_rule_status(name, sha256, status, reason, at).await)
    }

    /// Removes a stored rule; false when none had that name.
    pub async fn delete_rule(&self, name: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_rule(name).await)
    }

    /// Every stored rule, by name.
    pub async fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        dispatch!(self, s => s.load_rules().await)
    }

    /// Every stored rule without its module bytes (`module` is empty): the cheap read
    /// cluster nodes poll to follow deploys, deletes and quarantines made on other nodes.
    pub async fn load_rule_heads(&self) -> Result<Vec<StoredRule>, StoreError> {
        dispatch!(self, s => s.load_rule_heads().await)
    }
}

macro_rules! rule_queries {
    ($store:ty, $db:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn save_rule(&self, r: &StoredRule) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO rules (name, sha256, module, config, source, actor, deployed_at, status, reason, status_at) ",
                );
                qb.push_values([r], |mut b, r| {
                    b.push_bind(r.name.clone())
                        .push_bind(r.sha256.clone())
                        .push_bind(r.module.clone())
                        .push_bind(r.config.clone())
                        .push_bind(r.source.clone())
                        .push_bind(r.actor.clone())
                        .push_bind(r.deployed_at)
                        .push_bind(r.status.clone())
                        .push_bind(r.reason.clone())
                        .push_bind(r.status_at);
                });
                qb.push(
                    " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, module = excluded.module, \
                     config = excluded.config, source = excluded.source, actor = excluded.actor, \
                     deployed_at = excluded.deployed_at, status = excluded.status, reason = excluded.reason, \
                     status_at = excluded.status_at",
                );
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn set_rule_status(
                &self,
                name: &str,
                sha256: &str,
                status: &str,
                reason: Option<&str>,
                at: i64,
            ) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE rules SET status = ");
                qb.push_bind(status.to_owned())
                    .push(", reason = ")
                    .push_bind(reason.map(str::to_owned))
                    .push(", status_at = ")
                    .push_bind(at)
                    .push(" WHERE name = ")
                    .push_bind(name.to_owned())
                    .push(" AND sha256 = ")
                    .push_bind(sha256.to_owned());
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn delete_rule(&self, name: &str) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("DELETE FROM rules WHERE name = ");
                qb.push_bind(name.to_owned());
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
                self.select_rules("module").await
            }

            pub(super) async fn load_rule_heads(&self) -> Result<Vec<StoredRule>, StoreError> {
                self.select_rules("NULL").await
            }

            /// `module` is the column (or NULL, read as no bytes) selected for the module.
            async fn select_rules(&self, module: &'static str) -> Result<Vec<StoredRule>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT name, sha256, ");
                qb.push(module);
                qb.push(
                    " AS module, config, source, actor, deployed_at, status, reason, status_at \
                     FROM rules ORDER BY name",
                );
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows
                    .iter()
                    .map(|r| StoredRule {
                        name: r.get("name"),
                        sha256: r.get("sha256"),
                        module: r.get::<Option<Vec<u8>>, _>("module").unwrap_or_default(),
                        config: r.get("config"),
                        source: r.get("source"),
                        actor: r.get("actor"),
                        deployed_at: r.get("deployed_at"),
                        status: r.get("status"),
                        reason: r.get("reason"),
                        status_at: r.get("status_at"),
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use rule_queries;
