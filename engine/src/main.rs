//! The `vigil` command line: `vigil serve` runs the server (see `vigil --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil security event server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [env: VIGIL_LISTEN] (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// sqlite://PATH or postgres://... [env: VIGIL_DATABASE_URL] (default sqlite://data/vigil.db).
        #[arg(long)]
        database_url: Option<String>,
        /// Directory of .wasm rules to load and watch [env: VIGIL_RULES_DIR].
        #[arg(long)]
        rules_dir: Option<PathBuf>,
        /// TOML config file [env: VIGIL_CONFIG].
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    vigil::telemetry::init_logging();
    match Cli::parse().command {
        Command::Serve { listen, database_url, rules_dir, config } => {
            let config = Config::load(Overrides { config, listen, database_url, rules_dir })?;
            let server = vigil::app::start(config).await?;
            if let Some(key) = &server.generated_admin_key {
                #[allow(clippy::print_stdout)]
                {
                    println!(
                        "\n  First start: an admin API key was generated. It is shown only this once:\n\n    {key}\n"
                    );
                }
            }
            let handle = server.handle.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("Shutting down");
                handle.stop(true).await;
            });
            server.task.await??;
        }
    }
    Ok(())
}
