//! The server's (and the `commerce` CLI's) configuration: one typed [`Config`], read from an
//! optional TOML file with the environment on top, checked before anything starts.
//!
//! Every key is a TOML key of the file and, upper-cased, an environment variable:
//! `database_url` in the file, `DATABASE_URL` in the environment (which wins). Secrets (the
//! token and webhook secrets, and any URL carrying a password) are read from the environment
//! only: a file holding one is refused, so a config file can be committed or shared. A bad
//! value is refused with the key it came from, and where it came from:
//!
//! ```
//! use reference_server::Config;
//! let dir = std::env::temp_dir().join(format!("config-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("shop.toml");
//! std::fs::write(&file, "port = 9090\nrate_per_sec = 50\nsearch_locale = \"de\"\n")?;
//! let config = Config::load_from(Some(&file), |_| None)?;
//! assert_eq!((config.port, config.rate_per_sec), (9090, 50));
//!
//! std::fs::write(&file, "rate_per_sec = 0\n")?;
//! let err = Config::load_from(Some(&file), |_| None).unwrap_err();
//! assert_eq!(err.key, "rate_per_sec");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// How the server starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on (`bind`, default `127.0.0.1`).
    pub bind: String,
    /// The port to listen on (`port`, default 8080).
    pub port: u16,
    /// Where the search index and the token secret live.
    pub data_dir: PathBuf,
    /// PostgreSQL for every store that has a PostgreSQL adapter; memory when `None`.
    pub database_url: Option<String>,
    /// More PostgreSQL databases for orders and carts, sharded by user id with the first
    /// (`database_shards`, a list; the environment takes them comma-separated).
    pub database_shards: Vec<String>,
    /// The schema the PostgreSQL stores use.
    pub database_schema: String,
    /// The token secret (at least 32 bytes); read from (or written to) `data_dir` when `None`.
    pub auth_secret: Option<Vec<u8>>,
    /// Requests per second each client may make (its bucket holds twice that).
    pub rate_per_sec: u32,
    /// Seed the demo shop when the catalog is empty.
    pub seed: bool,
    /// Send the guest-cart cookie over HTTPS only.
    pub secure_cookies: bool,
    /// The carrier's webhook secret (at least 32 bytes); read from (or written to) `data_dir`
    /// when `None`.
    pub webhook_secret: Option<Vec<u8>>,
    /// Redis for carts, rate limits, the drops' waiting room and recommendation lists; memory
    /// when `None`.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key (deployments sharing a server never meet).
    pub redis_namespace: String,
    /// The lease a worker holds on a saga (seconds, default 300): after a crash, the restarted
    /// server takes over the sagas it was driving once their lease ends.
    pub saga_lease_secs: i64,
    /// The payment provider's webhook secret (at least 32 bytes); read from (or written to)
    /// `data_dir` when `None`.
    pub payment_webhook_secret: Option<Vec<u8>>,
    /// Kafka-protocol brokers (`host:port,...`) the shop's events go through; the in-process
    /// log when `None`. Needs `database_url`: the broker is fed by the PostgreSQL outbox relay.
    pub kafka_brokers: Option<String>,
    /// The prefix of the shop's topics (deployments sharing a broker never meet).
    pub kafka_topic_prefix: String,
    /// Readers start a few records early and skip to the offset they want, for brokers that
    /// answer a fetch from inside a batch with the next batch (tansu; on by default, harmless
    /// on Kafka).
    pub kafka_whole_batch_fetch: bool,
    /// The language of the shop's text, for search (English by default).
    pub search_locale: search::Locale,
    /// A folder holding all-MiniLM-L6-v2 (`scripts/install-minilm.sh`): semantic search and
    /// similar products by that language model (the server built with its `minilm` feature).
    /// `None`: by the hashing embedder (shared words and word pieces; no model, no meaning).
    pub minilm_dir: Option<PathBuf>,
    /// The mail server notifications go through (`smtp://[user:password@]host[:port]`,
    /// `?tls=required` for STARTTLS, or `smtps://…`); recorded in memory when `None`.
    pub smtp_url: Option<String>,
    /// The sender of notifications (`Name <address>`).
    pub smtp_from: String,
    /// The shop's address as customers reach it, for links in messages (`public_url`;
    /// `http://{bind}:{port}/` by default, `localhost` for an unspecified bind).
    pub public_url: String,
}

/// A configuration refused: which key, where it came from, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key as written in the file (lower case); its environment variable is the same in
    /// upper case.
    pub key: String,
    /// The file, the environment, or both.
    pub origin: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configuration key `{}` ({}; from {}): {}",
            self.key,
            self.key.to_uppercase(),
            self.origin,
            self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// Keys that hold secrets: from the environment only.
