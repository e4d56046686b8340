//! A private PostgreSQL instance for tests that stop or restart the database: `initdb` and
//! `pg_ctl` on a free port under a temp dir, never the shared server at 5432. As root the
//! commands run as the `postgres` user (PostgreSQL refuses to run as root).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

/// A PostgreSQL cluster of its own, removed on drop.
pub struct PrivatePostgres {
    /// The cluster directory (data and socket).
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1 (and on any other address it was started on).
    pub port: u16,
    bin: PathBuf,
    listen: String,
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().context("no initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PrivatePostgres {
    /// Creates and starts a new cluster (trust auth, user `postgres`) on 127.0.0.1.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1")
    }

    /// Like [`Self::start`], listening on `addresses` (PostgreSQL's `listen_addresses`: a
    /// comma-separated list), e.g. loopback and a test network's address.
    pub fn start_on(addresses: &str) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!("vigil-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let pg = Self { dir, port, bin, listen: addresses.to_owned() };
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.dir).status()?;
            anyhow::ensure!(status.success(), "chown of {} failed", pg.dir.display());
        }
        pg.run("initdb", &["-D", &pg.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])?;
        if addresses != "127.0.0.1" {
            // initdb trusts loopback only; a test network's clients are on the server's subnets.
            use std::io::Write;
            let mut hba = std::fs::OpenOptions::new().append(true).open(pg.dir.join("data").join("pg_hba.conf"))?;
            writeln!(hba, "host all all samenet trust")?;
        }
        pg.resume()?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(args).output().with_context(|| format!("run {}", program.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: sessions are cut, nothing committed is lost).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    /// Starts it (again), waiting until it accepts connections.
    pub fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses={} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display(),
            self.listen
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "-t", "60", "start"])
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
