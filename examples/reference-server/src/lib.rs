//! The reference server: every engine of the SDK behind one HTTP API, and a storefront.
//!
//! A thin composition. [`build`] opens the stores (in memory, or PostgreSQL when
//! `DATABASE_URL` is set), seeds the demo shop on first start, starts the background work
//! (search indexing, the hold sweeper, recommendation facts, checkout recovery) and nests the
//! `http` adapter's routers under the gateway's layers: bearer tokens, per-client rate limits,
//! an A/B assignment header, request ids and spans, body-size limits and timeouts. `main`
//! serves it with graceful shutdown.

#![allow(
    clippy::print_stdout,
    reason = "the server prints where it listens and the admin token"
)]

pub mod bus;
pub mod config;
pub mod gateway;
pub mod observe;
pub mod seed;
pub mod storefront;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::http::{self, Auth, Idempotency, Role};
use adapters::postgres::{Postgres, PostgresConfig};
use adapters::{SystemClock, TokioSleeper};
use axum::Router;
use axum::routing::get;
use cart_engine::{
    CartStore, FlatRateTax, InMemoryCartStore, InMemoryUsageStore, PriceMode, PricingConfig,
    PromotionUsageStore, load_promotions,
};
use chrono::TimeDelta;
use commerce_core::memory::{
    InMemoryCarrier, InMemoryCatalog, InMemoryEventLog, InMemoryIdempotencyStore, InMemoryNotifier,
    InMemoryOrderStore, InMemoryPaymentGateway, InMemoryRateLimiter,
};
use commerce_core::{
    Address, Carrier, CatalogStore, Clock, CountryCode, Currency, EventLog, EventPublisher,
    IdempotencyKey, IdempotencyStore, LocationId, OrderStore, PaymentGateway, RateLimiter, UserId,
};
use inventory::{InMemoryStockStore, StockConfig, StockKey, StockStore};
use recs::blend::{BlendConfig, ProductFacts};
use recs::copurchase::{CoPurchase, CoPurchaseConfig, write_lists};
use rust_decimal::Decimal;
use saga::{
    Checkout, CheckoutPorts, InMemoryJournal, Lifecycle, LifecyclePorts, RetryPolicy, SagaJournal,
};
use search::{SearchIndex, Storage, TenantConfig, TenantId};
use tokio::sync::{RwLock, watch};
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

pub use config::{Config, ConfigError};

/// Any error while starting.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Where the search index of stores on `backend` (`memory`, `postgres`) fed by `feed` (`log`,
/// `kafka`) lives.
pub fn index_dir(config: &Config, backend: &str, feed: &str) -> std::path::PathBuf {
    config.data_dir.join(format!("index-{backend}-{feed}"))
}

/// The shop's search settings: its currency, locale and embedder.
///
/// # Errors
/// When the embedder cannot be loaded.
pub fn tenant_config(config: &Config) -> Result<TenantConfig, StartError> {
    let (embedder, min_similarity) = embedder(config)?;
    let mut tenant = TenantConfig::new(&[CURRENCY]);
    tenant.locale = config.search_locale;
    tenant.embedder = Some(embedder);
    tenant.min_similarity = min_similarity;
    Ok(tenant)
}

/// The search index's embedder and the least similarity a product found by meaning needs:
/// all-MiniLM-L6-v2 when the config names its folder, the hashing embedder otherwise.
fn embedder(config: &Config) -> Result<(Arc<dyn search::Embedder>, f32), StartError> {
    match &config.minilm_dir {
        #[cfg(feature = "minilm")]
        Some(dir) => {
            let model = search::MiniLm::load(dir)?;
            tracing::info!(dir = %dir.display(), "semantic search by all-MiniLM-L6-v2");
            // Unrelated texts score 0.0–0.2 on this model, close ones above 0.4.
            Ok((Arc::new(model), 0.3))
        }
        #[cfg(not(feature = "minilm"))]
        Some(_) => Err(
            "MINILM_DIR is set but this server was built without the `minilm` feature \
             (cargo run -p reference-server --features minilm)"
                .into(),
        ),
        None => Ok((Arc::new(search::HashingEmbedder::new(256)?), 0.1)),
    }
}

