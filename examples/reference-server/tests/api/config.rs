//! The configuration: file and environment, every refusal naming its key, secrets from the
//! environment only, and the server refusing to start on a bad one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reference_server::{Config, ConfigError};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("config-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn file(name: &str, text: &str) -> PathBuf {
    let path = dir(name).join("shop.toml");
    std::fs::write(&path, text).expect("write");
    path
}

fn load(path: Option<&Path>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::load_from(path, |k| env.get(k).cloned())
}

#[test]
fn nothing_given_is_the_embedded_shop() {
    let c = load(None, &[]).expect("defaults");
    let e = Config::embedded(PathBuf::from("target/reference-server"));
    assert_eq!((c.bind.as_str(), c.port), ("127.0.0.1", 8080));
    assert_eq!(c.data_dir, e.data_dir);
    assert!(c.database_url.is_none() && c.redis_url.is_none() && c.kafka_brokers.is_none());
    assert_eq!((c.rate_per_sec, c.seed), (e.rate_per_sec, e.seed));
}

#[test]
fn the_environment_overrides_the_file() {
    let path = file(
        "override",
        "port = 9000\nrate_per_sec = 50\nseed = false\nredis_namespace = \"shop-a\"\n\
         database_url = \"postgres://postgres@127.0.0.1:5432/test\"\n\
         database_shards = [\"postgres://postgres@127.0.0.1:5432/shard1\"]\n",
    );
    let c = load(
        Some(&path),
        &[
            ("PORT", "9100"),
            ("SEED", "1"),
            ("KAFKA_WHOLE_BATCH_FETCH", "0"),
        ],
    )
    .expect("valid");
    assert_eq!(c.port, 9100, "the environment wins");
    assert_eq!(
        c.rate_per_sec, 50,
        "the file gives what the environment does not"
    );
    assert!(c.seed);
    assert!(!c.kafka_whole_batch_fetch);
    assert_eq!(c.redis_namespace, "shop-a");
    assert_eq!(c.database_shards.len(), 1);
    // A list from the environment: comma-separated.
    let c = load(
        Some(&path),
        &[(
            "DATABASE_SHARDS",
            "postgres://postgres@h/s1, postgres://postgres@h/s2",
        )],
    )
    .expect("valid");
    assert_eq!(
        c.database_shards,
        ["postgres://postgres@h/s1", "postgres://postgres@h/s2"]
    );
    // Spaces around a value are dropped; a blank variable is unset; a host name binds.
    let c = load(
        None,
        &[("PORT", " 9200 "), ("SEED", "  "), ("BIND", "localhost")],
    )
    .expect("valid");
    assert_eq!((c.port, c.seed, c.bind.as_str()), (9200, true, "localhost"));
    assert_eq!(c.public_url, "http://localhost:9200/");
    let c = load(None, &[("BIND", "0.0.0.0")]).expect("valid");
    assert_eq!(
        c.public_url, "http://localhost:8080/",
        "links never say 0.0.0.0"
    );
}