const SECRET_KEYS: [&str; 3] = [
    "auth_secret",
    "carrier_webhook_secret",
    "payment_webhook_secret",
];
/// Keys holding URLs, which may carry a password.
const URL_KEYS: [&str; 4] = ["database_url", "redis_url", "database_shards", "smtp_url"];
/// The shortest secret accepted.
const SECRET_BYTES_MIN: usize = 32;

/// The configuration as read, before it is checked. Every field a key; `None` where the
/// default applies.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    bind: Option<String>,
    port: Option<u32>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    #[serde(default, deserialize_with = "list")]
    database_shards: Option<Vec<String>>,
    database_schema: Option<String>,
    auth_secret: Option<String>,
    rate_per_sec: Option<i64>,
    #[serde(default, deserialize_with = "flag")]
    seed: Option<bool>,
    #[serde(default, deserialize_with = "flag")]
    secure_cookies: Option<bool>,
    carrier_webhook_secret: Option<String>,
    redis_url: Option<String>,
    redis_namespace: Option<String>,
    saga_lease_secs: Option<i64>,
    payment_webhook_secret: Option<String>,
    kafka_brokers: Option<String>,
    kafka_topic_prefix: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    kafka_whole_batch_fetch: Option<bool>,
    search_locale: Option<String>,
    minilm_dir: Option<PathBuf>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    public_url: Option<String>,
}

/// Every key, as the environment spells it lower-cased.
const KEYS: [&str; 23] = [
    "bind",
    "port",
    "data_dir",
    "database_url",
    "database_shards",
    "database_schema",
    "auth_secret",
    "rate_per_sec",
    "seed",
    "secure_cookies",
    "carrier_webhook_secret",
    "redis_url",
    "redis_namespace",
    "saga_lease_secs",
    "payment_webhook_secret",
    "kafka_brokers",
    "kafka_topic_prefix",
    "kafka_whole_batch_fetch",
    "search_locale",
    "minilm_dir",
    "smtp_url",
    "smtp_from",
    "public_url",
];

/// Keys whose values are numbers.
const NUMERIC_KEYS: [&str; 3] = ["port", "rate_per_sec", "saga_lease_secs"];

/// A switch: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    let v = Option::<Any>::deserialize(d)?;
    let parsed = match v {
        None => return Ok(None),
        Some(Any::Bool(b)) => Some(b),
        Some(Any::Int(0)) => Some(false),
        Some(Any::Int(1)) => Some(true),
        Some(Any::Int(_)) => None,
        Some(Any::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
    };
    parsed
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected true/false, 1/0, yes/no or on/off"))
}

/// A list: a TOML array, or text with commas (the environment's form).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        List(Vec<String>),
        Text(String),
    }
    Ok(Option::<Any>::deserialize(d)?.map(|v| match v {
        Any::List(l) => l,
        Any::Text(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }))
}

impl Config {
    /// Everything embedded (memory stores, no Redis), data in `data_dir`, the demo shop
    /// seeded, fresh secrets on first start.
    pub fn embedded(data_dir: PathBuf) -> Config {
        Config {
            bind: "127.0.0.1".into(),
            port: 8080,
            data_dir,
            database_url: None,
            database_shards: Vec::new(),
            database_schema: "reference".into(),
            auth_secret: None,
            rate_per_sec: 200,
            seed: true,
            secure_cookies: false,
            webhook_secret: None,
            redis_url: None,
            redis_namespace: "reference".into(),
            saga_lease_secs: 300,
            payment_webhook_secret: None,
            kafka_brokers: None,
            kafka_topic_prefix: "reference.".into(),
            kafka_whole_batch_fetch: true,
            search_locale: search::Locale::English,
            minilm_dir: None,
            smtp_url: None,
            smtp_from: "Reference Shop <shop@example.com>".into(),
            public_url: "http://127.0.0.1:8080/".into(),
        }
    }

