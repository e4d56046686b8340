//! Inputs and outputs in the ecosystem's standards (docs/integrations.md): OTLP logs in
//! (`otlp`), OCSF in and out (`ocsf`), syslog listeners (`syslog`), forwarders to SIEMs
//! (`forwarders`).

mod enrich;
mod forwarders;
mod ocsf;
mod otlp;
mod syslog;
