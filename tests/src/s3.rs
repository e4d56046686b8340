//! A private S3-compatible server for tests: moto's (`python3 -m moto.server`, installed by
//! `scripts/setup.sh --postgres`) on a free port, killed when dropped. moto accepts any
//! credentials and keeps objects in memory.

use std::net::TcpListener;
use std::process::{Child, Stdio};

use anyhow::Context;

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    child: Child,
}

impl Moto {
    /// Starts one and waits until it answers.
    pub async fn start() -> anyhow::Result<Moto> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start moto's S3 server (python3 -m moto.server; scripts/setup.sh --postgres installs it)")?;
        let moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), child };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if client.get(format!("{}/moto-api/", moto.endpoint)).send().await.is_ok() {
                return Ok(moto);
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "moto did not come up at {}", moto.endpoint);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Creates a bucket (moto takes an unsigned request).
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let resp = reqwest::Client::new().put(format!("{}/{name}", self.endpoint)).send().await?;
        anyhow::ensure!(resp.status().is_success(), "create bucket {name}: {}", resp.status());
        Ok(())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
