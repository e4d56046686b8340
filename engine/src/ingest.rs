//! Ingest: parse request bodies (one object, an array, or NDJSON), validate and normalize
//! every event against the wire format of DESIGN.md section 2, and mask secrets and PII
//! before anything is stored or logged. `api` calls in; the result goes to the `Sequencer`
//! in `store`.

pub mod enrich;
pub mod mask;
pub mod ocsf;
pub mod otlp;
pub mod syslog;
pub mod validate;
mod wire;

pub use enrich::Enricher;
pub use mask::Masker;
pub use validate::{
    DEFAULT_EVENTS_PER_REQUEST, MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, Problem, parse_body, split_body,
    validate_batch, validate_body, validate_each, validate_pieces,
};

pub use crate::event::MASK_POLICY_VERSION;
