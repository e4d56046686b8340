//! A node cut off from NATS and PostgreSQL by the network, not by a signal: node c runs in
//! a network namespace of its own, reaching the (private) NATS servers and PostgreSQL over
//! one veth link and its clients over another. Taking the first link down cuts it off
//! while clients can still reach it: it must stop acknowledging, the others must take its
//! partitions and keep answering, and when the link comes back it must never commit to a
//! partition it lost (fencing) and must get work again.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::procs::{KEY, NatsCluster, Node, PARTITIONS, Proc, free_port, share_secrets};
use super::{Acked, acked, batch, post, until_placed};

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("ip (iproute2)")?;
    anyhow::ensure!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A network namespace with two veth links to the host: `services` (10.231.n.0/30, the
/// node's way to NATS and PostgreSQL) and `clients` (10.232.n.0/30, the way in for HTTP).
/// Removed on drop.
struct TestNet {
    name: String,
    n: u8,
}

impl TestNet {
    fn create() -> anyhow::Result<Self> {
        let n = 20 + (uuid::Uuid::now_v7().as_u128() % 200) as u8;
        let net = Self { name: format!("vigil-cut-{}-{n}", std::process::id()), n };
        ip(&["netns", "add", &net.name])?;
        ip(&["netns", "exec", &net.name, "ip", "link", "set", "lo", "up"])?;
        for (link, subnet) in [("s", 231), ("c", 232)] {
            let (host, inner) = (net.host_if(link), format!("v{link}{n}n"));
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &net.name])?;
            ip(&["addr", "add", &format!("10.{subnet}.{n}.1/30"), "dev", &host])?;
            ip(&["link", "set", &host, "up"])?;
            let addr = format!("10.{subnet}.{n}.2/30");
            ip(&["netns", "exec", &net.name, "ip", "addr", "add", &addr, "dev", &inner])?;
            ip(&["netns", "exec", &net.name, "ip", "link", "set", &inner, "up"])?;
        }
        Ok(net)
    }

    fn host_if(&self, link: &str) -> String {
        format!("v{link}{}h", self.n)
    }

    /// The host's address on the services link (where NATS and PostgreSQL listen for c).
    fn services_host(&self) -> String {
        format!("10.231.{}.1", self.n)
    }

    /// The node's address on the clients link.
    fn client_addr(&self) -> String {
        format!("10.232.{}.2", self.n)
    }

    /// Takes the services link down (`up = false`) or brings it back.
    fn services(&self, up: bool) -> anyhow::Result<()> {
        ip(&["link", "set", &self.host_if("s"), if up { "up" } else { "down" }])
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        for link in ["s", "c"] {
            let _ = Command::new("ip").args(["link", "del", &self.host_if(link)]).status();
        }
    }
}

/// Node c inside `net`: listens on every address of the namespace, reaches NATS and
/// PostgreSQL through the services link.
fn node_in(net: &TestNet, dir: &std::path::Path, db_port: u16, nats_ports: &[u16], rules: &std::path::Path) -> Node {
    let port = free_port().expect("a port");
    let host = net.services_host();
    let nats: Vec<String> = nats_ports.iter().map(|p| format!("nats://{host}:{p}")).collect();
    let data = dir.join("c");
    std::fs::create_dir_all(&data).expect("data dir");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:{port}\"\ndatabase_url = \"postgres://postgres@{host}:{db_port}/postgres\"\n\
             data_dir = \"{}\"\nworkers = 1\nrules_dir = \"{}\"\n\n\
             [cluster]\nnats_url = \"{}\"\npartitions = {PARTITIONS}\nnode_id = \"c\"\n\
             advertise = \"http://{}:{port}\"\nstream_replicas = 3\nlease_ms = 3000\nheartbeat_ms = 500\n",
            data.display(),
            rules.display(),
            nats.join(","),
            net.client_addr()
        ),
    )
    .expect("config");
    Node {
        name: "c".into(),
        config,
        log: dir.join("c.log"),
        base: format!("http://{}:{port}", net.client_addr()),
        proc: None,
    }
}

fn start_in(net: &TestNet, node: &mut Node) -> anyhow::Result<()> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
    let child = Command::new("ip")
        .args(["netns", "exec", &net.name, env!("CARGO_BIN_EXE_vigil"), "serve", "--config"])
        .arg(&node.config)
        .env("VIGIL_ADMIN_KEY", KEY)
        .env("VIGIL_LOG", "info")
        .stdout(std::process::Stdio::from(out.try_clone()?))
        .stderr(std::process::Stdio::from(out))
        .spawn()?;
    node.proc = Some(Proc(child));
    Ok(())
}

/// Posts batches through `bases` in turn until `stop`; every acknowledged event.
fn load(client: reqwest::Client, bases: Vec<String>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Acked> {
    tokio::spawn(async move {
        let mut all = Acked::new();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let base = &bases[i % bases.len()];
            if let Some(body) = post(&client, base, &batch(&format!("load-{i}"), 30)).await
                && let Ok(acks) = acked(&body)
            {
                all.extend(acks);
            }
            i += 1;
        }
        all
    })
}