/// The stores, in memory or on PostgreSQL.
#[derive(Debug, Clone)]
pub struct Stores {
    /// `memory` or `postgres`.
    pub backend: &'static str,
    /// The log every store's events end up in.
    pub log: Arc<dyn EventLog>,
    /// Where events of stores without a transactional outbox of their own are published.
    pub publisher: Arc<dyn EventPublisher>,
    /// Catalog.
    pub catalog: Arc<dyn CatalogStore>,
    /// Stock and holds.
    pub stock: Arc<dyn StockStore>,
    /// Carts.
    pub carts: Arc<dyn CartStore>,
    /// Promotion usage.
    pub usage: Arc<dyn PromotionUsageStore>,
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
    /// Payments (the sandbox provider).
    pub payments: Arc<dyn PaymentGateway>,
    /// The saga journal.
    pub journal: Arc<dyn SagaJournal>,
    /// Idempotency records of the HTTP layer.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The PostgreSQL handle, when the stores are there.
    pub postgres: Option<Postgres>,
}

impl Stores {
    /// PostgreSQL when the config names a database, memory otherwise.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn open(config: &Config) -> Result<Stores, StartError> {
        let Some(url) = &config.database_url else {
            let outbox = Arc::new(InMemoryEventLog::new());
            return Ok(Stores {
                backend: "memory",
                log: outbox.clone(),
                publisher: outbox.clone(),
                catalog: Arc::new(InMemoryCatalog::with_outbox(outbox.clone())),
                stock: Arc::new(InMemoryStockStore::with_outbox(outbox.clone())),
                carts: Arc::new(InMemoryCartStore::with_outbox(outbox.clone())),
                usage: Arc::new(InMemoryUsageStore::new()),
                orders: Arc::new(InMemoryOrderStore::with_outbox(outbox)),
                payments: Arc::new(InMemoryPaymentGateway::new()),
                journal: Arc::new(InMemoryJournal::new()),
                idempotency: Arc::new(InMemoryIdempotencyStore::new()),
                postgres: None,
            });
        };
        let urls: Vec<&str> = std::iter::once(url.as_str())
            .chain(config.database_shards.iter().map(String::as_str))
            .collect();
        let pg = Postgres::connect_shards(
            &urls,
            PostgresConfig {
                schema: Some(config.database_schema.clone()),
                application_name: "reference-server".into(),
                ..PostgresConfig::default()
            },
        )
        .await?;
        pg.migrate().await?;
        let log = Arc::new(pg.event_log());
        Ok(Stores {
            backend: "postgres",
            log: log.clone(),
            publisher: log,
            catalog: Arc::new(pg.catalog()),
            stock: Arc::new(pg.stock()),
            carts: Arc::new(pg.carts()),
            usage: Arc::new(pg.promotion_usage()),
            orders: Arc::new(pg.orders()),
            payments: Arc::new(pg.payment_sandbox()),
            journal: Arc::new(pg.saga_journal()),
            idempotency: Arc::new(pg.idempotency()),
            postgres: Some(pg),
        })
    }
}

/// What lives on Redis when `REDIS_URL` is set, in memory otherwise.
#[derive(Debug, Clone)]
pub struct Shared {
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// Per-client token buckets.
    pub limiter: Arc<dyn RateLimiter>,
    /// The drops' waiting room.
    pub admission: Arc<dyn saga::AdmissionQueue>,
    /// Recommendation lists.
    pub lists: Arc<dyn recs::TopKStore>,
    /// Recently viewed products per session.
    pub views: Arc<dyn recs::RecentlyViewedStore>,
    /// Carts on Redis (replacing the stores' carts), with their outbox relay.
    pub carts: Option<Arc<adapters::redis::RedisCartStore>>,
}

