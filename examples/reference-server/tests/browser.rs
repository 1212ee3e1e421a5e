//! The storefront in a real browser: the reference server started as a process, a shopper
//! driven through Debian's Chromium by `playwright-core` (`tests/browser/storefront.mjs`).
//! Screenshots land in `target/browser-artifacts/`.
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci` in `tests/browser` (`.ci/run` does all
//! three). Without them the test says why and passes, except under `CI=true`, where it fails.

#![allow(clippy::print_stderr, reason = "a skipped test says why")]

#[path = "common/servers.rs"]
#[allow(dead_code, reason = "the browser test needs only the fresh schema")]
mod servers;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what}"
    );
    eprintln!("skipping the browser test: {what}");
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

#[test]
fn a_shopper_searches_filters_buys_and_sees_the_order_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node is not installed");
    }
    if !Path::new(&chromium).exists() {
        return missing("chromium is not installed (apt-get install chromium)");
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return missing("playwright-core is not installed (npm ci in tests/browser)");
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let data = std::env::temp_dir().join(format!("reference-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut command = Command::new(env!("CARGO_BIN_EXE_reference-server"));
    // The hashing embedder: the language model would embed the 3,000 demo products at every
    // start (its own tests cover it).
    command.env_remove("MINILM_DIR");
    command
        .env("PORT", port.to_string())
        .env("DATA_DIR", &data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    // On the real servers when they are named (as in CI), in a schema, a Redis namespace and
    // topics of this run's own: what earlier runs left (stock they sold, topics a restarted
    // broker lost) must not decide this one.
    let run = format!("{}-{port}", std::process::id());
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let schema = runtime.block_on(servers::fresh_schema(&url, "browser"));
        command.env("DATABASE_SCHEMA", schema);
    }
    command
        .env("REDIS_NAMESPACE", format!("browser-{run}"))
        .env("KAFKA_TOPIC_PREFIX", format!("browser-{run}."));
    let mut server = command.spawn().expect("the server starts");
    // Ready within a minute (600 polls, 100 ms apart).
    let ready = (0..600).any(|_| {
        let up = get(port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"));
        if !up {
            std::thread::sleep(Duration::from_millis(100));
        }
        up
    });
    assert!(ready, "the server never got ready");
    let artifacts: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    let run = Command::new("node")
        .arg("storefront.mjs")
        .current_dir(&dir)
        .env("BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let run = run.expect("node runs");
    assert!(
        run.status.success(),
        "the storefront run failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(artifacts.join("order.png").exists());
}