    /// The configuration of this process: the TOML file `file` (if any; `COMMERCE_CONFIG`
    /// names one when `file` is `None`), then the environment (`PORT`, `DATABASE_URL`, … as
    /// listed on [`Config`]'s fields, upper-cased), over the [`Config::embedded`] defaults
    /// with data in `target/reference-server`. An empty variable counts as unset.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first key that is unknown, of the wrong type, out of range,
    /// or a secret written in the file.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let named = std::env::var_os("COMMERCE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Config::load_from(file.or(named.as_deref()), |k| std::env::var(k).ok())
    }

    /// [`Config::load`] with the environment given as a lookup (`env("PORT")`), for tests
    /// and embedders.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Raw::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError {
                    key: "config".into(),
                    origin: path.display().to_string(),
                    reason: "no such file".into(),
                });
            }
            let in_file: Raw = Figment::from(Toml::file(path))
                .extract()
                .map_err(|e| from_figment(&e, &path.display().to_string()))?;
            check_file(&in_file, path)?;
            figment = figment.merge(Toml::file(path));
        }
        // The environment, key by key: numbers for the numeric keys, text for the rest.
        let mut vars = figment::value::Dict::new();
        for key in KEYS {
            // Surrounding spaces are a typo; a blank variable is unset.
            if let Some(v) = env(&key.to_uppercase())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            {
                let value = match v.trim().parse::<i64>() {
                    Ok(n) if NUMERIC_KEYS.contains(&key) => figment::value::Value::from(n),
                    _ => figment::value::Value::from(v),
                };
                vars.insert(key.to_owned(), value);
            }
        }
        let env_keys: Vec<String> = vars.keys().cloned().collect();
        figment = figment.merge(Serialized::defaults(vars));
        let raw: Raw = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            let origin = if env_keys.contains(&key) {
                "the environment".to_owned()
            } else {
                file.map_or("defaults".into(), |p| p.display().to_string())
            };
            from_figment(&e, &origin)
        })?;
        let origin = |key: &str| {
            if env_keys.iter().any(|k| k == key) {
                "the environment".to_owned()
            } else {
                file.map_or("defaults".into(), |p| p.display().to_string())
            }
        };
        check(raw, &origin)
    }
}

fn from_figment(e: &figment::Error, origin: &str) -> ConfigError {
    let key = if e.path.is_empty() {
        match &e.kind {
            figment::error::Kind::UnknownField(k, _) => k.clone(),
            _ => "config".into(),
        }
    } else {
        e.path.join(".")
    };
    let reason = match &e.kind {
        figment::error::Kind::UnknownField(k, _) => format!("unknown key `{k}`"),
        other => other.to_string(),
    };
    ConfigError {
        key,
        origin: origin.to_owned(),
        reason,
    }
}

/// Refuses secrets in a file: the token and webhook secrets, and URLs with a password.
fn check_file(raw: &Raw, path: &Path) -> Result<(), ConfigError> {
    let refuse = |key: &str, reason: &str| {
        Err(ConfigError {
            key: key.to_owned(),
            origin: path.display().to_string(),
            reason: reason.to_owned(),
        })
    };
    let secrets = [
        (SECRET_KEYS[0], raw.auth_secret.is_some()),
        (SECRET_KEYS[1], raw.carrier_webhook_secret.is_some()),
        (SECRET_KEYS[2], raw.payment_webhook_secret.is_some()),
    ];
    for (key, present) in secrets {
        if present {
            return refuse(
                key,
                "a secret is read from the environment only, never from a file",
            );
        }
    }
    let urls = raw
        .database_url
        .iter()
        .map(|u| (URL_KEYS[0], u))
        .chain(raw.redis_url.iter().map(|u| (URL_KEYS[1], u)))
        .chain(
            raw.database_shards
                .iter()
                .flatten()
                .map(|u| (URL_KEYS[2], u)),
        )
        .chain(raw.smtp_url.iter().map(|u| (URL_KEYS[3], u)));
    for (key, url) in urls {
        if has_password(url) {
            return refuse(
                key,
                "this URL carries a password: give it in the environment, or use a password \
                 file or peer authentication",
            );
        }
    }
    Ok(())
}

/// `scheme://user:password@host…`, or a `password=` parameter.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let in_query = rest.split_once('?').is_some_and(|(_, query)| {
        query.split(['&', '#']).any(|p| {
            p.split_once('=')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case("password"))
        })
    });
    in_userinfo || in_query
}