impl Shared {
    /// Redis when the config names one.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn open(config: &Config, log: Arc<dyn EventPublisher>) -> Result<Shared, StartError> {
        let Some(url) = &config.redis_url else {
            return Ok(Shared {
                backend: "memory",
                limiter: Arc::new(InMemoryRateLimiter::new()),
                admission: Arc::new(saga::InMemoryAdmissionQueue::new()),
                lists: Arc::new(recs::InMemoryTopKStore::new()),
                views: Arc::new(recs::InMemoryRecentlyViewed::new(20)),
                carts: None,
            });
        };
        let redis = adapters::redis::Redis::connect(url)
            .await?
            .with_namespace(&config.redis_namespace);
        Ok(Shared {
            backend: "redis",
            limiter: Arc::new(redis.rate_limiter()),
            admission: Arc::new(redis.admission_queue()),
            lists: Arc::new(redis.topk_store()),
            views: Arc::new(redis.recently_viewed(20)),
            carts: Some(Arc::new(redis.cart_store(log))),
        })
    }
}

/// Checkout sagas the server runs at once (the rest wait for a slot).
pub const CHECKOUTS_IN_FLIGHT: usize = 32;

/// The shop's fixed settings.
pub const CURRENCY: Currency = Currency::GBP;
/// The carrier labels are bought from (the in-memory one) and whose webhook the server takes
/// at `/webhooks/carrier/royal-parcel`.
pub const CARRIER: &str = "royal-parcel";

/// The warehouse orders ship from.
pub fn warehouse() -> Result<(LocationId, Address), StartError> {
    Ok((
        LocationId::new("wh-london")?,
        Address {
            name: "Reference shop warehouse".into(),
            line1: "1 Dock Road".into(),
            line2: None,
            city: "London".into(),
            region: None,
            postal_code: "E16 1AA".into(),
            country: CountryCode::new("GB")?,
        },
    ))
}

/// The demo promotions: 10 % off with `WELCOME10` once per customer, free shipping from 50.00.
pub const DEMO_PROMOTIONS: &str = r#"[
  {"id": "welcome10", "name": "10 % off with WELCOME10", "code": "WELCOME10", "limits": {"per_customer": 1},
   "action": {"percent_off": {"percent": "10"}}},
  {"id": "ship-free-50", "name": "Free shipping from 50.00", "condition": {"min_subtotal": {"amount": {"amount": "50.00", "currency": "GBP"}}},
   "action": "free_shipping"}
]"#;

