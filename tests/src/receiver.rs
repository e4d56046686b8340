//! Real receivers for the alerting tests: an HTTP server that records every request and
//! answers as told (2xx, an error status, 429 with `Retry-After`, or slowly), a real SMTP
//! server (aiosmtpd, installed by `scripts/setup.sh`) writing to a maildir, one that takes
//! AUTH and records every attempt (`AuthSmtp`), and `parse_mail` to read a message as a
//! mail client does.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use serde_json::Value;

/// How the recorder answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// 200 (or 202 for paths starting with `/pd`).
    Ok,
    /// This status.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    RetryAfter(u64),
    /// Sleeps this long, then answers 200.
    Slow(Duration),
}

/// One request the recorder saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Path.
    pub path: String,
    /// Headers (lowercase names).
    pub headers: HashMap<String, String>,
    /// Raw body.
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    modes: HashMap<String, Mode>,
}

/// A recording HTTP receiver on 127.0.0.1 (port 0).
pub struct Recorder {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl Recorder {
    /// Starts one.
    pub fn start() -> anyhow::Result<Recorder> {
        vigil::app::install_tls();
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(record)))
            .workers(1)
            .listen(listener)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Recorder { base, state, handle })
    }

    /// URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sets how requests to `path` are answered.
    pub fn set_mode(&self, path: &str, mode: Mode) {
        self.state.lock().unwrap().modes.insert(path.into(), mode);
    }

    /// Every request to `path`, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Requests to `path` answered 2xx.
    pub fn delivered(&self, path: &str) -> Vec<Recorded> {
        self.requests(path).into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }

    /// Waits until `done(delivered requests to path)` holds, up to `secs`.
    pub async fn wait_for(&self, path: &str, secs: u64, done: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.delivered(path);
            if done(&got) || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the server.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn record(req: HttpRequest, body: web::Bytes, state: web::Data<Mutex<State>>) -> HttpResponse {
    let path = req.path().to_owned();
    let mode = state.lock().unwrap().modes.get(&path).cloned().unwrap_or(Mode::Ok);
    let ok = if path.starts_with("/pd") { 202 } else { 200 };
    let status = match mode {
        Mode::Ok | Mode::Slow(_) => ok,
        Mode::Status(s) => s,
        Mode::RetryAfter(_) => 429,
    };
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_lowercase(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    state.lock().unwrap().requests.push(Recorded {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
    });
    // Recorded on arrival: a sender killed while this one is slow has still delivered.
    if let Mode::Slow(d) = &mode {
        tokio::time::sleep(*d).await;
    }
    let mut resp = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if let Mode::RetryAfter(secs) = mode {
        resp.insert_header(("Retry-After", secs.to_string()));
    }
    resp.body("{}")
}

/// A real SMTP server (aiosmtpd) on a free port, writing each message to a maildir.
pub struct Smtp {
    /// Its port.
    pub port: u16,
    maildir: PathBuf,
    child: std::process::Child,
}

impl Smtp {
    /// Starts aiosmtpd (`python3 -m aiosmtpd`), waiting until it accepts connections.
    pub async fn start() -> anyhow::Result<Smtp> {
        Self::spawn(false).await
    }

    /// Starts aiosmtpd offering STARTTLS with a self-signed certificate and refusing mail
    /// before it (`require_starttls`): a message that arrives went over TLS.
    pub async fn start_tls() -> anyhow::Result<Smtp> {
        Self::spawn(true).await
    }

    async fn spawn(tls: bool) -> anyhow::Result<Smtp> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let maildir = std::env::temp_dir().join(format!("vigil-smtp-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&maildir)?;
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if tls {
            let (cert, key) = (maildir.join("cert.pem"), maildir.join("key.pem"));
            let status = std::process::Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .context("run openssl to make a test certificate")?;
            anyhow::ensure!(status.success(), "openssl failed");
            cmd.arg("--tlscert").arg(&cert).arg("--tlskey").arg(&key);
        }
        let child = cmd
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.join("box"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start aiosmtpd (scripts/setup.sh --postgres installs it)")?;
        wait_for_port(port, "aiosmtpd").await?;
        Ok(Smtp { port, maildir, child })
    }

    /// Every message received so far (raw RFC 5322 text).
    pub fn messages(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("box").join("new")) else { return Vec::new() };
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
    }

    /// Waits until at least `n` messages arrived, up to `secs`.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.messages();
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A real SMTP server (aiosmtpd) that offers `AUTH` (PLAIN, LOGIN) and records every
/// `AUTH` command and every set of credentials it is handed, with whether the connection
/// was encrypted then. Without a certificate it offers no STARTTLS and takes AUTH in the
/// clear (a misconfigured server, or what a man in the middle who strips STARTTLS shows).
pub struct AuthSmtp {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: std::process::Child,
}

/// The user name and password [`AuthSmtp`] accepts.
pub const SMTP_USER: &str = "vigil-mailer";
/// See [`SMTP_USER`].
pub const SMTP_PASSWORD: &str = "s3cret-smtp-pa55";

impl AuthSmtp {
    /// Starts one; `tls`: offer STARTTLS with a self-signed certificate (and take AUTH and
    /// mail only after it).
    pub async fn start(tls: bool) -> anyhow::Result<AuthSmtp> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("vigil-smtp-auth-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if tls {
            let status = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .context("run openssl to make a test certificate")?;
            anyhow::ensure!(status.success(), "openssl failed");
        }
        let script = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult
port, box, log, user, password, tls = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "1"
def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")
class Recording(SMTP):
    async def smtp_AUTH(self, arg):
        note("AUTH %s encrypted=%s" % ((arg or "").split(" ")[0], self._tls_protocol is not None))
        return await super().smtp_AUTH(arg)
def authenticator(server, session, envelope, mechanism, auth_data):
    note("CREDENTIALS %s %s encrypted=%s" % (mechanism, auth_data.login.decode(), server._tls_protocol is not None))
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok)
context = None
if tls:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[7], sys.argv[8])
class Server(Controller):
    def factory(self):
        return Recording(self.handler, hostname="127.0.0.1", authenticator=authenticator,
                         auth_require_tls=tls, auth_required=True, require_starttls=tls, tls_context=context)
Server(Mailbox(box), hostname="127.0.0.1", port=port).start()
while True:
    time.sleep(3600)
"#;
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-c", script, &port.to_string()]).arg(dir.join("box")).arg(dir.join("auth.log")).args([
            SMTP_USER,
            SMTP_PASSWORD,
            if tls { "1" } else { "0" },
        ]);
        if tls {
            cmd.arg(&cert).arg(&key);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start aiosmtpd (scripts/setup.sh --postgres installs it)")?;
        wait_for_port(port, "aiosmtpd with AUTH").await?;
        Ok(AuthSmtp { port, dir, child })
    }

    /// Every `AUTH` command and every set of credentials received, in order
    /// (`AUTH <mechanism> encrypted=<bool>`, `CREDENTIALS <mechanism> <user> encrypted=<bool>`).
    pub fn auth_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("auth.log"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Every message received so far (raw RFC 5322 text).
    pub fn messages(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("box").join("new")) else { return Vec::new() };
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
    }
}

