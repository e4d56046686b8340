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

/// The command lines of a shell block: continuations (a backslash ending a line) joined, and
/// newlines inside quotes kept inside their line (a multi-line `-d '{...}'`).
fn shell_lines(block: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut quote = None::<char>;
    let mut chars = block.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
                line.push(' ');
            }
            (None, '\n') => lines.push(std::mem::take(&mut line)),
            (None, '#') if line.is_empty() || line.ends_with(char::is_whitespace) => {
                // A comment: to the end of the line, whatever quotes it holds.
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                line.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                line.push(c);
            }
            (_, c) => line.push(c),
        }
    }
    lines.push(line);
    lines.retain(|l| !l.trim().is_empty());
    lines
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
    let mut out = Vec::new();
    for line in shell_lines(block) {
        let line = line.as_str();
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

/// One documented `curl` call to the server: method, path and query, headers, body.
#[derive(Debug)]
struct CurlCall {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// The `curl` calls of a shell block addressed to the server at `http://127.0.0.1:8080`
/// (uploads of local files, `--data-binary @file`, are skipped: the file is the user's).
fn curl_calls(block: &str) -> Vec<CurlCall> {
    let mut out = Vec::new();
    for line in shell_lines(block) {
        let words = words(&line);
        let Some(start) = words.iter().position(|w| w == "curl") else { continue };
        let mut call = CurlCall { method: String::new(), path: String::new(), headers: Vec::new(), body: None };
        let mut file_upload = false;
        let mut it = words[start + 1..].iter().take_while(|w| !matches!(w.as_str(), "|" | ">" | "&&" | ";"));
        while let Some(w) = it.next() {
            match w.as_str() {
                "-X" | "--request" => call.method = it.next().cloned().unwrap_or_default(),
                "-H" | "--header" => {
                    if let Some((k, v)) = it.next().and_then(|h| h.split_once(':')) {
                        call.headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                "-d" | "--data" | "--data-binary" | "--data-raw" => {
                    let data = it.next().cloned().unwrap_or_default();
                    file_upload |= data.starts_with('@');
                    call.body = Some(data);
                }
                "-o" | "-w" | "--output" | "--write-out" => {
                    it.next();
                }
                url if url.starts_with("http://127.0.0.1:8080") => {
                    call.path = url.trim_start_matches("http://127.0.0.1:8080").to_owned();
                }
                _ => {}
            }
        }
        if call.path.is_empty() || file_upload {
            continue;
        }
        if call.method.is_empty() {
            call.method = if call.body.is_some() { "POST".into() } else { "GET".into() };
        }
        out.push(call);
    }
    out
}

/// Every documented `curl` call to the server, replayed in document order against a real
/// server (admin key for `$KEY`, a bouncer key for `$BOUNCER`): each must succeed, so an
/// example body, path or query parameter that drifted from the API fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_curl_call_succeeds() -> anyhow::Result<()> {
    let app = vigil_tests::spawn_app(vigil_tests::Backend::Sqlite).await?;
    let bouncer = app.create_key("bouncer").await?;
    let mut replayed = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file)?;
        for (tag, line, body) in blocks(&text) {
            if !matches!(tag.as_str(), "sh" | "bash" | "shell" | "") {
                continue;
            }
            for call in curl_calls(&body) {
                let method = reqwest::Method::from_bytes(call.method.as_bytes())?;
                let mut req = app.client.request(method, app.url(&call.path));
                for (k, v) in &call.headers {
                    let v = v
                        .replace("$KEY", &app.admin_key)
                        .replace("vgl_choose_a_long_random_secret", &app.admin_key)
                        .replace("$BOUNCER", &bouncer);
                    req = req.header(k.as_str(), v);
                }
                if let Some(b) = &call.body {
                    req = req.body(b.replace("$i", "1"));
                }
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                replayed += 1;
                if status >= 400 {
                    let said = resp.text().await.unwrap_or_default();
                    failures.push(format!("{}: {} {} -> {status} {said}", where_(&file, line), call.method, call.path));
                }
            }
        }
    }
    assert!(replayed >= 10, "only {replayed} curl calls found: is the reader broken?");
    assert!(failures.is_empty(), "documented curl calls the server refuses:\n{}", failures.join("\n"));
    Ok(())
}