/// Posts to `base` until one batch is acknowledged (a node reconnecting may refuse a few).
async fn until_acked(client: &reqwest::Client, base: &str, prefix: &str) -> anyhow::Result<Acked> {
    let deadline = Instant::now() + Duration::from_secs(90);
    for i in 0.. {
        if let Some(body) = post(client, base, &batch(&format!("{prefix}-{i}"), 20)).await {
            return acked(&body);
        }
        anyhow::ensure!(Instant::now() < deadline, "{base} never acknowledged a batch");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    unreachable!()
}

/// Every acknowledged event stored once at its seq; every partition's chain verifies.
async fn check_log(db_url: &str, data_dir: &std::path::Path, acks: &Acked) -> anyhow::Result<()> {
    use vigil::store::Store;
    use vigil::store::postgres::PgStore;
    let secrets = vigil::ledger::keys::load(data_dir, vigil::ledger::keys::LogFacts::default())?;
    let mut conn = vigil_tests::connect_pg(db_url).await?;
    let table = |p: u32| if p == 0 { "public.events".to_owned() } else { format!("public_p{p}.events") };
    for p in 0..PARTITIONS {
        let dup: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) - count(DISTINCT (event_id, ingest_key)) FROM {}",
            table(p)
        )))
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(dup, 0, "partition {p} stores an event twice");
        let store = Store::Postgres(PgStore::open_partition(db_url, p, None).await?);
        let report = vigil::ledger::verify::verify(&store, None, None, secrets.checkpoints.verifier(), None).await?;
        assert_eq!(report.status, "ok", "partition {p}: {:?}", report.failures);
    }
    for (id, p, seq) in acks {
        let seqs: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT seq FROM {} WHERE event_id = $1", table(*p))))
                .bind(id)
                .fetch_all(&mut conn)
                .await?;
        assert_eq!(seqs, vec![*seq], "acknowledged event {id} in partition {p}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_and_postgresql_stops_acknowledging_is_fenced_and_rejoins() -> anyhow::Result<()> {
    vigil::app::install_tls();
    vigil::telemetry::init_test_logging();
    let dir = std::env::temp_dir().join(format!("vigil-netns-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let net = TestNet::create().context("a network namespace (ip netns; the tests run as root)")?;
    let pg = vigil_tests::pg::PrivatePostgres::start_on(&format!("127.0.0.1,{}", net.services_host()))?;
    let nats = NatsCluster::start_on(&dir, "0.0.0.0")?;
    let client = reqwest::Client::new();
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    let db_url = pg.url();
    let mut nodes: Vec<Node> =
        ["a", "b"].iter().map(|n| Node::new(&dir, n, &db_url, &nats.urls(), &rules)).collect::<Result<_, _>>()?;
    nodes[0].start(&client).await?;
    share_secrets(&dir.join("a"), &dir.join("b"))?;
    nodes[1].start(&client).await?;
    let mut c = node_in(&net, &dir, pg.port, &nats.ports, &rules);
    share_secrets(&dir.join("a"), &dir.join("c"))?;
    start_in(&net, &mut c)?;
    vigil_tests::wait_healthy(&client, &c.base).await.with_context(|| c.log_text())?;
    let owners = until_placed(&client, &nodes[0], &["a", "b", "c"]).await?;
    let held_by_c: Vec<usize> = (0..owners.len()).filter(|p| owners[*p] == "c").collect();
    assert!(!held_by_c.is_empty(), "placement gives c partitions to lose: {owners:?}");
    let mut all = until_acked(&client, &c.base, "c-before").await?;

    // Load through a and b (reaching c's partitions through the stream) while c is cut off.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(client.clone(), vec![nodes[0].base.clone(), nodes[1].base.clone()], stop.clone());
    // The worst moment for the cut: c's writer inside its append transaction, past the lease
    // check (holding the lease row shared) and the append lock. A lock on one of its
    // partitions' tables holds its next insert there; the cut comes while it waits, and the
    // lock is released after it, so the transaction is left open by a writer that is gone.
    let mut locker = vigil_tests::connect_pg(&db_url).await?;
    let held = held_by_c[0] as u32;
    let table = if held == 0 { "public.events".to_owned() } else { format!("public_p{held}.events") };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("BEGIN; LOCK TABLE {table} IN SHARE MODE"))).execute(&mut locker).await?;
    let mut watcher = vigil_tests::connect_pg(&db_url).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass")
                .bind(&table)
                .fetch_one(&mut watcher)
                .await?;
        if waiting > 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "c's writer never reached partition {held}'s table");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.services(false)?;
    sqlx::raw_sql("COMMIT").execute(&mut locker).await?;
    drop((locker, watcher));

    // c can still be reached by clients but acknowledges nothing while cut off.
    let tries: Vec<_> = (0..3)
        .map(|i| {
            let (client, base) = (client.clone(), c.base.clone());
            tokio::spawn(async move { post(&client, &base, &batch(&format!("c-cut-{i}"), 10)).await })
        })
        .collect();
    // a and b take c's partitions and keep answering, for every partition.
    let owners = until_placed(&client, &nodes[0], &["a", "b"]).await.with_context(|| nodes[0].log_text())?;
    assert!(owners.iter().all(|o| o == "a" || o == "b"), "{owners:?}");
    for (i, node) in nodes.iter().enumerate() {
        all.extend(until_acked(&client, &node.base, &format!("during-{i}")).await?);
    }
    for t in tries {
        assert!(t.await?.is_none(), "node c acknowledged a batch while cut off from NATS and PostgreSQL");
    }

    // The link comes back: c must never commit to the partitions it lost, then rejoins.
    net.services(true)?;
    until_placed(&client, &nodes[0], &["a", "b", "c"]).await.with_context(|| c.log_text())?;
    all.extend(until_acked(&client, &c.base, "c-after").await?);
    stop.store(true, Ordering::Relaxed);
    all.extend(loader.await?);
    let log = std::fs::read_to_string(&c.log)?;
    assert!(log.contains("Lost the partition's lease"), "c noticed it lost its partitions: {}", c.log_text());
    let covered: std::collections::HashSet<u32> = all.iter().map(|a| a.1).collect();
    assert!(held_by_c.iter().all(|p| covered.contains(&(*p as u32))), "acks reach c's former partitions");
    check_log(&db_url, &dir.join("a"), &all).await?;
    drop(c);
    drop(nodes);
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