fn check(raw: Raw, origin: &dyn Fn(&str) -> String) -> Result<Config, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError {
        key: key.to_owned(),
        origin: origin(key),
        reason,
    };
    let defaults = Config::embedded(PathBuf::from("target/reference-server"));
    let port = match raw.port {
        None => defaults.port,
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("port", format!("{p} is not a port (1 to 65535)")))?,
    };
    let bind = raw.bind.unwrap_or(defaults.bind);
    let hostname = !bind.is_empty()
        && bind.len() <= 253
        && bind
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if bind.parse::<std::net::IpAddr>().is_err() && !hostname {
        return Err(bad(
            "bind",
            format!("`{bind}` is neither an IP address nor a host name"),
        ));
    }
    let rate_per_sec = match raw.rate_per_sec {
        None => defaults.rate_per_sec,
        Some(r) => u32::try_from(r)
            .ok()
            .filter(|r| (1..=1_000_000).contains(r))
            .ok_or_else(|| bad("rate_per_sec", format!("{r} is outside 1..=1000000")))?,
    };
    let saga_lease_secs = match raw.saga_lease_secs {
        None => defaults.saga_lease_secs,
        // Short leases (a few seconds) are for tests and drills: recovery comes sooner.
        Some(s) if (1..=86_400).contains(&s) => s,
        Some(s) => {
            return Err(bad(
                "saga_lease_secs",
                format!("{s} is outside 1..=86400 seconds"),
            ));
        }
    };
    let search_locale = match raw.search_locale {
        None => defaults.search_locale,
        Some(code) => search::Locale::from_code(&code).ok_or_else(|| {
            bad(
                "search_locale",
                format!("`{code}` is not one of en, de, fr, es, it, nl"),
            )
        })?,
    };
    let secret = |key: &str, v: Option<String>| -> Result<Option<Vec<u8>>, ConfigError> {
        match v {
            Some(s) if s.len() < SECRET_BYTES_MIN => Err(bad(
                key,
                format!(
                    "{} bytes; a secret needs at least {SECRET_BYTES_MIN}",
                    s.len()
                ),
            )),
            other => Ok(other.map(String::into_bytes)),
        }
    };
    let name = |key: &str, v: Option<String>, default: String| -> Result<String, ConfigError> {
        let v = v.unwrap_or(default);
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(v)
        } else {
            Err(bad(
                key,
                format!("`{v}`: 1 to 63 letters, digits, `_`, `-` or `.`"),
            ))
        }
    };
    let database_url = raw.database_url;
    let database_shards = raw.database_shards.unwrap_or_default();
    if !database_shards.is_empty() && database_url.is_none() {
        return Err(bad(
            "database_shards",
            "shards need `database_url` (the first shard)".into(),
        ));
    }
    for url in database_url.iter().chain(&database_shards) {
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            let key = if Some(url) == database_url.as_ref() {
                "database_url"
            } else {
                "database_shards"
            };
            return Err(bad(key, "not a postgres:// URL".into()));
        }
    }
    if let Some(url) = &raw.redis_url
        && !url.starts_with("redis://")
        && !url.starts_with("rediss://")
        && !url.starts_with("redis+cluster://")
    {
        return Err(bad("redis_url", "not a redis:// URL".into()));
    }
    if raw.kafka_brokers.is_some() && database_url.is_none() {
        return Err(bad(
            "kafka_brokers",
            "the broker is fed by the PostgreSQL outbox: set `database_url` too".into(),
        ));
    }
    if let Some(url) = &raw.smtp_url
        && !url.starts_with("smtp://")
        && !url.starts_with("smtps://")
    {
        return Err(bad("smtp_url", "not an smtp:// or smtps:// URL".into()));
    }
    let smtp_from = raw.smtp_from.unwrap_or(defaults.smtp_from);
    if let Err(e) = adapters::smtp::SmtpConfig::new("smtp://localhost", &smtp_from) {
        return Err(bad(
            "smtp_from",
            format!(
                "`{smtp_from}` (`Name <address>` or `address`): {}",
                e.message
            ),
        ));
    }
    let public_url = match raw.public_url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => u,
        Some(u) => return Err(bad("public_url", format!("`{u}` is not an http(s) URL"))),
        // The address the server listens on, or this machine's name for "every address".
        None => {
            let host = match bind.parse::<std::net::IpAddr>() {
                Ok(ip) if ip.is_unspecified() => "localhost".to_owned(),
                Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
                _ => bind.clone(),
            };
            format!("http://{host}:{port}/")
        }
    };
    if let Some(dir) = &raw.minilm_dir
        && !dir.is_dir()
    {
        return Err(bad(
            "minilm_dir",
            format!("{} is not a folder", dir.display()),
        ));
    }
    Ok(Config {
        bind,
        port,
        data_dir: raw.data_dir.unwrap_or(defaults.data_dir),
        database_url,
        database_shards,
        database_schema: name(
            "database_schema",
            raw.database_schema,
            defaults.database_schema,
        )?,
        auth_secret: secret("auth_secret", raw.auth_secret)?,
        rate_per_sec,
        seed: raw.seed.unwrap_or(defaults.seed),
        secure_cookies: raw.secure_cookies.unwrap_or(defaults.secure_cookies),
        webhook_secret: secret("carrier_webhook_secret", raw.carrier_webhook_secret)?,
        redis_url: raw.redis_url,
        redis_namespace: name(
            "redis_namespace",
            raw.redis_namespace,
            defaults.redis_namespace,
        )?,
        saga_lease_secs,
        payment_webhook_secret: secret("payment_webhook_secret", raw.payment_webhook_secret)?,
        kafka_brokers: raw.kafka_brokers,
        kafka_topic_prefix: name(
            "kafka_topic_prefix",
            raw.kafka_topic_prefix,
            defaults.kafka_topic_prefix,
        )?,
        kafka_whole_batch_fetch: raw
            .kafka_whole_batch_fetch
            .unwrap_or(defaults.kafka_whole_batch_fetch),
        search_locale,
        minilm_dir: raw.minilm_dir,
        smtp_url: raw.smtp_url,
        smtp_from,
        public_url,
    })
}
