//! `cargo run -p reference-server`: the shop on embedded defaults (stores in memory, the
//! search index under `target/reference-server`, the demo catalog seeded), on
//! <http://127.0.0.1:8080>. A TOML file (`--config FILE` or `COMMERCE_CONFIG`) and the
//! environment (`PORT`, `BIND`, `DATABASE_URL`, …) change that: every key of
//! [`reference_server::Config`], checked before the server starts.

#![allow(clippy::print_stdout, reason = "the server says where it listens")]

use std::net::SocketAddr;
use std::time::Duration;

use reference_server::{Config, StartError, build, system_clock};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A refused configuration names its key; anything else says what failed.
            #[allow(clippy::print_stderr, reason = "the reason the server did not start")]
            {
                eprintln!("reference-server: {e}");
            }
            let config = e.downcast_ref::<reference_server::ConfigError>().is_some();
            std::process::ExitCode::from(if config { 78 } else { 1 })
        }
    }
}

fn start() -> Result<(), StartError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), StartError> {
    // `--config FILE` or `COMMERCE_CONFIG`, then the environment.
    let mut args = std::env::args().skip(1);
    let file = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => Some(std::path::PathBuf::from(path)),
        (None, _) => None,
        _ => return Err("usage: reference-server [--config FILE]".into()),
    };
    let config = Config::load(file.as_deref())?;
    let app = build(&config, system_clock()).await?;
    let listener = tokio::net::TcpListener::bind((config.bind.as_str(), config.port)).await?;
    let addr = listener.local_addr()?;
    std::fs::write(config.data_dir.join("admin.token"), &app.admin_token)?;
    println!(
        "reference shop on http://{addr}/ ({} stores); the admin token is in {}",
        app.stores.backend,
        config.data_dir.join("admin.token").display()
    );
    let router = app.router.clone();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    // In-flight requests have finished (checkouts included: they run to the end in their own
    // task); now the background work.
    app.stop(Duration::from_secs(10)).await;
    println!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            let _ = s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