#[test]
fn every_bad_value_is_refused_with_its_key_and_origin() {
    /// File text, environment, the key named, where it came from.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("port = 70000\n", vec![], "port", "shop.toml"),
        ("", vec![("PORT", "http")], "port", "environment"),
        ("", vec![("PORT", "0")], "port", "environment"),
        ("rate_per_sec = 0\n", vec![], "rate_per_sec", "shop.toml"),
        (
            "",
            vec![("RATE_PER_SEC", "-5")],
            "rate_per_sec",
            "environment",
        ),
        (
            "saga_lease_secs = 0\n",
            vec![],
            "saga_lease_secs",
            "shop.toml",
        ),
        (
            "search_locale = \"klingon\"\n",
            vec![],
            "search_locale",
            "shop.toml",
        ),
        ("", vec![("SEED", "maybe")], "seed", "environment"),
        ("bind = \"localhost:80\"\n", vec![], "bind", "shop.toml"),
        (
            "databse_url = \"postgres://h/db\"\n",
            vec![],
            "databse_url",
            "shop.toml",
        ),
        (
            "database_url = \"mysql://h/db\"\n",
            vec![],
            "database_url",
            "shop.toml",
        ),
        (
            "redis_url = \"http://h\"\n",
            vec![],
            "redis_url",
            "shop.toml",
        ),
        (
            "kafka_brokers = \"127.0.0.1:9092\"\n",
            vec![],
            "kafka_brokers",
            "shop.toml",
        ),
        (
            "database_shards = [\"postgres://h/a\"]\n",
            vec![],
            "database_shards",
            "shop.toml",
        ),
        (
            "redis_namespace = \"a b\"\n",
            vec![],
            "redis_namespace",
            "shop.toml",
        ),
        (
            "",
            vec![("AUTH_SECRET", "short")],
            "auth_secret",
            "environment",
        ),
        (
            "minilm_dir = \"/no/such/folder\"\n",
            vec![],
            "minilm_dir",
            "shop.toml",
        ),
        ("port = \n", vec![], "config", "shop.toml"),
        (
            "smtp_url = \"http://mail\"\n",
            vec![],
            "smtp_url",
            "shop.toml",
        ),
        (
            "smtp_url = \"smtp://shop:pw@mail:587\"\n",
            vec![],
            "smtp_url",
            "shop.toml",
        ),
        (
            "",
            vec![("SMTP_FROM", "the shop")],
            "smtp_from",
            "environment",
        ),
        (
            "",
            vec![("SMTP_FROM", "Shop <shop@>")],
            "smtp_from",
            "environment",
        ),
        (
            "public_url = \"shop.example\"\n",
            vec![],
            "public_url",
            "shop.toml",
        ),
        (
            "redis_url = \"redis://cache/?password=pw\"\n",
            vec![],
            "redis_url",
            "shop.toml",
        ),
        ("bind = \"my host\"\n", vec![], "bind", "shop.toml"),
    ];
    for (i, (text, env, key, origin)) in cases.into_iter().enumerate() {
        let path = file(&format!("bad-{i}"), text);
        let err = load(Some(&path), &env).expect_err(&format!("case {i}: {text:?} {env:?}"));
        assert_eq!(err.key, key, "case {i}: {err}");
        assert!(err.origin.contains(origin), "case {i}: {err}");
        assert!(err.to_string().contains(&key.to_uppercase()), "{err}");
    }
}

#[test]
fn secrets_come_from_the_environment_only() {
    let secret = "s".repeat(40);
    for key in [
        "auth_secret",
        "carrier_webhook_secret",
        "payment_webhook_secret",
    ] {
        let path = file(key, &format!("{key} = \"{secret}\"\n"));
        let err = load(Some(&path), &[]).expect_err("a secret in a file");
        assert_eq!(err.key, key);
        assert!(err.reason.contains("environment"), "{err}");
    }
    let path = file("pw", "database_url = \"postgres://shop:hunter2@db/shop\"\n");
    let err = load(Some(&path), &[]).expect_err("a password in a file");
    assert_eq!(err.key, "database_url");
    let path = file("redis-pw", "redis_url = \"redis://:hunter2@cache:6379\"\n");
    assert_eq!(load(Some(&path), &[]).unwrap_err().key, "redis_url");
    // The same from the environment is fine.
    let c = load(
        None,
        &[
            ("AUTH_SECRET", secret.as_str()),
            ("DATABASE_URL", "postgres://shop:hunter2@db/shop"),
        ],
    )
    .expect("secrets from the environment");
    assert_eq!(c.auth_secret.as_deref(), Some(secret.as_bytes()));
    // A user without a password in a file is not a secret.
    let path = file(
        "user",
        "database_url = \"postgres://postgres@127.0.0.1/test\"\n",
    );
    assert!(load(Some(&path), &[]).is_ok());
}

#[test]
fn a_missing_file_is_refused() {
    let err = load(Some(Path::new("/no/such/shop.toml")), &[]).unwrap_err();
    assert_eq!(err.key, "config");
}

/// The server binary refuses a bad configuration before it starts: exit code 78 (EX_CONFIG)
/// and the key on standard error.
#[test]
fn the_server_does_not_start_on_a_bad_configuration() {
    let path = file("server", "rate_per_sec = 0\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args(["--config", path.to_str().expect("utf-8")])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("KAFKA_BROKERS")
        .env_remove("MINILM_DIR")
        .env("DATA_DIR", dir("server-data"))
        .output()
        .expect("run the server");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rate_per_sec") && stderr.contains("RATE_PER_SEC"),
        "{stderr}"
    );
}
