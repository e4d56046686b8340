//! The `vigil` command line: `vigil serve` runs the server; `vigil rules ...` is the rule
//! author's toolbox (see `vigil --help`).

mod args;

use clap::Parser;
use vigil::config::Config;

use args::{
    AlertsCommand, AllowlistCommand, ArchiveCommand, Cli, Command, ConfigCommand, DecisionsCommand, EventsCommand,
    IntegrityCommand, KeysCommand, RulesCommand, SigmaCommand,
};

/// mimalloc instead of the system allocator: ingest allocates and frees many small JSON
/// values per event, and glibc malloc was a quarter of the server's CPU under W1 (perf).
/// Built without transparent huge pages (the `no_thp` feature, see Cargo.toml): with them
/// the idle server's heap was 87-105 MB resident instead of 27 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `vigil serve` logs in the format of its configuration (set up once it is loaded).
    if !matches!(cli.command, Command::Serve(_)) {
        vigil::telemetry::init_logging();
    }
    vigil::app::install_tls();
    match cli.command {
        Command::Serve(args) => {
            let config = args.load()?;
            vigil::telemetry::init_logging_as(&config.log.format);
            serve(config).await
        }
        Command::Verify { file, archive, archive_config, public_key, url, key, from, to, json } => {
            let code = if archive.is_some() || archive_config.is_some() || file.len() > 1 {
                let source = args::ArchiveSource { archive, config: archive_config };
                let archive =
                    if source.archive.is_some() || source.config.is_some() { Some(source.open()?) } else { None };
                vigil::cli::verify_chain(archive.as_ref(), &file, &public_key, json).await?
            } else if let Some(file) = file.first() {
                vigil::cli::verify_file(file, &public_key, json)?
            } else if let Some(url) = url {
                let key = key.ok_or_else(|| anyhow::anyhow!("--url needs --key (or VIGIL_KEY)"))?;
                vigil::cli::verify_server(&url, &key, from, to, json).await?
            } else {
                anyhow::bail!("give --file (an export), --archive (the retention archive) or --url (a running server)")
            };
            std::process::exit(code);
        }
        Command::Archive { command } => archive(command).await,
        Command::Receivers { server } => server.call(reqwest::Method::GET, "/v1/receivers".into(), None).run().await,
        Command::Silences { server } => server.call(reqwest::Method::GET, "/v1/silences".into(), None).run().await,
        Command::Events { command } => events(command).await,
        Command::Config { command } => config(command).await,
        Command::Alerts { command } => alerts(command).await,
        Command::Decisions { command } => decisions(command).await,
        Command::Allowlist { command } => allowlist(command).await,
        Command::Keys { command } => keys(command).await,
        Command::Openapi { markdown } => {
            if markdown {
                print!("{}", vigil::api::openapi::markdown());
            } else {
                println!("{}", vigil::api::openapi::document_text());
            }
            Ok(())
        }
        Command::Report { period, date, output, url, key } => {
            let mut path = format!("/v1/reports/security?period={period}&format={output}");
            if let Some(date) = date {
                path.push_str(&format!("&date={}", vigil::cli::query_escape(&date)));
            }
            let call =
                vigil::cli::Call { url, key, json: output == "json", method: reqwest::Method::GET, path, body: None };
            call.run().await
        }
        Command::Integrity { command } => match command {
            IntegrityCommand::Accept { reason, server } => vigil::cli::accept(&reason, &server.url, &server.key).await,
        },
        Command::Rules { command } => rules(command).await,
    }
}

async fn archive(command: ArchiveCommand) -> anyhow::Result<()> {
    match command {
        ArchiveCommand::List { source, json } => vigil::cli::archive_list(&source.open()?, json).await,
        ArchiveCommand::Restore { source, from_seq, to_seq, since, until, out, public_key } => {
            let time = |name: &str, v: Option<String>| -> anyhow::Result<Option<i64>> {
                v.map(|t| {
                    vigil::event::parse_time(&t)
                        .or_else(|| t.parse().ok())
                        .ok_or_else(|| anyhow::anyhow!("--{name} {t:?}: give RFC 3339 or epoch milliseconds"))
                })
                .transpose()
            };
            if let (Some(from), Some(to)) = (from_seq, to_seq)
                && to < from
            {
                anyhow::bail!("--to-seq {to} is before --from-seq {from}");
            }
            let range = match from_seq {
                Some(from) => vigil::cli::RestoreRange::Seqs { from, to: to_seq },
                None => vigil::cli::RestoreRange::Times { since: time("since", since)?, until: time("until", until)? },
            };
            let code = vigil::cli::archive_restore(&source.open()?, &public_key, range, &out).await?;
            std::process::exit(code);
        }
    }
}

