//! Write Vigil detection and routing rules in Rust, compile them to WebAssembly
//! (`wasm32-unknown-unknown`), and test them natively.
//!
//! A rule implements [`Rule`] and calls [`export_rule!`] once; the SDK generates the module
//! exports of the rule ABI (`sdk/ABI.md`), reads the records the host writes (only the
//! fields the manifest declares, many events per call), and talks to the host's state,
//! alert, decision and log imports. The same crate runs natively under
//! [`testing::Harness`], with the same state semantics ([`state`]), so `cargo test` in a
//! rule crate tests the real logic.
//!
//! Layers (like the Redpanda transform SDK):
//! - plain data shared with the host: [`Severity`], [`Manifest`], [`Subscription`],
//!   [`Alert`], [`Decision`] (automated response: [`Scope`], [`DecisionKind`]), [`Config`],
//!   [`json`], [`record`] (input-area layout), [`state`];
//! - the ABI layer (private): real imports on `wasm32`, a native stand-in elsewhere;
//! - the facade: [`Rule`], [`Event`], [`Context`], [`export_rule!`], [`testing`].
//!
//! # Example
//!
//! ```
//! use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};
//!
//! /// Many failed logins from one IP.
//! pub struct FailedLogins {
//!     threshold: i64,
//! }
//!
//! impl Rule for FailedLogins {
//!     fn manifest() -> Manifest {
//!         Manifest::detection("failed_logins")
//!             .version("1.0.0")
//!             .description("More than `threshold` failed logins from one IP in 5 minutes")
//!             .severity(Severity::P2)
//!             .mitre(["T1110"])
//!             .fields(["ip", "user_id"])
//!             .subscribe(Subscription::action("login_failed"))
//!             .windows_ms([300_000])
//!     }
//!
//!     fn init(config: &Config) -> Result<Self, String> {
//!         config.deny_unknown(&["threshold"])?;
//!         Ok(FailedLogins { threshold: config.i64_or("threshold", 5)? })
//!     }
//!
//!     fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
//!         let Some(ip) = ev.ip() else { return false };
//!         let count = ctx.window("5m").add(format!("ip:{ip}"), 1);
//!         // Fire once, when the count crosses the threshold.
//!         if count == self.threshold + 1 {
//!             ctx.emit(
//!                 Alert::new(format!("{count} failed logins from {ip} in 5 minutes"))
//!                     .dedup_key(format!("ip:{ip}"))
//!                     .field("ip", ip)
//!                     .field("count", count)
//!                     .field("last_user_id", ev.user_id())
//!                     .action("Block the IP at the edge"),
//!             );
//!         }
//!         true
//!     }
//! }
//!
//! vigil_sdk::export_rule!(FailedLogins);
//!
//! fn main() {
//!     use vigil_sdk::testing::{Harness, TestEvent};
//!
//!     let mut harness = Harness::<FailedLogins>::new().config(r#"{"threshold": 2}"#);
//!     let fail = |t: i64| TestEvent::new("authentication", "login_failed").ip("10.0.0.1").user("u1").at_ms(t);
//!     let alerts = harness.run([fail(0), fail(1_000), fail(2_000), fail(3_000)]);
//!     assert_eq!(alerts.len(), 1);
//!     assert_eq!(alerts[0].severity, Some(Severity::P2));
//!     assert_eq!(alerts[0].dedup_key.as_deref(), Some("ip:10.0.0.1"));
//!     assert_eq!(alerts[0].event_seqs, [3]);
//!     // Not subscribed: never offered to the rule.
//!     let step = harness.step(TestEvent::new("authentication", "login_success").ip("10.0.0.1"));
//!     assert!(!step.offered);
//! }
//! ```
//!
//! Build a rule module with `cargo build --release --target wasm32-unknown-unknown` in a
//! crate with `crate-type = ["cdylib", "rlib"]` and `panic = "abort"` (see `rules/README.md`).
#![deny(missing_docs)]

mod abi;
pub mod alert;
pub mod config;
pub mod context;
pub mod decision;
pub mod event;
mod export;
pub mod json;
#[cfg(not(target_arch = "wasm32"))]
mod lists;
pub mod manifest;
pub mod record;
pub mod rule;
pub mod severity;
pub mod state;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;

pub use alert::Alert;
pub use config::Config;
pub use context::{Context, DecideStatus, EmitStatus, Level};
pub use decision::{Decision, DecisionError, DecisionKind, Scope};
pub use event::Event;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use export::__private;
pub use json::Value;
pub use manifest::{Kind, Manifest, Subscription};
pub use rule::{Rule, Runtime};
pub use severity::Severity;

/// ABI major version implemented (ABI.md); the host refuses other majors.
pub const ABI_MAJOR: u32 = 1;
/// ABI minor version implemented; minor changes are additive (1.1: seqs of windows and
/// distinct sets; 1.2: `emit_decision`; 1.3: the host reads the manifest again after init,
/// so a rule may refine it from its configuration, see [`Rule::configured_manifest`]; 1.4:
/// `in_list`, the server's `[[lists]]`, see [`Context::in_list`]; 1.5: the header flag
/// [`record::FLAG_UTF8`], values the host checked once, read without a check per read).
pub const ABI_MINOR: u32 = 5;
/// Bytes of the guest's static input area.
pub const INPUT_AREA_BYTES: usize = 1 << 20;
/// Verdict slots, i.e. most events per `vigil_evaluate` call.
pub const MAX_EVENTS_PER_CALL: usize = 4096;
