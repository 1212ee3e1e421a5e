//! A shop per test, and a client that keeps its cookie and token like a browser.

use std::time::Duration;

use crate::servers::{fresh_schema, server_env};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use commerce_core::UserId;
use reference_server::{App, Config, build, system_clock};
use serde_json::Value;
pub(crate) use serde_json::json;
use tower::ServiceExt;

pub(crate) struct Shop {
    pub(crate) app: App,
    config: Config,
}

impl Shop {
    pub(crate) async fn start(name: &str) -> Shop {
        Shop::start_with(name, |_| {}).await
    }

    pub(crate) async fn start_with(name: &str, tweak: impl FnOnce(&mut Config)) -> Shop {
        let dir =
            std::env::temp_dir().join(format!("reference-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config {
            auth_secret: Some(vec![42; 32]),
            rate_per_sec: 1_000_000,
            webhook_secret: Some(vec![7; 32]),
            ..Config::embedded(dir)
        };
        tweak(&mut config);
        let app = build(&config, system_clock())
            .await
            .expect("the shop starts");
        Shop { app, config }
    }

    /// Polls `/readyz` as a probe would (every 100 ms, for up to 30 s) and asserts it turns 200.
    pub(crate) async fn wait_ready(&self, client: &mut Client) {
        let mut ready = client.send(Method::GET, "/readyz", None, &[]).await;
        for _ in 0..300 {
            if ready.status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            ready = client.send(Method::GET, "/readyz", None, &[]).await;
        }
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    }

    /// Stops the shop's background work and starts it again on the same data, as a restarted
    /// process would.
    pub(crate) async fn restart(self) -> Shop {
        self.restart_with(|_| {}).await
    }

    /// [`Shop::restart`] with the configuration changed by `tweak` first.
    pub(crate) async fn restart_with(self, tweak: impl FnOnce(&mut Config)) -> Shop {
        let mut config = self.config.clone();
        tweak(&mut config);
        self.app.stop(Duration::from_secs(30)).await;
        let app = build(&config, system_clock())
            .await
            .expect("the shop starts again");
        Shop { app, config }
    }

    /// A shop on PostgreSQL whose events go through the broker (topics of its own); `None`
    /// (with the reason printed) without `DATABASE_URL` or `KAFKA_BROKERS`, except under
    /// `CI=true`.
    pub(crate) async fn start_on_kafka(name: &str) -> Option<Shop> {
        let brokers = server_env("KAFKA_BROKERS", name)?;
        Shop::start_on_postgres_with(name, |c| {
            c.kafka_brokers = Some(brokers);
            c.kafka_topic_prefix = format!("reference-{name}-{}.", std::process::id());
        })
        .await
    }

    /// A shop on PostgreSQL in a fresh schema of its own, without the demo catalog; `None`
    /// (with the reason printed) when there is no database, except under `CI=true`.
    pub(crate) async fn start_on_postgres(name: &str) -> Option<Shop> {
        Shop::start_on_postgres_with(name, |_| {}).await
    }

    async fn start_on_postgres_with(name: &str, tweak: impl FnOnce(&mut Config)) -> Option<Shop> {
        let url = server_env("DATABASE_URL", name)?;
        let schema = fresh_schema(&url, name).await;
        Some(
            Shop::start_with(name, |c| {
                c.database_url = Some(url);
                c.database_schema = schema;
                c.seed = false;
                tweak(c);
            })
            .await,
        )
    }

    /// A shop whose carts, rate limits, waiting room and recommendation lists are on Redis, in
    /// a namespace of its own; `None` (with the reason printed) without `REDIS_URL`, except
    /// under `CI=true`.
    pub(crate) async fn start_on_redis(name: &str, rate_per_sec: u32) -> Option<Shop> {
        let url = server_env("REDIS_URL", name)?;
        Some(
            Shop::start_with(name, |c| {
                c.redis_url = Some(url);
                c.redis_namespace = format!("reference-{name}-{}", std::process::id());
                c.rate_per_sec = rate_per_sec;
            })
            .await,
        )
    }

    pub(crate) fn client(&self) -> Client {
        Client {
            router: self.app.router.clone(),
            token: None,
            cookie: None,
        }
    }

    pub(crate) fn customer(&self, email: &str) -> String {
        self.app
            .auth
            .issue(&UserId::new(email).unwrap(), adapters::http::Role::Customer)
            .unwrap()
    }

    pub(crate) fn admin(&self) -> String {
        self.app.admin_token.clone()
    }

    pub(crate) fn signed_in(&self, email: &str) -> Client {
        let mut c = self.client();
        c.token = Some(self.customer(email));
        c
    }

    pub(crate) async fn catalog_size(&self) -> usize {
        self.app
            .stores
            .catalog
            .list(None, 10_000)
            .await
            .unwrap()
            .len()
    }

    pub(crate) async fn payments(&self) -> usize {
        self.app
            .stores
            .payments
            .list(None, 10_000)
            .await
            .unwrap()
            .len()
    }

    /// Polls a search until `done` holds (the index applies changes within a second; the
    /// deadline is generous for a loaded machine).
    pub(crate) async fn search_until(
        &self,
        client: &mut Client,
        path: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = client.send(Method::GET, path, None, &[]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            if done(&r.body) {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never got there: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[derive(Clone)]
pub(crate) struct Client {
    router: Router,
    pub(crate) token: Option<String>,
    pub(crate) cookie: Option<String>,
}

pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Client {
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, format!("cart={c}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            if let Some(v) = pair.strip_prefix("cart=") {
                let expired = attrs.contains("Max-Age=0") || attrs.contains("1970") || v.is_empty();
                self.cookie = (!expired).then(|| v.to_owned());
            }
        }
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends as a well-behaved client does under load: a 408, 429 or 503, or a 409 saying the
    /// same key is still in flight (its first try timed out), is sent again unchanged (same
    /// idempotency key) after a pause, for up to a minute.
    pub(crate) async fn send_patiently(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut r = self.send(method.clone(), path, body, headers).await;
        for _ in 0..300 {
            let in_flight =
                r.status == StatusCode::CONFLICT && r.body["kind"] == "idempotency_key_in_flight";
            let again = matches!(r.status.as_u16(), 408 | 429 | 503) || in_flight;
            if !again || r.body["type"] == "/problems/queue-required" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            r = self.send(method.clone(), path, body, headers).await;
        }
        r
    }

    /// Fills the cart with `lines` and a shipping address.
    pub(crate) async fn fill(&mut self, lines: &[(&str, u32)]) {
        for (sku, q) in lines {
            let r = self
                .send_patiently(
                    Method::POST,
                    "/cart/lines",
                    Some(&format!(r#"{{"sku": "{sku}", "quantity": {q}}}"#)),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let r = self
            .send_patiently(
                Method::PUT,
                "/cart/shipping-address",
                Some(r#"{"name": "Ada", "line1": "1 High Street", "city": "London", "postal_code": "N1 1AA", "country": "GB"}"#),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    /// Fills the cart and checks out with `key`.
    pub(crate) async fn buy(&mut self, lines: &[(&str, u32)], key: &str) -> Resp {
        self.fill(lines).await;
        self.send_patiently(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", key)],
        )
        .await
    }
}