async fn events(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Tail { filters, interval, count, server } => {
            let f = filters;
            let pairs = [
                ("category", f.category),
                ("action", f.action),
                ("severity", f.severity),
                ("outcome", f.outcome),
                ("organization_id", f.organization_id),
                ("user_id", f.user_id),
                ("ip", f.ip),
                ("request_id", f.request_id),
                ("ingest_key", f.ingest_key),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let every = std::time::Duration::from_secs_f64(interval.clamp(0.05, 3600.0));
            let filter = vigil::cli::TailFilter { pairs };
            let json = server.output == "json";
            vigil::cli::tail(&server.endpoint.url, &server.endpoint.key, &filter, every, count, json, |line| {
                println!("{line}")
            })
            .await
        }
        EventsCommand::Export { out, format, since, until, from, to, server } => {
            let mut q = vec![format!("format={format}")];
            q.extend(since.map(|s| format!("since={}", vigil::cli::query_escape(&s))));
            q.extend(until.map(|s| format!("until={}", vigil::cli::query_escape(&s))));
            q.extend(from.map(|s| format!("from={s}")));
            q.extend(to.map(|s| format!("to={s}")));
            let bytes = vigil::cli::export(&server.endpoint.url, &server.endpoint.key, &q.join("&"), &out).await?;
            if out.as_os_str() != "-" {
                eprintln!("{bytes} bytes written to {}", out.display());
            }
            Ok(())
        }
    }
}

async fn config(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Init { path, force } => vigil::cli::config_init(&path, force),
        ConfigCommand::Check { server, strict } => match server.load() {
            Ok(config) => {
                if let Err(problem) = vigil::ingest::Enricher::load(&config) {
                    eprintln!("invalid configuration: {problem}");
                    std::process::exit(2);
                }
                println!("{}", vigil::cli::config_summary(&config));
                if strict && !config.unreachable_receiver_warnings().is_empty() {
                    eprintln!("--strict: the configuration has warnings");
                    std::process::exit(1);
                }
                Ok(())
            }
            Err(e) => {
                eprintln!("invalid configuration: {e:#}");
                std::process::exit(2);
            }
        },
    }
}

async fn alerts(command: AlertsCommand) -> anyhow::Result<()> {
    let call = match command {
        AlertsCommand::List { status, severity, rule, limit, server } => {
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [("status", status), ("severity", severity), ("rule", rule)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", vigil::cli::query_escape(&v)));
                }
            }
            server.call(reqwest::Method::GET, format!("/v1/alerts?{}", query.join("&")), None)
        }
        AlertsCommand::Ack { id, comment, server } => server.call(
            reqwest::Method::POST,
            format!("/v1/alerts/{id}/ack"),
            Some(serde_json::json!({"comment": comment})),
        ),
        AlertsCommand::Resolve { id, disposition, comment, server } => server.call(
            reqwest::Method::POST,
            format!("/v1/alerts/{id}/resolve"),
            Some(serde_json::json!({"disposition": disposition, "comment": comment})),
        ),
    };
    call.run().await
}

async fn decisions(command: DecisionsCommand) -> anyhow::Result<()> {
    let call = match command {
        DecisionsCommand::List { status, scope, limit, server } => {
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [("status", status), ("scope", scope)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", vigil::cli::query_escape(&v)));
                }
            }
            server.call(reqwest::Method::GET, format!("/v1/decisions?{}", query.join("&")), None)
        }
        DecisionsCommand::Check { scope, value, server } => {
            let (scope, value) = (vigil::cli::query_escape(&scope), vigil::cli::query_escape(&value));
            server.call(reqwest::Method::GET, format!("/v1/decisions?scope={scope}&value={value}"), None)
        }
        DecisionsCommand::Add { scope, value, kind, duration_secs, duration, reason, alert, server } => {
            let mut body = serde_json::json!({"scope": scope, "value": value, "kind": kind,
                "reason": reason, "alert_id": alert});
            match duration {
                Some(text) => body["duration"] = text.into(),
                None => body["duration_secs"] = duration_secs.unwrap_or(3600).into(),
            }
            server.call(reqwest::Method::POST, "/v1/decisions".into(), Some(body))
        }
        DecisionsCommand::Lift { id, reason, server } => server.call(
            reqwest::Method::DELETE,
            format!("/v1/decisions/{id}"),
            Some(serde_json::json!({"reason": reason})),
        ),
    };
    call.run().await
}