/// A running server's parts.
pub struct App {
    /// Every route.
    pub router: Router,
    /// The OpenAPI document.
    pub openapi: utoipa::openapi::OpenApi,
    /// A token with the admin role, for the operator.
    pub admin_token: String,
    /// The token issuer, for tests and tools.
    pub auth: Arc<Auth>,
    /// The carrier webhook's key, for tests and tools that play the carrier.
    pub webhook_key: http::WebhookKey,
    /// The payment webhook's key, for tests and tools that play the payment provider.
    pub payment_webhook_key: http::WebhookKey,
    /// The stores.
    pub stores: Stores,
    /// What lives on Redis (or in memory).
    pub shared: Shared,
    /// The search index.
    pub index: Arc<SearchIndex>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("backend", &self.stores.backend)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Stops the background work and waits for it (at most `deadline`).
    pub async fn stop(self, deadline: Duration) {
        let _ = self.stop.send(true);
        let all = futures_join(self.tasks);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("background work did not stop in time");
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// A secret: the configured one, else the one kept in `data_dir/<file>`, else a new random one
/// written there.
fn load_secret(
    config: &Config,
    configured: Option<&Vec<u8>>,
    file: &str,
) -> Result<Vec<u8>, StartError> {
    if let Some(s) = configured {
        return Ok(s.clone());
    }
    let path = config.data_dir.join(file);
    if let Ok(bytes) = std::fs::read(&path)
        && bytes.len() >= http::SECRET_BYTES_MIN
    {
        return Ok(bytes);
    }
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    std::fs::create_dir_all(&config.data_dir)?;
    std::fs::write(&path, &bytes)?;
    Ok(bytes)
}

/// Seeds the demo shop when the catalog is empty: products, their stock, promotions.
async fn seed_shop(
    stores: &Stores,
    clock: &dyn Clock,
    location: &LocationId,
) -> Result<usize, StartError> {
    if !stores.catalog.list(None, 1).await?.is_empty() {
        return Ok(0);
    }
    let products = seed::products()?;
    let now = clock.now();
    for p in &products {
        let events = p.product.change_events(None, now)?;
        let _ = stores.catalog.put(p.product.clone(), &events).await?;
        let key = StockKey::new(p.product.sku.clone(), location.clone());
        stores.stock.configure(&key, StockConfig::default()).await?;
        let _ = stores
            .stock
            .receive(
                &IdempotencyKey::derive("seed", p.product.sku.as_str())?,
                &key,
                p.units,
                now,
            )
            .await?;
    }
    Ok(products.len())
}

/// Builds the server: stores, seed, engines, background work, routes.
///
/// # Errors
/// When a store cannot be opened, the demo data does not parse, or the index cannot be
/// created.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<App, StartError> {
    let _ = observe::prometheus();
    let mut stores = Stores::open(config).await?;
    let shared = Shared::open(config, stores.publisher.clone()).await?;
    if let Some(carts) = &shared.carts {
        stores.carts = carts.clone();
    }
    let (location, ship_from) = warehouse()?;
    if config.seed {
        let seeded = seed_shop(&stores, clock.as_ref(), &location).await?;
        if seeded > 0 {
            tracing::info!(products = seeded, "seeded the demo shop");
        }
    }

    // Search: a tantivy index in the data folder, fed by the log or the broker. With stores in
    // memory the log starts over on every start, so the index does too.
    let feed = match (&config.kafka_brokers, &stores.postgres) {
        (None, _) => bus::Feed::Log(stores.log.clone()),
        (Some(brokers), Some(pg)) => bus::Feed::kafka(config, brokers, pg.clone()).await?,
        (Some(_), None) => {
            return Err(
                "KAFKA_BROKERS needs DATABASE_URL: the broker is fed by the PostgreSQL outbox relay"
                    .into(),
            );
        }
    };
    let index_dir = index_dir(config, stores.backend, feed.name());
    if stores.backend == "memory" && index_dir.exists() {
        std::fs::remove_dir_all(&index_dir)?;
    }
    let tenant = tenant_config(config)?;
    let open = || {
        SearchIndex::create(
            TenantId::new("shop")?,
            tenant.clone(),
            Storage::Dir(index_dir.clone()),
        )
    };
    let index = match open() {
        // The index is derived data: one built by another version of the text analysis, or
        // in another locale, is rebuilt, from the log or (on the broker) by reconciliation
        // with the catalog.
        Err(
            e @ (search::Error::AnalysisChanged { .. }
            | search::Error::Invalid {
                field: "config.locale" | "config.embedder",
                ..
            }),
        ) => {
            tracing::warn!(error = %e, "the search index was analyzed otherwise; rebuilding it");
            std::fs::remove_dir_all(&index_dir)?;
            open()?
        }
        other => other?,
    };
    let index = Arc::new(index);

    // Reviews keep their own outbox; a relay copies its events to the shop's log.
    let reviews_outbox = Arc::new(InMemoryEventLog::new());
    let reviews = Arc::new(reviews::Reviews::new(
        Arc::new(reviews::InMemoryReviewStore::with_outbox(
            reviews_outbox.clone(),
        )),
        stores.catalog.clone(),
    ));

    // Recommendations: "bought together" from the demo baskets.
    let lists = shared.lists.clone();
    let baskets = seed::baskets(clock.now())?;
    let model = CoPurchase::build(&baskets, CoPurchaseConfig::default())?;
    let _ = write_lists(lists.as_ref(), &model.all_lists(1)?).await?;
    let views = shared.views.clone();
    let facts = Arc::new(RwLock::new(
        product_facts(
            stores.catalog.as_ref(),
            stores.stock.as_ref(),
            &location,
            clock.as_ref(),
        )
        .await,
    ));

    let secret = load_secret(config, config.auth_secret.as_ref(), "token-secret")?;
    let webhook_key = http::WebhookKey::new(&load_secret(
        config,
        config.webhook_secret.as_ref(),
        "carrier-webhook-secret",
    )?)?;
    let payment_webhook_key = http::WebhookKey::new(&load_secret(
        config,
        config.payment_webhook_secret.as_ref(),
        "payment-webhook-secret",
    )?)?;
    let auth = Arc::new(Auth::new(&secret, "commerce-sdk-reference", clock.clone())?);
    let admin_token = auth.issue(&UserId::new("admin")?, Role::Admin)?;

    let notifier: Arc<dyn commerce_core::Notifier> = match &config.smtp_url {
        // E-mail for real: each notification once per key, across instances on PostgreSQL.
        Some(url) => {
            let mut smtp = adapters::smtp::SmtpConfig::new(url, &config.smtp_from)?;
            smtp.templates.shop_url.clone_from(&config.public_url);
            Arc::new(adapters::smtp::SmtpNotifier::new(
                smtp,
                Arc::new(adapters::smtp::EmailUserIds),
                stores.idempotency.clone(),
                clock.clone(),
            )?)
        }
        None => Arc::new(InMemoryNotifier::new()),
    };
    let policy = RetryPolicy {
        lease: TimeDelta::seconds(config.saga_lease_secs.clamp(1, 86_400)),
        ..RetryPolicy::default()
    };
    let carrier: Arc<dyn Carrier> =
        Arc::new(InMemoryCarrier::with_standard_services(CARRIER, CURRENCY));
    let lifecycle = Arc::new(
        Lifecycle::builder(
            LifecyclePorts {
                orders: stores.orders.clone(),
                stock: stores.stock.clone(),
                payments: stores.payments.clone(),
                carrier: carrier.clone(),
                outbox: stores.publisher.clone(),
                notifier: notifier.clone(),
            },
            clock.clone(),
            Arc::new(TokioSleeper),
        )
        .journal(stores.journal.clone())
        .worker("reference-server")
        .policy(policy)
        .build(),
    );
    let checkout = Arc::new(
        Checkout::builder(
            CheckoutPorts {
                usage: stores.usage.clone(),
                stock: stores.stock.clone(),
                orders: stores.orders.clone(),
                payments: stores.payments.clone(),
                notifier,
            },
            clock.clone(),
            Arc::new(TokioSleeper),
        )
        .journal(stores.journal.clone())
        .worker("reference-server")
        .seed(7)
        .policy(policy)
        .build(),
    );
    let idempotency = Idempotency::new(
        stores.idempotency.clone(),
        clock.clone(),
        TimeDelta::seconds(60),
    );
    let promotions = Arc::new(RwLock::new(load_promotions(DEMO_PROMOTIONS)?));
    let drops =
        http::drops::Drops::new(Arc::new(saga::InMemoryAdmissionQueue::new()), clock.clone());
    let gb = CountryCode::new("GB")?;
    let tax = FlatRateTax::new(Decimal::new(20, 2))?.with_rate(gb, Decimal::new(20, 2))?;

    let api: OpenApiRouter = OpenApiRouter::new()
        .merge(http::catalog::router(http::catalog::CatalogApi {
            catalog: stores.catalog.clone(),
            stock: stores.stock.clone(),
            location: location.clone(),
            currency: CURRENCY,
            clock: clock.clone(),
        }))
        .merge(http::search::router(http::search::SearchApi {
            index: index.clone(),
            currency: CURRENCY,
            price_buckets: ["2", "5", "10", "20"]
                .iter()
                .map(|a| format!("{a} GBP").parse())
                .collect::<Result<_, _>>()?,
        }))
        .merge(http::cart::router(http::cart::CartApi {
            carts: stores.carts.clone(),
            catalog: stores.catalog.clone(),
            promotions: promotions.clone(),
            pricing: PricingConfig {
                price_mode: PriceMode::TaxInclusive,
                ..PricingConfig::default()
            },
            tax: Arc::new(tax),
            carriers: vec![carrier],
            ship_from: ship_from.clone(),
            location: location.clone(),
            currency: CURRENCY,
            locale: None,
            checkout: checkout.clone(),
            idempotency: idempotency.clone(),
            clock: clock.clone(),
            cookie: http::cart::CartCookie {
                name: "cart".into(),
                secure: config.secure_cookies,
            },
            drops: Some(drops.clone()),
            checkout_slots: Arc::new(tokio::sync::Semaphore::new(CHECKOUTS_IN_FLIGHT)),
        }))
        .merge(http::drops::router(drops.clone()))
        .merge(http::promotions::router(http::promotions::PromotionsApi {
            promotions: promotions.clone(),
        }))
        .merge(http::shipping::router(http::shipping::ShippingApi {
            lifecycle: lifecycle.clone(),
            orders: stores.orders.clone(),
            ship_from,
            service: "standard".into(),
            webhook_key: webhook_key.clone(),
            idempotency: idempotency.clone(),
            clock: clock.clone(),
        }))
        .merge(http::payments::router(http::payments::PaymentsApi {
            payments: stores.payments.clone(),
            orders: stores.orders.clone(),
            journal: stores.journal.clone(),
            webhook_key: payment_webhook_key.clone(),
            idempotency: idempotency.clone(),
            clock: clock.clone(),
        }))
        .merge(http::orders::router(http::orders::OrdersApi {
            orders: stores.orders.clone(),
        }))
        .merge(http::inventory::router(http::inventory::InventoryApi {
            stock: stores.stock.clone(),
            location: location.clone(),
            idempotency: idempotency.clone(),
            clock: clock.clone(),
        }))
        .merge(http::recs::router(http::recs::RecsApi {
            lists,
            views,
            facts: facts.clone(),
            catalog: stores.catalog.clone(),
            currency: CURRENCY,
            config: BlendConfig::default(),
            clock: clock.clone(),
        }))
        .merge(http::reviews::router(http::reviews::ReviewsApi {
            reviews,
            catalog: stores.catalog.clone(),
            clock: clock.clone(),
        }))
        .merge(gateway::auth_router(auth.clone()));
    let (api, doc) = api.split_for_parts();
    let openapi = gateway::document(http::openapi(doc));

    let (stop, stopped) = watch::channel(false);
    let stopped_rx = stopped.clone();
    let relayed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reviews_outbox_for_gauge = reviews_outbox.clone();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = feed.spawn(
        index.clone(),
        stores.catalog.clone(),
        ready.clone(),
        stopped.clone(),
    );
    tasks.extend([
        spawn_relay(
            reviews_outbox,
            stores.publisher.clone(),
            relayed.clone(),
            stopped.clone(),
        ),
        spawn_facts(
            facts,
            stores.catalog.clone(),
            stores.stock.clone(),
            location,
            clock.clone(),
            stopped.clone(),
        ),
        spawn_recovery(checkout, lifecycle, stopped.clone()),
        spawn_admissions(drops, stopped.clone()),
        observe::spawn_sweeper(stores.stock.clone(), clock.clone(), stopped.clone()),
        observe::spawn_gauges(
            index.clone(),
            feed.clone(),
            reviews_outbox_for_gauge,
            relayed.clone(),
            stopped,
        ),
    ]);

    if let Some(carts) = shared.carts.clone() {
        tasks.push(spawn_cart_relay(carts, stopped_rx.clone()));
    }
    let router = gateway::wrap(
        api,
        &openapi,
        auth.clone(),
        shared.limiter.clone(),
        config.rate_per_sec,
        clock,
    )
    .merge(storefront::router())
    .route("/metrics", get(observe::render))
    .route("/healthz", get(|| async { "ok" }))
    .route(
        "/readyz",
        get(move || {
            let ready = ready.clone();
            async move {
                // Ready once search has caught up with what was committed before the start.
                if ready.load(std::sync::atomic::Ordering::Acquire) {
                    (axum::http::StatusCode::OK, "ready")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "indexing")
                }
            }
        }),
    );
    Ok(App {
        router,
        openapi,
        admin_token,
        auth,
        webhook_key,
        payment_webhook_key,
        stores,
        shared,
        index,
        stop,
        tasks,
    })
}

