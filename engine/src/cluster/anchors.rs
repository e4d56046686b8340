//! Partition anchors (docs/cluster.md, "Anchors per partition"): the newest signed
//! checkpoint of each partition, kept outside PostgreSQL in the JetStream key-value bucket
//! `VIGIL_ANCHORS` (key `p<partition>`, the single-node anchor file's JSON), where every node
//! sees it, whichever node writes the partition now. The member loop puts each checkpoint
//! its writers sign (only ever a newer one: compare-and-set on the key's revision); verify
//! compares the partition's log with it, so a tail cut off together with its checkpoints
//! (rows and checkpoint rows deleted) is `truncated`. An anchor whose signature does not
//! hold for its partition is not trusted.

use async_nats::jetstream;

use crate::ledger::CheckpointJson;
use crate::ledger::anchor::AnchorRecord;
use crate::store::Checkpoint;

/// The bucket's name.
pub const BUCKET: &str = "VIGIL_ANCHORS";

/// The anchors bucket.
#[derive(Clone)]
pub struct Anchors {
    kv: jetstream::kv::Store,
}

impl std::fmt::Debug for Anchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchors").field("bucket", &BUCKET).finish()
    }
}

fn key(partition: u32) -> String {
    format!("p{partition}")
}

impl Anchors {
    /// Opens the bucket, creating it (one value per key, `replicas` copies) when missing.
    /// The bucket's stream is made here with the settings a key-value bucket has
    /// (`create_key_value` first asks for the account's limits, whose answer older
    /// nats-server versions shape differently).
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, String> {
        if let Ok(kv) = js.get_key_value(BUCKET).await {
            return Ok(Self { kv });
        }
        let created = js
            .get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{BUCKET}"),
                description: Some("Vigil: the newest signed checkpoint of each partition".into()),
                subjects: vec![format!("$KV.{BUCKET}.>")],
                max_messages_per_subject: 1,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas.max(1),
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: jetstream::stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await;
        if let Err(e) = created {
            return Err(format!("cannot create the JetStream key-value bucket {BUCKET}: {e}"));
        }
        let kv = js.get_key_value(BUCKET).await.map_err(|e| format!("cannot open the bucket {BUCKET}: {e}"))?;
        Ok(Self { kv })
    }

    /// Anchors `cp` for `partition` unless the bucket already holds it or a newer one.
    /// Returns whether it was written.
    pub async fn put(&self, partition: u32, cp: &Checkpoint) -> Result<bool, String> {
        let record = AnchorRecord { format: "vigil-anchor-v1".into(), checkpoint: CheckpointJson::from(cp) };
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let entry = self.kv.entry(key(partition)).await.map_err(|e| e.to_string())?;
        match entry.filter(|e| e.operation == jetstream::kv::Operation::Put) {
            Some(e) => {
                if parse(&e.value).is_some_and(|held| held.id >= cp.id) {
                    return Ok(false);
                }
                self.kv.update(key(partition), value.into(), e.revision).await.map_err(|e| e.to_string())?;
            }
            None => {
                self.kv.create(key(partition), value.into()).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(true)
    }

    /// The anchored checkpoint of `partition` (None: none yet).
    pub async fn get(&self, partition: u32) -> Result<Option<Checkpoint>, String> {
        let value = self.kv.get(key(partition)).await.map_err(|e| e.to_string())?;
        Ok(value.and_then(|v| parse(&v)))
    }
}

fn parse(bytes: &[u8]) -> Option<Checkpoint> {
    serde_json::from_slice::<AnchorRecord>(bytes).ok().map(|r| r.checkpoint.to_checkpoint())
}