async fn allowlist(command: AllowlistCommand) -> anyhow::Result<()> {
    let call = match command {
        AllowlistCommand::List { all, server } => {
            let path = if all { "/v1/allowlist?status=all" } else { "/v1/allowlist" };
            server.call(reqwest::Method::GET, path.into(), None)
        }
        AllowlistCommand::Add { scope, value, reason, duration, server } => {
            let mut body = serde_json::json!({"scope": scope, "value": value, "reason": reason});
            if let Some(d) = duration {
                body["duration"] = d.into();
            }
            server.call(reqwest::Method::POST, "/v1/allowlist".into(), Some(body))
        }
        AllowlistCommand::Remove { id, server } => {
            server.call(reqwest::Method::DELETE, format!("/v1/allowlist/{}", vigil::cli::query_escape(&id)), None)
        }
    };
    call.run().await
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { name, role, server } => {
            let body = serde_json::json!({"name": name, "role": role});
            server.call(reqwest::Method::POST, "/v1/keys".into(), Some(body)).run().await
        }
        KeysCommand::List { server } => server.call(reqwest::Method::GET, "/v1/keys".into(), None).run().await,
        KeysCommand::Revoke { id, server } => {
            let path = format!("/v1/keys/{}", vigil::cli::query_escape(&id));
            server.call(reqwest::Method::DELETE, path, None).run().await
        }
        KeysCommand::CheckpointPublic { data_dir } => {
            let keys = vigil::ledger::keys::current_public(&data_dir)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", keys.public_hex());
            }
            eprintln!("key id {}", keys.key_id());
            Ok(())
        }
        KeysCommand::RotateCheckpoint { data_dir } => {
            let id = vigil::ledger::keys::rotate(&data_dir)?;
            eprintln!("New checkpoint key {id}; restart the server to sign with it (old checkpoints stay checkable)");
            Ok(())
        }
    }
}

async fn rules(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::List { server } => server.call(reqwest::Method::GET, "/v1/rules".into(), None).run().await,
        RulesCommand::New { name, dir } => {
            let root = vigil::cli::new_rule(&name, &dir)?;
            eprintln!("Created {}: `vigil rules test --path {0}` then `vigil rules build --path {0}`", root.display());
            Ok(())
        }
        RulesCommand::Build { path } => vigil::cli::build(&path, None),
        RulesCommand::Test { path } => vigil::cli::test(&path, None),
        RulesCommand::Deploy { file, name, server } => vigil::cli::deploy(&file, name, &server.url, &server.key).await,
        RulesCommand::Sigma { command: SigmaCommand::Check { files, name } } => {
            let (results, ok) = tokio::task::block_in_place(|| vigil::cli::sigma_check(&files, name.as_deref()))?;
            #[allow(clippy::print_stdout)]
            for r in &results {
                println!("{r}");
            }
            if !ok {
                anyhow::bail!("some Sigma deployments were refused (see above)");
            }
            eprintln!("{} Sigma deployment(s) ok", results.len());
            Ok(())
        }
        RulesCommand::Sigma { command: SigmaCommand::Deploy { files, name, server } } => {
            vigil::cli::sigma_deploy(&files, name.as_deref(), &server.url, &server.key).await
        }
        RulesCommand::Backtest { file, since, until, server } => {
            let time = |s: &str| {
                vigil::event::parse_time(s).ok_or_else(|| anyhow::anyhow!("{s:?} is not an RFC 3339 time or epoch ms"))
            };
            let until = until.as_deref().map(time).transpose()?;
            let (seen, alerts) = vigil::cli::backtest(&file, time(&since)?, until, server.load()?).await?;
            #[allow(clippy::print_stdout)]
            for alert in &alerts {
                println!("{alert}");
            }
            eprintln!("{seen} events evaluated; {} alerts would have been raised (nothing was written)", alerts.len());
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = vigil::app::start(config).await?;
    if let Some(key) = &server.generated_admin_key {
        // Not println!: it panics when stdout cannot be written (a full disk under it), and
        // the server must start and run whatever happens to its output.
        use std::io::Write as _;
        let shown = writeln!(
            std::io::stdout().lock(),
            "\n  First start: an admin API key was generated. It is shown only this once:\n\n    {key}\n"
        );
        if let Err(e) = shown {
            tracing::error!(
                error = %e,
                "The generated admin key could not be shown (stdout is not writable); set VIGIL_ADMIN_KEY and \
                 restart to add an admin key you know"
            );
        }
    }
    let mut server = server;
    let task = std::mem::replace(&mut server.task, tokio::spawn(async { Ok(()) }));
    tokio::pin!(task);
    tokio::select! {
        stopped = &mut task => return Ok(stopped??),
        _ = shutdown_signal() => {}
    }
    tracing::info!("Shutting down");
    server.shutdown().await;
    task.await??;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
