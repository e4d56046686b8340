//! Sigma rules as Vigil rules. A Sigma deployment is Vigil's own evaluator module
//! (`rules/sigma_evaluator`, built to wasm by `scripts/build-sigma-evaluator.sh` and
//! embedded here, so the server needs no toolchain) run in the same sandbox as every rule,
//! with the Sigma text as its configuration. The evaluator answers the deployment's
//! manifest after init (ABI 1.3), so a Sigma deployment has its own name, fields,
//! subscription, severity and MITRE ids, and its own state, stats and quarantine.
//!
//! The stored "module" of a Sigma rule is its text; its version is the SHA-256 of the
//! evaluator module followed by the text, so a new evaluator is a new version of every
//! Sigma rule. [`RuleFormat::detect`] tells stored texts from wasm modules at start.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::RuleError;

/// The evaluator module the server embeds.
pub static EVALUATOR: &[u8] = include_bytes!("../../assets/sigma_evaluator.wasm");

/// Largest Sigma text of one deployment (the evaluator's limit too).
pub const MAX_TEXT_BYTES: usize = 512 * 1024;

/// What a rule is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleFormat {
    /// A WebAssembly module built with vigil-sdk.
    Wasm,
    /// Sigma YAML run by the embedded evaluator.
    Sigma,
}

impl RuleFormat {
    /// The format of stored or uploaded bytes: wasm modules start with `\0asm`, which no
    /// YAML text does.
    pub fn detect(bytes: &[u8]) -> Self {
        if bytes.starts_with(b"\0asm") { Self::Wasm } else { Self::Sigma }
    }

    /// The name used in listings (`source`, `format`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wasm => "wasm",
            Self::Sigma => "sigma",
        }
    }
}

/// The version identity of a Sigma deployment: SHA-256 of the evaluator, then the text.
pub fn version_sha256(text: &[u8]) -> [u8; 32] {
    Sha256::new().chain_update(EVALUATOR).chain_update(text).finalize().into()
}

/// Checks a Sigma upload before it reaches the evaluator, and makes the evaluator's
/// configuration JSON: `{"name", "version", "sigma"}`.
pub fn config_json(name: &str, text: &[u8], sha256: &[u8; 32]) -> Result<String, RuleError> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_name {
        return Err(RuleError::Invalid(format!(
            "Sigma deployment name {name:?} must be 1 to 64 characters of [a-z0-9_] (the rule name)"
        )));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(RuleError::Invalid(format!(
            "Sigma deployment {name}: the text is {} bytes, at most {MAX_TEXT_BYTES}",
            text.len()
        )));
    }
    let text = std::str::from_utf8(text)
        .map_err(|e| RuleError::Invalid(format!("Sigma deployment {name}: the text is not UTF-8 ({e})")))?;
    if text.contains('\0') {
        return Err(RuleError::Invalid(format!("Sigma deployment {name}: the text contains NUL")));
    }
    let version = format!("sigma-{}", &hex::encode(sha256)[..12]);
    Ok(json!({"name": name, "version": version, "sigma": text}).to_string())
}

/// The evaluator's refusal as the rule author needs it: the deployment, then what the
/// evaluator said (which Sigma rule, which line, what is wrong), without the ABI wording.
pub fn refusal(name: &str, error: RuleError) -> RuleError {
    match error {
        RuleError::Invalid(message) => {
            let why = message
                .split_once("): ")
                .filter(|_| message.starts_with("vigil_init refused"))
                .map_or(message.as_str(), |(_, why)| why);
            let why = why.strip_prefix("Rule init refused: ").unwrap_or(why);
            RuleError::Invalid(format!("Sigma deployment {name}: {why}"))
        }
        other => other,
    }
}

/// A name for a Sigma file of the rules directory: its stem, lowercased, with characters
/// outside `[a-z0-9_]` as `_`.
pub fn name_from_file(stem: &str) -> String {
    stem.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '_' })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-256 `scripts/build-sigma-evaluator.sh` records for the sources (same files,
    /// same order, same framing).
    fn sources_sha256() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<String> =
            ["rules/sigma_evaluator/Cargo.toml", "rules/sigma_evaluator/Cargo.lock", "sdk/Cargo.toml"]
                .map(String::from)
                .to_vec();
        fn walk(root: &std::path::Path, dir: &str, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(root.join(dir)).expect("source dir") {
                let entry = entry.expect("dir entry");
                let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
                if entry.file_type().expect("file type").is_dir() {
                    walk(root, &rel, out);
                } else if rel.ends_with(".rs") {
                    out.push(rel);
                }
            }
        }
        walk(&root, "rules/sigma_evaluator/src", &mut files);
        walk(&root, "sdk/src", &mut files);
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            h.update(f.as_bytes());
            h.update([0]);
            h.update(std::fs::read(root.join(&f)).expect("source file"));
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    #[test]
    fn embedded_evaluator_is_built_from_the_current_sources() {
        let recorded = include_str!("../../assets/sigma_evaluator.sources.sha256").trim();
        assert_eq!(
            sources_sha256(),
            recorded,
            "rules/sigma_evaluator or vigil-sdk changed since engine/assets/sigma_evaluator.wasm was built: \
             run scripts/build-sigma-evaluator.sh"
        );
        assert!(EVALUATOR.starts_with(b"\0asm"));
    }

    #[test]
    fn formats_names_and_configs() {
        assert_eq!(RuleFormat::detect(b"\0asm\x01\0\0\0"), RuleFormat::Wasm);
        assert_eq!(RuleFormat::detect(b"title: x\n"), RuleFormat::Sigma);
        assert_eq!(name_from_file("Brute-Force.v2"), "brute_force_v2");
        let sha = version_sha256(b"title: x\n");
        assert_ne!(sha, version_sha256(b"title: y\n"));
        let config: serde_json::Value = serde_json::from_str(&config_json("r1", b"title: x\n", &sha).unwrap()).unwrap();
        assert_eq!(config["sigma"], "title: x\n");
        assert!(config["version"].as_str().unwrap().starts_with("sigma-"));
        assert!(config_json("Bad-Name", b"x", &sha).is_err());
        assert!(config_json("r", &[0xff, 0xfe], &sha).unwrap_err().to_string().contains("UTF-8"));
        let e = refusal(
            "r",
            RuleError::Invalid(
                "vigil_init refused the configuration (code 1): Rule init refused: Sigma rule \"x\" (line 3): bad"
                    .into(),
            ),
        );
        assert_eq!(e.to_string(), "Sigma deployment r: Sigma rule \"x\" (line 3): bad");
    }
}