/// Waits until `stop` turns true.
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

fn spawn_relay(
    from: Arc<InMemoryEventLog>,
    to: Arc<dyn EventPublisher>,
    relayed: Arc<std::sync::atomic::AtomicU64>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = 0u64;
        while !*stop.borrow() {
            match from.read(next, 500).await {
                Ok(batch) if !batch.is_empty() => {
                    let events: Vec<_> = batch.iter().map(|e| e.envelope.clone()).collect();
                    match to.publish(&events).await {
                        Ok(()) => {
                            next = batch.last().map_or(next, |e| e.offset + 1);
                            relayed.store(next, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "relaying review events"),
                    }
                }
                _ => {
                    let wait = from.wait(next);
                    let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
                }
            }
        }
    })
}

/// What the recommendation blend knows of every product: brand, top category, in stock,
/// retired.
async fn product_facts(
    catalog: &dyn CatalogStore,
    stock: &dyn StockStore,
    location: &LocationId,
    clock: &dyn Clock,
) -> HashMap<commerce_core::Sku, ProductFacts> {
    let mut fresh = HashMap::new();
    let mut after = None;
    loop {
        let page = match catalog.list(after.as_ref(), 500).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reading the catalog for recommendation facts");
                break;
            }
        };
        for p in &page {
            let key = StockKey::new(p.sku.clone(), location.clone());
            let in_stock = stock
                .available(&key, clock.now())
                .await
                .is_ok_and(|a| a > 0);
            let _ = fresh.insert(
                p.sku.clone(),
                ProductFacts {
                    sku: p.sku.clone(),
                    brand: p.brand.clone(),
                    category: p.category.segments().first().cloned(),
                    in_stock,
                    retired: p.status != commerce_core::ProductStatus::Active,
                    margin_bps: None,
                    stock_pressure_bps: 0,
                },
            );
        }
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|p| p.id.clone());
    }
    fresh
}