impl Drop for AuthSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// A received message as a mail client reads it (Python's `email` package, the modern
/// policy: encoded words decoded, parts decoded): `{"headers": [[name, value]...],
/// "subject", "text", "html"}`.
pub fn parse_mail(raw: &str) -> anyhow::Result<Value> {
    use std::io::Write as _;
    let script = r#"
import email, json, sys
from email import policy
m = email.message_from_string(sys.stdin.read(), policy=policy.default)
def part(kind):
    p = m.get_body(preferencelist=(kind,))
    return p.get_content() if p is not None else None
print(json.dumps({"headers": [[k, str(v)] for k, v in m.items()], "subject": str(m["subject"]),
                  "text": part("plain"), "html": part("html")}))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("run python3 to parse a message")?;
    child.stdin.take().context("stdin")?.write_all(raw.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "python could not parse the message");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A private CA and a leaf certificate for 127.0.0.1 signed by it (openssl), in `dir`:
/// returns (ca.pem, leaf.pem, leaf.key).
pub fn private_ca(dir: &std::path::Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("run openssl")?;
        anyhow::ensure!(status.success(), "openssl {args:?} failed");
        Ok(())
    };
    std::fs::write(dir.join("leaf.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=vigil-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "leaf.pem",
        "-extfile",
        "leaf.ext",
    ])?;
    Ok((dir.join("ca.pem"), dir.join("leaf.pem"), dir.join("leaf.key")))
}

/// An HTTPS receiver (Python's `http.server` over TLS with the given certificate) that
/// answers 200 and appends `<path> <webhook-id>` per request to a log.
pub struct HttpsRecorder {
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    log: PathBuf,
    child: std::process::Child,
}

impl HttpsRecorder {
    /// Starts one with `cert` and `key` (PEM).
    pub async fn start(dir: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join("https.log");
        let script = r#"
import http.server, ssl, sys
port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(log, "a") as f:
            f.write(f"{self.path} {self.headers.get('webhook-id')}\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;
        let child = std::process::Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .arg(cert)
            .arg(key)
            .arg(&log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start the python HTTPS receiver")?;
        wait_for_port(port, "the HTTPS receiver").await?;
        Ok(Self { base: format!("https://127.0.0.1:{port}"), log, child })
    }

    /// Lines logged so far (`<path> <webhook-id>`).
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).map(|s| s.lines().map(str::to_owned).collect()).unwrap_or_default()
    }
}

impl Drop for HttpsRecorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 20 s) until something accepts connections on 127.0.0.1:`port`.
async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "{what} did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
