//! Core NATS publishing for `kind = "nats"` forwarders, on the NATS text protocol: `CONNECT`
//! with `verbose` on (the server answers every command with `+OK` or `-ERR`), then one
//! `PUB <subject> <bytes>` per event with the event's JSON as payload. A batch counts as
//! delivered once the server has acknowledged every `PUB` (`PING`s in between are answered).
//! Core NATS keeps nothing for a subscriber that is not there: use a JetStream stream on the
//! subject to keep the events.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads one protocol line (without CRLF), answering `PING`s.
async fn line(stream: &mut TcpStream) -> Result<String, String> {
    loop {
        let mut text = String::new();
        let mut reader = BufReader::with_capacity(1, &mut *stream);
        let n = tokio::time::timeout(TIMEOUT, reader.read_line(&mut text))
            .await
            .map_err(|_| "the NATS server did not answer in time".to_owned())?
            .map_err(|e| format!("reading from NATS failed: {e}"))?;
        if n == 0 {
            return Err("the NATS server closed the connection".into());
        }
        let text = text.trim_end().to_owned();
        if text == "PING" {
            stream.write_all(b"PONG\r\n").await.map_err(|e| format!("write failed: {e}"))?;
            continue;
        }
        if text.len() > 4096 {
            return Err("the NATS server sent an overlong line".into());
        }
        return Ok(text);
    }
}

/// Connects and says `CONNECT` (with `auth_token` when given).
pub(super) async fn connect(address: &str, token: Option<&str>) -> Result<TcpStream, String> {
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let info = line(&mut stream).await?;
    if !info.starts_with("INFO ") {
        return Err("not a NATS server (no INFO)".into());
    }
    let mut options = json!({"verbose": true, "pedantic": false, "name": "vigil-forwarder", "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"), "protocol": 0});
    if let Some(token) = token {
        options["auth_token"] = json!(token);
    }
    stream.write_all(format!("CONNECT {options}\r\n").as_bytes()).await.map_err(|e| format!("write failed: {e}"))?;
    match line(&mut stream).await?.as_str() {
        "+OK" => Ok(stream),
        // The server's own words: no event text can be in them.
        other => Err(format!("NATS refused the connection: {}", other.chars().take(200).collect::<String>())),
    }
}

/// Publishes every event of a batch and waits for each acknowledgement.
pub(super) async fn publish(stream: &mut TcpStream, subject: &str, batch: &[Value]) -> Result<(), String> {
    let mut out = Vec::new();
    for ev in batch {
        let payload = ev.to_string();
        out.extend_from_slice(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    tokio::time::timeout(TIMEOUT, stream.write_all(&out))
        .await
        .map_err(|_| "writing to NATS timed out".to_owned())?
        .map_err(|e| format!("write failed: {e}"))?;
    for _ in batch {
        match line(stream).await?.as_str() {
            "+OK" => {}
            other => return Err(format!("NATS refused a message: {}", other.chars().take(200).collect::<String>())),
        }
    }
    Ok(())
}