fn spawn_facts(
    facts: Arc<RwLock<HashMap<commerce_core::Sku, ProductFacts>>>,
    catalog: Arc<dyn CatalogStore>,
    stock: Arc<dyn StockStore>,
    location: LocationId,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(10), stopped(stop.clone())).await;
            if *stop.borrow() {
                return;
            }
            let fresh =
                product_facts(catalog.as_ref(), stock.as_ref(), &location, clock.as_ref()).await;
            *facts.write().await = fresh;
        }
    })
}

fn spawn_recovery(
    checkout: Arc<Checkout>,
    lifecycle: Arc<Lifecycle>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if let Err(e) = lifecycle.recover(100).await {
                tracing::warn!(error = %e, "order lifecycle recovery");
            }
            match checkout.recover(100).await {
                Ok(done) if !done.is_empty() => {
                    tracing::info!(sagas = done.len(), "recovered checkouts");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "checkout recovery"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), stopped(stop.clone())).await;
        }
    })
}

/// Relays the Redis carts' outbox into the shop's log every half second.
fn spawn_cart_relay(
    carts: Arc<adapters::redis::RedisCartStore>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if let Err(e) = carts.relay().await {
                tracing::warn!(error = %e, "relaying cart events");
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), stopped(stop.clone())).await;
        }
        let _ = carts.relay().await;
    })
}

/// Admits what each drop's rate has earned, five times a second.
fn spawn_admissions(drops: http::drops::Drops, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if let Err(e) = drops.tick().await {
                tracing::warn!(error = %e, "admitting drop shoppers");
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), stopped(stop.clone())).await;
        }
    })
}

/// The wall clock, for `main`.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
