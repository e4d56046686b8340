//! The processes of the cluster tests: a private 3-server NATS JetStream cluster and
//! `vigil serve` nodes in cluster mode, each killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::Context;

pub(super) const KEY: &str = "vgl_cluster_test_admin_key_0123456789";
pub(super) const PARTITIONS: u32 = 6;

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Kills the child on drop.
pub(super) struct Proc(pub(super) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn signal(child: &Child, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").args([sig, &child.id().to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill {sig} failed");
    Ok(())
}

/// Three nats-server processes with JetStream, routed to each other.
pub(super) struct NatsCluster {
    pub(super) servers: Vec<Proc>,
    pub(super) ports: Vec<u16>,
    _dir: PathBuf,
}

impl NatsCluster {
    pub(super) fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(dir, "127.0.0.1")
    }

    /// Three servers listening for clients on `address` (`0.0.0.0`: also on a test network).
    pub(super) fn start_on(dir: &Path, address: &str) -> anyhow::Result<Self> {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let mut servers = Vec::new();
        for i in 0..3 {
            let store = dir.join(format!("nats{i}"));
            std::fs::create_dir_all(&store)?;
            let others: Vec<String> =
                (0..3).filter(|j| *j != i).map(|j| format!("nats://127.0.0.1:{}", routes[j])).collect();
            let log = std::fs::File::create(dir.join(format!("nats{i}.log")))?;
            let child = Command::new("nats-server")
                .args(["-js", "-a", address, "-p", &ports[i].to_string(), "-sd"])
                .arg(&store)
                .args(["--server_name", &format!("n{i}"), "--cluster_name", "c"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i]), "--routes", &others.join(",")])
                .stdout(std::process::Stdio::from(log.try_clone()?))
                .stderr(std::process::Stdio::from(log))
                .spawn()
                .context("nats-server (scripts/setup.sh installs it)")?;
            servers.push(Proc(child));
        }
        Ok(Self { servers, ports, _dir: dir.to_owned() })
    }

    /// `kill -9` of server `i`.
    pub(super) fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        signal(&self.servers[i].0, "-KILL")
    }

    pub(super) fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }
}

/// One `vigil serve` node.
pub(super) struct Node {
    pub(super) name: String,
    pub(super) config: PathBuf,
    pub(super) log: PathBuf,
    pub(super) base: String,
    pub(super) proc: Option<Proc>,
}

impl Node {
    pub(super) fn new(dir: &Path, name: &str, database_url: &str, nats: &str, rules: &Path) -> anyhow::Result<Self> {
        Self::with_extra(dir, name, database_url, nats, rules, "")
    }

    /// A node whose configuration ends with `extra` (tables such as `[[receivers]]`).
    pub(super) fn with_extra(
        dir: &Path,
        name: &str,
        database_url: &str,
        nats: &str,
        rules: &Path,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let data = dir.join(name);
        std::fs::create_dir_all(&data)?;
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"{database_url}\"\ndata_dir = \"{}\"\nworkers = 1\n\
                 rules_dir = \"{}\"\n\n\
                 [cluster]\nnats_url = \"{nats}\"\npartitions = {PARTITIONS}\nnode_id = \"{name}\"\n\
                 stream_replicas = 3\nlease_ms = 3000\nheartbeat_ms = 500\n{extra}",
                data.display(),
                rules.display()
            ),
        )?;
        Ok(Self {
            name: name.into(),
            config,
            log: dir.join(format!("{name}.log")),
            base: format!("http://127.0.0.1:{port}"),
            proc: None,
        })
    }

    pub(super) async fn start(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let child = vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), &self.config, &self.log, KEY)?;
        self.proc = Some(Proc(child));
        vigil_tests::wait_healthy(client, &self.base)
            .await
            .with_context(|| format!("{} did not start: {}", self.name, self.log_text()))
    }

    pub(super) fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub(super) fn child(&self) -> &Child {
        &self.proc.as_ref().expect("started").0
    }
}

/// Copies a node's data directory files (keys, secrets; not its anchor) to another's.
pub(super) fn share_secrets(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() && entry.file_name() != "anchor.json" {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
