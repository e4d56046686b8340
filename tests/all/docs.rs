//! The documentation cannot drift from the code: every `vigil ...` command in a shell block
//! of the README, docs/ and the other READMEs is parsed by the real binary (its arguments
//! followed by `--help`, which clap accepts only when every subcommand and flag before it
//! exists and takes the values given), and every TOML block parses as the configuration
//! (unknown keys are errors). A renamed flag, a removed subcommand or a misspelt config key
//! in a doc fails CI.

use std::path::{Path, PathBuf};

/// The Markdown files whose examples a user copies.
fn documents() -> Vec<PathBuf> {
    let root = vigil_tests::repo_root();
    let mut files: Vec<PathBuf> = ["README.md", "rules/README.md", "examples/README.md", "examples/bouncer/README.md"]
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.exists())
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The fenced blocks of a Markdown text with their language tag and first line number.
fn blocks(text: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(tag) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => out.push(block),
                None => current = Some((tag.trim().to_owned(), n + 2, String::new())),
            }
        } else if let Some((_, _, body)) = &mut current {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Splits a shell line into words: quotes and `$(...)` hold together, `#` starts a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let (mut quote, mut depth, mut started) = (None::<char>, 0usize, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '$') if chars.peek() == Some(&'(') => {
                depth += 1;
                word.push(c);
                started = true;
            }
            (None, '(') if depth > 0 => word.push(c),
            (None, ')') if depth > 0 => {
                depth -= 1;
                word.push(c);
            }
            (None, '#') if !started && depth == 0 => break,
            (None, c) if c.is_whitespace() && depth == 0 => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// The argument lists of the `vigil` commands in a shell block (continuation lines joined;
/// pipelines, `&&`, redirections and leading `VAR=value` assignments cut away; a command
/// inside `$(...)` counted too).
fn vigil_commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let mut segment: Vec<String> = Vec::new();
        let mut segments = Vec::new();
        for w in words(line) {
            if matches!(w.as_str(), "|" | "&&" | "||" | ";" | "&") {
                segments.push(std::mem::take(&mut segment));
            } else {
                segment.push(w);
            }
        }
        segments.push(segment);
        for seg in segments {
            for w in &seg {
                if let Some(inner) = w.strip_prefix("$(").and_then(|w| w.strip_suffix(')')) {
                    out.extend(vigil_commands(inner));
                }
            }
            let mut rest = seg.into_iter().skip_while(|w| w.contains('=') && !w.starts_with('-'));
            let Some(program) = rest.next() else { continue };
            let args: Vec<String> = match program.as_str() {
                "vigil" | "./target/release/vigil" | "target/release/vigil" => rest.collect(),
                "cargo" => {
                    // `cargo run [--release] -p vigil-engine -- ARGS`
                    let all: Vec<String> = rest.collect();
                    let is_engine =
                        all.first().is_some_and(|w| w == "run") && all.windows(2).any(|p| p[1] == "vigil-engine");
                    match all.iter().position(|w| w == "--") {
                        Some(i) if is_engine => all[i + 1..].to_vec(),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            let args: Vec<String> =
                args.into_iter().take_while(|w| !w.starts_with('>') && !w.starts_with('<') && w != "2>&1").collect();
            if !args.is_empty() {
                out.push(args);
            }
        }
    }
    out
}

#[test]
fn the_shell_line_reader_keeps_quotes_and_substitutions_together() {
    let cmds = vigil_commands(
        "VIGIL_KEY=$KEY vigil verify --file e.ndjson --public-key \"$(vigil keys checkpoint-public)\" # ok\n\
         vigil rules backtest r.wasm \\\n  --since 2026-01-01T00:00:00Z > out.txt\n\
         cargo run --release -p vigil-engine -- keys list | head\n",
    );
    assert_eq!(
        cmds,
        vec![
            vec!["keys", "checkpoint-public"],
            vec!["verify", "--file", "e.ndjson", "--public-key", "$(vigil keys checkpoint-public)"],
            vec!["rules", "backtest", "r.wasm", "--since", "2026-01-01T00:00:00Z"],
            vec!["keys", "list"],
        ]
    );
}

fn where_(file: &Path, line: usize) -> String {
    format!("{}:{line}", file.strip_prefix(vigil_tests::repo_root()).unwrap_or(file).display())
}

/// Every documented `vigil` command line parses.
#[test]
fn every_documented_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("readable doc");
        for (tag, line, body) in blocks(&text) {
            if !matches!(tag.as_str(), "sh" | "bash" | "shell" | "console" | "") {
                continue;
            }
            for args in vigil_commands(&body) {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                    .args(&args)
                    .arg("--help")
                    .env_remove("VIGIL_CONFIG")
                    .output()
                    .expect("run vigil");
                checked += 1;
                if !out.status.success() {
                    failures.push(format!(
                        "{}: `vigil {}`: {}",
                        where_(&file, line),
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(checked >= 25, "only {checked} commands found: is the reader broken?");
    assert!(failures.is_empty(), "documented commands the binary refuses:\n{}", failures.join("\n"));
}

/// Every TOML block of the docs is valid configuration (a fragment of `vigil.toml`).
#[test]
fn every_documented_config_block_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("readable doc");
        for (tag, line, body) in blocks(&text) {
            if tag != "toml" || file.ends_with("rules/README.md") || body.contains("[package]") {
                continue;
            }
            checked += 1;
            if let Err(e) = toml::from_str::<vigil::config::Config>(&body) {
                failures.push(format!("{}: {e}", where_(&file, line)));
            }
        }
    }
    assert!(checked >= 1, "no TOML blocks found");
    assert!(failures.is_empty(), "documented configuration that does not parse:\n{}", failures.join("\n"));
}
