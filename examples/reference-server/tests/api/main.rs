//! The reference server's API, driven in process through its router: what a shopper, an admin
//! and a misbehaving client get back.

mod config;
mod harness;
#[path = "../common/servers.rs"]
mod servers;
#[path = "../../../../crates/adapters/tests/smtp/sink.rs"]
#[allow(dead_code, reason = "shared with the SMTP adapter's tests")]
mod sink;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use harness::{Shop, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_and_changes_nothing() {
    let shop = Shop::start("bad-input").await;
    let ada = shop.customer("ada@example.com");
    let admin = shop.admin();
    let before = shop.catalog_size().await;
    let big = "x".repeat(70 * 1024);
    // (method, path, body, bearer token, the status it must get)
    type Case<'a> = (
        Method,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        StatusCode,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            Method::GET,
            "/search?limit=0",
            None,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/search?limit=abc",
            None,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/search?min_price=cheap",
            None,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/search?min_rating=9",
            None,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/products/no%20such",
            None,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/products/NOPE-1",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/nowhere", None, None, StatusCode::NOT_FOUND),
        (
            Method::POST,
            "/cart/lines",
            Some("{\"sku\": \"22224\""),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/cart/lines",
            Some("{\"sku\": 7}"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/cart/lines",
            Some("{\"sku\": \"22224\", \"quantity\": -1}"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/cart/lines",
            Some("{\"sku\": \"22224\", \"quantity\": 0}"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/cart/lines",
            Some("{\"sku\": \"NOPE-1\", \"quantity\": 1}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/cart/lines",
            Some(big.as_str()),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::PUT,
            "/cart/lines/22224",
            Some("{\"quantity\": 2}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/admin/products/NEW-1",
            Some("{\"title\": \"t\", \"price\": \"1.00\"}"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::PUT,
            "/admin/products/NEW-1",
            Some("{\"title\": \"t\", \"price\": \"1.00\"}"),
            Some(ada.as_str()),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::PUT,
            "/admin/products/NEW-1",
            Some("{\"title\": \"t\", \"price\": \"1.001\"}"),
            Some(admin.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PUT,
            "/admin/products/NEW-1",
            Some("{\"title\": \"\", \"price\": \"1.00\"}"),
            Some(admin.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PUT,
            "/admin/products/NEW-1",
            Some("{\"title\": \"t\", \"price\": \"-1.00\"}"),
            Some(admin.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/orders/o-1",
            None,
            Some("not-a-token"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::POST,
            "/cart/checkout",
            Some("{\"payment_method\": \"tok_visa\"}"),
            Some(ada.as_str()),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/auth/login",
            Some("{\"email\": \"nobody\"}"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/admin/stock/22224/receive",
            Some("{\"units\": 5}"),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, token, want) in cases {
        let mut client = shop.client();
        if let Some(t) = token {
            client.token = Some(t.to_owned());
        }
        let r = client.send(method.clone(), path, body, &[]).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.text);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{method} {path}"
        );
        let kind = r.body["kind"].as_str().unwrap_or_default().to_owned();
        assert!(
            !kind.is_empty() && r.body["status"] == want.as_u16(),
            "{}",
            r.text
        );
        assert!(client.cookie.is_none(), "{method} {path} made a cart");
    }
    assert_eq!(shop.catalog_size().await, before, "nothing was written");
    let stock = shop
        .client()
        .send(Method::GET, "/stock/22224", None, &[])
        .await;
    assert_eq!(stock.body["on_hand"], stock.body["available"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_and_orders_are_visible_only_to_their_owner() {
    let shop = Shop::start("owners").await;
    let mut ada = shop.signed_in("ada@example.com");
    let mut eve = shop.signed_in("eve@example.com");
    let order = ada.buy(&[("22224", 2)], "k-1").await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let id = order.body["order_id"].as_str().unwrap().to_owned();

    let mine = ada
        .send(Method::GET, &format!("/orders/{id}"), None, &[])
        .await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["status"], "confirmed");
    assert_eq!(mine.body["lines"][0]["quantity"], 2);
    let theirs = eve
        .send(Method::GET, &format!("/orders/{id}"), None, &[])
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.text);
    let anonymous = shop
        .client()
        .send(Method::GET, &format!("/orders/{id}"), None, &[])
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    assert_eq!(
        admin
            .send(Method::GET, &format!("/orders/{id}"), None, &[])
            .await
            .status,
        StatusCode::OK
    );

    // Eve's cart is her own: adding to it does not touch Ada's (checked out) cart.
    let _ = eve
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "85123A", "quantity": 1}"#),
            &[],
        )
        .await;
    let eve_cart = eve.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(eve_cart.body["lines"].as_array().unwrap().len(), 1);
    assert_eq!(eve_cart.body["lines"][0]["sku"], "85123A");
    let ada_cart = ada.send(Method::GET, "/cart", None, &[]).await;
    assert!(
        ada_cart.body["id"].is_null(),
        "Ada's cart was checked out: {}",
        ada_cart.text
    );

    // A guest's cookie names a cart nobody else can reach by id.
    let mut guest = shop.client();
    let _ = guest
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "22224", "quantity": 1}"#),
            &[],
        )
        .await;
    let cookie = guest.cookie.clone().expect("a guest cart cookie");
    assert!(cookie.len() >= 32, "an unguessable id: {cookie}");
    let mut other = shop.client();
    assert!(other.send(Method::GET, "/cart", None, &[]).await.body["id"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cart_follows_the_shopper_when_they_sign_in() {
    let shop = Shop::start("merge").await;
    let mut ada = shop.signed_in("ada@example.com");
    let _ = ada
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "22224", "quantity": 1}"#),
            &[],
        )
        .await;
    let _ = ada
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "85123A", "quantity": 1}"#),
            &[],
        )
        .await;

    let mut browser = shop.client();
    let _ = browser
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "22224", "quantity": 2}"#),
            &[],
        )
        .await;
    let _ = browser
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "84879", "quantity": 4}"#),
            &[],
        )
        .await;
    assert!(browser.cookie.is_some());
    browser.token = ada.token.clone();
    let merged = browser.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(merged.status, StatusCode::OK);
    let lines: Vec<(String, u64)> = merged.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_owned(),
                l["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut lines = lines;
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ("22224".into(), 3),
            ("84879".into(), 4),
            ("85123A".into(), 1)
        ],
        "quantities add up"
    );
    assert!(browser.cookie.is_none(), "the guest cookie is cleared");
    // Merging is once: the same cart read again is unchanged, also from another device.
    let again = ada.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(again.body["lines"], merged.body["lines"]);
    assert_eq!(again.body["version"], merged.body["version"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_runs_once_per_idempotency_key() {
    let shop = Shop::start("idempotency").await;
    let mut ada = shop.signed_in("ada@example.com");
    let first = ada.buy(&[("22224", 1)], "same-key").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let body = r#"{"payment_method": "tok_visa"}"#;
    let key = [("idempotency-key", "\"same-key\"")];
    let again = ada
        .send(Method::POST, "/cart/checkout", Some(body), &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let other = ada
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_other"}"#),
            &key,
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text
    );
    assert_eq!(other.body["type"], "/problems/idempotency-key-reused");
    // Eve's identical key is her own.
    let mut eve = shop.signed_in("eve@example.com");
    let hers = eve.buy(&[("85123A", 1)], "same-key").await;
    assert_eq!(hers.status, StatusCode::CREATED, "{}", hers.text);
    assert_ne!(hers.body["order_id"], first.body["order_id"]);
    assert_eq!(shop.payments().await, 2, "one charge per checkout");

    // Twenty tabs submit the same checkout at once: one order, one charge.
    let mut bob = shop.signed_in("bob@example.com");
    bob.fill(&[("84879", 2)]).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut tab = bob.clone();
        tasks.push(tokio::spawn(async move {
            tab.send(
                Method::POST,
                "/cart/checkout",
                Some(r#"{"payment_method": "tok_visa"}"#),
                &[("idempotency-key", "double-click")],
            )
            .await
        }));
    }
    let mut orders = HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                let _ = orders.insert(r.body["order_id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(
                r.body["type"], "/problems/idempotency-key-in-flight",
                "{}",
                r.text
            ),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(orders.len(), 1, "one order id for one key: {orders:?}");
    assert_eq!(shop.payments().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_price_blocks_checkout_until_the_shopper_accepts_it() {
    let shop = Shop::start("price-moved").await;
    let mut ada = shop.signed_in("ada@example.com");
    ada.fill(&[("22224", 2)]).await;
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    let moved = admin
        .send(
            Method::PUT,
            "/admin/products/22224",
            Some(r#"{"title": "White Lovebird Lantern", "price": "3.50", "brand": "Love", "category": "Home/Lighting"}"#),
            &[],
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    let cart = ada.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(cart.body["lines"][0]["price_changed"], true);
    assert_eq!(cart.body["lines"][0]["current_price"]["amount"], "3.50");
    assert!(
        cart.text.contains("price_changed"),
        "a blocker: {}",
        cart.text
    );
    let refused = ada
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", "p-1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.body["kind"], "refused");
    assert_eq!(refused.body["details"]["reason"], "cart_not_ready");
    assert_eq!(shop.payments().await, 0);
    let ok = ada
        .send(Method::POST, "/cart/acknowledge-prices", None, &[])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let placed = ada
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", "p-2")],
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let id = placed.body["order_id"].as_str().unwrap();
    let order = ada
        .send(Method::GET, &format!("/orders/{id}"), None, &[])
        .await;
    assert_eq!(order.body["lines"][0]["unit_price"]["amount"], "3.50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_and_a_stale_version_are_clear_refusals() {
    let shop = Shop::start("refusals").await;
    let mut ada = shop.signed_in("ada@example.com");
    ada.fill(&[("22224", 1)]).await;
    let declined = ada
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_decline"}"#),
            &[("idempotency-key", "d-1")],
        )
        .await;
    assert_eq!(declined.status, StatusCode::CONFLICT, "{}", declined.text);
    assert_eq!(declined.body["details"]["reason"], "payment_declined");
    // Nothing stays held: the stock is whole, the cart still there to retry with another card.
    let stock = ada.send(Method::GET, "/stock/22224", None, &[]).await;
    assert_eq!(stock.body["available"], stock.body["on_hand"]);
    let cart = ada.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(cart.body["status"], "active");
    let etag = cart.header("etag").unwrap();
    let stale = format!("\"{}\"", cart.body["version"].as_u64().unwrap() + 5);
    let r = ada
        .send(
            Method::PUT,
            "/cart/lines/22224",
            Some(r#"{"quantity": 3}"#),
            &[("if-match", stale.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    let r = ada
        .send(
            Method::PUT,
            "/cart/lines/22224",
            Some(r#"{"quantity": 3}"#),
            &[("if-match", etag.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["lines"][0]["quantity"], 3);
    let retry = ada
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", "d-2")],
        )
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_over_http_sells_exactly_the_stock() {
    let shop = Shop::start("flash").await;
    flash_sale(&shop, 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_on_postgres_sells_exactly_the_stock() {
    let Some(shop) = Shop::start_on_postgres("pgflash").await else {
        return;
    };
    flash_sale(&shop, 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_with_carts_limits_and_queues_on_redis() {
    let Some(shop) = Shop::start_on_redis("redis", 1_000_000).await else {
        return;
    };
    assert_eq!(shop.app.shared.backend, "redis");
    // A guest cart on Redis follows the shopper at sign-in.
    let mut browser = shop.client();
    let _ = browser
        .send(
            Method::POST,
            "/cart/lines",
            Some(r#"{"sku": "22224", "quantity": 2}"#),
            &[],
        )
        .await;
    browser.token = Some(shop.customer("ada@example.com"));
    let merged = browser.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(merged.body["lines"][0]["quantity"], 2, "{}", merged.text);
    assert!(merged.body["id"].as_str().unwrap().starts_with("c-"));
    flash_sale(&shop, 500).await;
    drop_sale(&shop).await;

    // The rate limit's buckets are on Redis too.
    let Some(limited) = Shop::start_on_redis("redis-rate", 5).await else {
        return;
    };
    let mut client = limited.client();
    let statuses: Vec<StatusCode> = futures_statuses(&mut client, 40).await;
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

async fn futures_statuses(client: &mut harness::Client, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            client
                .send(Method::GET, "/products/22224", None, &[])
                .await
                .status,
        );
    }
    out
}

/// 100 units, `buyers` shoppers at once: exactly 100 orders and 100 charges, every other
/// buyer a clear sold-out answer, no 5xx.
async fn flash_sale(shop: &Shop, buyers: usize) {
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    let made = admin
        .send(
            Method::PUT,
            "/admin/products/DROP-1",
            Some(r#"{"title": "Limited lantern", "price": "20.00", "category": "Home/Lighting"}"#),
            &[],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text);
    let stocked = admin
        .send(
            Method::POST,
            "/admin/stock/DROP-1/receive",
            Some(r#"{"units": 100}"#),
            &[("idempotency-key", "drop-1")],
        )
        .await;
    assert_eq!(stocked.status, StatusCode::OK, "{}", stocked.text);
    assert_eq!(stocked.body["available"], 100);

    let mut tasks = Vec::with_capacity(buyers);
    for b in 0..buyers {
        let mut buyer = shop.signed_in(&format!("buyer{b}@example.com"));
        tasks.push(tokio::spawn(async move {
            buyer.buy(&[("DROP-1", 1)], "drop").await
        }));
    }
    let (mut sold, mut sold_out) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => sold += 1,
            StatusCode::CONFLICT => {
                assert_eq!(r.body["kind"], "refused", "{}", r.text);
                sold_out += 1;
            }
            other => panic!("a buyer got {other}: {}", r.text),
        }
    }
    assert_eq!(sold, 100, "every unit sold once");
    assert_eq!(sold_out, buyers - 100);
    assert_eq!(
        shop.payments().await,
        100,
        "one charge per order, none without"
    );
    let left = shop
        .client()
        .send(Method::GET, "/stock/DROP-1", None, &[])
        .await;
    assert_eq!(left.body["available"], 0);
    assert_eq!(left.body["committed"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_the_routes_agree() {
    let shop = Shop::start("openapi").await;
    let mut client = shop.client();
    let doc = client.send(Method::GET, "/openapi.json", None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 18, "{} paths", paths.len());
    let mut seen = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let r = client.send(method.clone(), &concrete, None, &[]).await;
            assert_ne!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented, not routed"
            );
            assert!(
                !(r.status == StatusCode::NOT_FOUND && r.body["detail"] == "no such route"),
                "{method} {path} is documented, not routed"
            );
            assert!(
                !r.status.is_server_error(),
                "{method} {concrete}: {}",
                r.text
            );
            // Every documented answer of this operation is in the document.
            let documented = &item[method.as_str().to_lowercase()]["responses"][r.status.as_str()];
            assert!(
                !documented.is_null(),
                "{method} {path} answered {} undocumented",
                r.status
            );
            seen += 1;
        }
    }
    assert!(seen >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_sees_catalog_and_review_changes_and_forgives_typos() {
    let shop = Shop::start("search").await;
    let mut client = shop.client();
    let typo = shop
        .search_until(&mut client, "/search?q=lanturn", |b| {
            b["total"].as_u64() > Some(5)
        })
        .await;
    assert!(
        typo["hits"][0]["title"]
            .as_str()
            .unwrap()
            .contains("Lantern"),
        "{typo}"
    );
    let filtered = client
        .send(Method::GET, "/search?q=lantern&brand=Love", None, &[])
        .await;
    for hit in filtered.body["hits"].as_array().unwrap() {
        assert_eq!(hit["brand"], "Love");
    }
    assert!(
        filtered.body["facets"]["brand"].as_array().unwrap().len() > 1,
        "the brand facet stays disjunctive"
    );

    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    let _ = admin
        .send(Method::PUT, "/admin/products/ZZ-1", Some(r#"{"title": "Zyzzyva enamel teapot", "price": "12.00", "brand": "Acme", "category": "Kitchen/Tableware"}"#), &[])
        .await;
    let found = shop
        .search_until(&mut client, "/search?q=zyzzyva", |b| b["total"] == 1)
        .await;
    assert_eq!(found["hits"][0]["sku"], "ZZ-1");

    // A published 5-star review puts the product into "4 stars and up".
    let mut ada = shop.signed_in("ada@example.com");
    let wrote = ada
        .send(
            Method::POST,
            "/products/ZZ-1/reviews",
            Some(r#"{"stars": 5, "title": "Lovely", "body": "Pours well."}"#),
            &[],
        )
        .await;
    assert_eq!(wrote.status, StatusCode::OK, "{}", wrote.text);
    assert_eq!(wrote.body["status"], "pending");
    let published = admin
        .send(
            Method::POST,
            "/admin/products/ZZ-1/reviews/ada@example.com/moderation",
            Some(r#"{"publish": true}"#),
            &[],
        )
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    let rated = shop
        .search_until(&mut client, "/search?q=zyzzyva&min_rating=4", |b| {
            b["total"] == 1
        })
        .await;
    assert_eq!(rated["hits"][0]["sku"], "ZZ-1");
    let reviews = client
        .send(Method::GET, "/products/ZZ-1/reviews", None, &[])
        .await;
    assert_eq!(reviews.body["average"], "5.0");
    assert_eq!(reviews.body["reviews"][0]["title"], "Lovely");

    // Retired, it leaves search.
    let _ = admin
        .send(
            Method::PUT,
            "/admin/products/ZZ-1",
            Some(r#"{"title": "Zyzzyva enamel teapot", "price": "12.00", "active": false}"#),
            &[],
        )
        .await;
    let gone = shop
        .search_until(&mut client, "/search?q=zyzzyva", |b| b["total"] == 0)
        .await;
    assert_eq!(gone["hits"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_products_and_hybrid_search_by_meaning() {
    let shop = Shop::start("semantic").await;
    let mut client = shop.client();
    // Indexed from the log: wait until the demo catalog is searchable.
    let words = shop
        .search_until(&mut client, "/search?q=lantern&limit=5", |b| {
            b["total"].as_u64() > Some(5)
        })
        .await;
    let sku = words["hits"][0]["sku"].as_str().unwrap().to_owned();
    let similar = client
        .send(
            Method::GET,
            &format!("/products/{sku}/similar?limit=5"),
            None,
            &[],
        )
        .await;
    assert_eq!(similar.status, StatusCode::OK, "{}", similar.text);
    let hits = similar.body["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{}", similar.text);
    assert!(
        hits.iter().all(|h| h["sku"] != sku.as_str()),
        "never itself"
    );
    let sims: Vec<f64> = hits
        .iter()
        .map(|h| h["similarity"].as_f64().unwrap())
        .collect();
    assert!(
        sims.windows(2).all(|w| w[0] >= w[1]),
        "most similar first: {sims:?}"
    );
    // Hybrid: every keyword hit is still there, each with its similarity where it has one.
    let hybrid = client
        .send(
            Method::GET,
            "/search?q=lantern&semantic=hybrid&limit=50",
            None,
            &[],
        )
        .await;
    assert_eq!(hybrid.status, StatusCode::OK, "{}", hybrid.text);
    assert!(hybrid.body["total"].as_u64() >= words["total"].as_u64());
    // Unknown products are 404, bad modes 4xx problems, never a 500.
    let missing = client
        .send(Method::GET, "/products/NO-SUCH-SKU/similar", None, &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let bad = client
        .send(Method::GET, "/search?q=lantern&semantic=psychic", None, &[])
        .await;
    assert!(bad.status.is_client_error(), "{}", bad.text);
    let zero = client
        .send(
            Method::GET,
            &format!("/products/{sku}/similar?limit=0"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        zero.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        zero.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_pages_show_what_was_bought_together() {
    let shop = Shop::start("recs").await;
    let mut client = shop.client();
    let recs = client
        .send(
            Method::GET,
            "/products/85123A/recommendations?session=s-1",
            None,
            &[],
        )
        .await;
    assert_eq!(recs.status, StatusCode::OK, "{}", recs.text);
    let list = recs.body.as_array().unwrap();
    assert!(!list.is_empty(), "the best seller has co-purchases");
    assert!(list.iter().all(|r| r["sku"] != "85123A"), "never itself");
    assert!(list.iter().any(|r| {
        r["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("bought_together"))
    }));
    let viewed = client
        .send(
            Method::POST,
            "/recently-viewed",
            Some(r#"{"session": "s-1", "sku": "22224"}"#),
            &[],
        )
        .await;
    assert_eq!(viewed.status, StatusCode::NO_CONTENT, "{}", viewed.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let shop = Shop::start_with("rate", |c| c.rate_per_sec = 5).await;
    let mut client = shop.client();
    let mut limited = None;
    for _ in 0..40 {
        let r = client.send(Method::GET, "/products/22224", None, &[]).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("ratelimit").is_some());
    }
    let r = limited.expect("the bucket (10) runs dry well before 40 requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(r.body["type"], "/problems/rate-limited");
    // Another signed-in client has a bucket of its own.
    let mut ada = shop.signed_in("ada@example.com");
    assert_eq!(
        ada.send(Method::GET, "/products/22224", None, &[])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_callers_get_a_stable_ab_arm() {
    let shop = Shop::start("ab").await;
    let mut ada = shop.signed_in("ada@example.com");
    let a = ada
        .send(Method::GET, "/cart", None, &[])
        .await
        .header("x-ab-arms")
        .unwrap();
    let b = ada
        .send(Method::GET, "/cart", None, &[])
        .await
        .header("x-ab-arms")
        .unwrap();
    assert_eq!(a, b);
    assert!(a.starts_with("recs-blend="), "{a}");
    let mut arms = HashSet::new();
    for i in 0..40 {
        let mut c = shop.signed_in(&format!("u{i}@example.com"));
        let _ = arms.insert(
            c.send(Method::GET, "/cart", None, &[])
                .await
                .header("x-ab-arms")
                .unwrap(),
        );
    }
    assert_eq!(arms.len(), 2, "both arms are in use: {arms:?}");
    let anonymous = shop.client().send(Method::GET, "/cart", None, &[]).await;
    assert!(anonymous.header("x-ab-arms").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_admits_by_lottery_then_queue_and_throttles_checkout() {
    let shop = Shop::start("drop").await;
    drop_sale(&shop).await;
}

/// Five spots, thirty fans waiting before the start, one late outsider.
async fn drop_sale(shop: &Shop) {
    let paid_before = shop.payments().await;
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    let _ = admin
        .send(
            Method::PUT,
            "/admin/products/DROP-2",
            Some(r#"{"title": "Signed print", "price": "40.00", "category": "Home/Decoration"}"#),
            &[],
        )
        .await;
    let _ = admin
        .send(
            Method::POST,
            "/admin/stock/DROP-2/receive",
            Some(r#"{"units": 5}"#),
            &[("idempotency-key", "drop-2")],
        )
        .await;
    let starts =
        (reference_server::system_clock().now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let config = format!(
        r#"{{"sku": "DROP-2", "starts_at": "{starts}", "spots": 5, "admit_per_sec": 50, "admission_minutes": 10}}"#
    );
    let opened = admin
        .send(Method::PUT, "/admin/drops/print-drop", Some(&config), &[])
        .await;
    assert_eq!(opened.status, StatusCode::NO_CONTENT, "{}", opened.text);

    // Thirty shoppers wait before the start; their cart holds the drop's SKU.
    let mut buyers: Vec<_> = (0..30)
        .map(|i| shop.signed_in(&format!("fan{i}@example.com")))
        .collect();
    let mut positions = HashSet::new();
    for b in &mut buyers {
        b.fill(&[("DROP-2", 1)]).await;
        let joined = b
            .send(Method::POST, "/drops/print-drop/join", None, &[])
            .await;
        assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
        assert_eq!(joined.body["state"], "waiting");
        let _ = positions.insert(joined.body["position"].as_u64().unwrap());
        assert_eq!(joined.header("retry-after").as_deref(), Some("1"));
    }
    assert!(positions.iter().all(|p| (1..=30).contains(p)));
    let early = buyers[0]
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", "early")],
        )
        .await;
    assert_eq!(
        early.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        early.text
    );
    assert_eq!(early.body["type"], "/problems/queue-required");
    let mut outsider = shop.signed_in("late@example.com");
    outsider.fill(&[("DROP-2", 1)]).await;

    // After the start: five admitted, the rest told it is over; only the admitted buy.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let (mut admitted, mut closed) = (0, 0);
    for b in &mut buyers {
        let s = b.send(Method::GET, "/drops/print-drop", None, &[]).await;
        match s.body["state"].as_str().unwrap() {
            "admitted" => {
                admitted += 1;
                // The same key as the refused early attempt of buyer 0 now goes through.
                let r = b
                    .send(
                        Method::POST,
                        "/cart/checkout",
                        Some(r#"{"payment_method": "tok_visa"}"#),
                        &[("idempotency-key", "early")],
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            }
            "closed" => {
                closed += 1;
                let r = b
                    .send(
                        Method::POST,
                        "/cart/checkout",
                        Some(r#"{"payment_method": "tok_visa"}"#),
                        &[("idempotency-key", "closed")],
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
            }
            other => panic!("{other}: {}", s.text),
        }
    }
    assert_eq!((admitted, closed), (5, 25));
    let r = outsider
        .send(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", "x")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "never joined: {}",
        r.text
    );
    let joined_late = outsider
        .send(Method::POST, "/drops/print-drop/join", None, &[])
        .await;
    assert_eq!(joined_late.body["state"], "closed");
    assert_eq!(shop.payments().await - paid_before, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_searches_and_checkouts() {
    let shop = Shop::start("metrics").await;
    let mut ada = shop.signed_in("ada@example.com");
    let _ = shop
        .search_until(&mut ada, "/search?q=lantern", |b| {
            b["total"].as_u64() > Some(0)
        })
        .await;
    let placed = ada.buy(&[("22224", 1)], "m-1").await;
    assert_eq!(placed.status, StatusCode::CREATED);
    let metrics = ada.send(Method::GET, "/metrics", None, &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text;
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert!(value("commerce_checkout_attempts_total{outcome=\"confirmed\"}") >= 1.0);
    assert!(value("commerce_search_duration_seconds_count") >= 1.0);
    assert!(
        value(
            "http_server_request_duration_seconds_count{method=\"POST\",route=\"/cart/checkout\",status=\"201\"}"
        ) >= 1.0
    );
    assert!(text.contains("http_server_request_duration_seconds_bucket{method=\"GET\",route=\"/search\",status=\"200\",le=\"0.05\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_ships_and_a_signed_carrier_webhook_delivers_it() {
    let shop = Shop::start("shipping").await;
    let mut ada = shop.signed_in("ada@example.com");
    let placed = ada.buy(&[("22224", 2)], "s-1").await;
    let id = placed.body["order_id"].as_str().unwrap().to_owned();
    let ship = format!("/admin/orders/{id}/ship");
    assert_eq!(
        ada.send(Method::POST, &ship, None, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    let shipped = admin.send(Method::POST, &ship, None, &[]).await;
    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.text);
    assert_eq!(shipped.body["status"], "shipped");
    let tracking = shipped.body["tracking"][0]["tracking_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = admin.send(Method::POST, &ship, None, &[]).await;
    assert_eq!(
        again.body["tracking"].as_array().unwrap().len(),
        1,
        "shipping twice ships once: {}",
        again.text
    );

    let clock = reference_server::system_clock();
    let now = clock.now();
    let body = format!(
        r#"{{"event_id": "evt-1", "order_id": "{id}", "tracking_number": "{tracking}", "seq": 9, "at": "{}", "status": "delivered"}}"#,
        now.to_rfc3339()
    );
    let key = &shop.app.webhook_key;
    let hook = "/webhooks/carrier/royal-parcel";
    let mut carrier = shop.client();
    let unsigned = carrier.send(Method::POST, hook, Some(&body), &[]).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    let forged = key.sign(body.replace("delivered", "lost").as_bytes(), now);
    let r = carrier
        .send(
            Method::POST,
            hook,
            Some(&body),
            &[("webhook-signature", forged.as_str())],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a signature of another body"
    );
    let stale = key.sign(body.as_bytes(), now - chrono::TimeDelta::minutes(10));
    let r = carrier
        .send(
            Method::POST,
            hook,
            Some(&body),
            &[("webhook-signature", stale.as_str())],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a replay of an old delivery"
    );
    let order = ada
        .send(Method::GET, &format!("/orders/{id}"), None, &[])
        .await;
    assert_eq!(
        order.body["status"], "shipped",
        "nothing unsigned got through"
    );

    let signed = key.sign(body.as_bytes(), now);
    let r = carrier
        .send(
            Method::POST,
            hook,
            Some(&body),
            &[("webhook-signature", signed.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["result"], "applied");
    let r = carrier
        .send(
            Method::POST,
            hook,
            Some(&body),
            &[("webhook-signature", signed.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("idempotent-replayed").as_deref(),
        Some("true"),
        "a redelivery"
    );
    let order = ada
        .send(Method::GET, &format!("/orders/{id}"), None, &[])
        .await;
    assert_eq!(order.body["status"], "delivered");
    let kinds: Vec<&str> = order.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "deliver").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_webhook_gives_back_money_no_order_holds() {
    use commerce_core::{AuthorizeRequest, IdempotencyKey, Money, OrderId, PaymentRef};
    let shop = Shop::start("payments").await;
    let payments = shop.app.stores.payments.clone();
    // The provider charged after the checkout waiting for it gave up: no order holds it.
    let late = |key: &str, order: &str, capture: bool| AuthorizeRequest {
        idempotency_key: IdempotencyKey::new(key).unwrap(),
        order_id: OrderId::new(order).unwrap(),
        amount: Money::from_minor(1_250, reference_server::CURRENCY),
        method_token: "tok_visa".into(),
        capture,
    };
    let charged = payments
        .authorize(&late("late-sale", "o-gave-up-1", true))
        .await
        .unwrap();
    let held = payments
        .authorize(&late("late-auth", "o-gave-up-2", false))
        .await
        .unwrap();
    let mut ada = shop.signed_in("ada@example.com");
    let placed = ada.buy(&[("22224", 1)], "pay-1").await;
    let order_id = OrderId::new(placed.body["order_id"].as_str().unwrap()).unwrap();
    let order = shop
        .app
        .stores
        .orders
        .get(&order_id)
        .await
        .unwrap()
        .unwrap();
    let paid = order.payment_ref().unwrap().clone();

    let key = &shop.app.payment_webhook_key;
    let hook = "/webhooks/payments/sandbox";
    let mut provider = shop.client();
    let now = reference_server::system_clock().now();
    let event = |id: &str, payment: &PaymentRef, order: &str| {
        format!(
            r#"{{"event_id": "{id}", "type": "payment.captured", "payment_ref": "{payment}", "order_id": "{order}"}}"#
        )
    };
    let mut post = async |body: &str, signature: Option<String>| {
        let headers: Vec<(&str, &str)> = signature
            .as_deref()
            .map(|s| vec![("webhook-signature", s)])
            .unwrap_or_default();
        provider
            .send(Method::POST, hook, Some(body), &headers)
            .await
    };

    // Unsigned, forged or stale: 401, and the money stays where it is.
    let body = event("evt-1", &charged.payment_ref, "o-gave-up-1");
    assert_eq!(post(&body, None).await.status, StatusCode::UNAUTHORIZED);
    let forged = key.sign(body.replace("evt-1", "evt-x").as_bytes(), now);
    assert_eq!(
        post(&body, Some(forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let stale = key.sign(body.as_bytes(), now - chrono::TimeDelta::minutes(10));
    assert_eq!(
        post(&body, Some(stale)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let untouched = payments.get(&charged.payment_ref).await.unwrap().unwrap();
    assert!(untouched.refunded.is_zero());

    // Signed: the charge no order holds is refunded in full, once, however often it arrives.
    let r = post(&body, Some(key.sign(body.as_bytes(), now))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["result"], "refunded");
    let again = post(&body, Some(key.sign(body.as_bytes(), now))).await;
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let other_id = event("evt-2", &charged.payment_ref, "o-gave-up-1");
    let r = post(&other_id, Some(key.sign(other_id.as_bytes(), now))).await;
    assert_eq!(r.body["result"], "settled", "{}", r.text);
    let refunded = payments.get(&charged.payment_ref).await.unwrap().unwrap();
    assert_eq!(refunded.refunded, refunded.captured);

    // An authorization no order holds is voided.
    let body = event("evt-3", &held.payment_ref, "o-gave-up-2");
    let r = post(&body, Some(key.sign(body.as_bytes(), now))).await;
    assert_eq!(r.body["result"], "voided", "{}", r.text);
    assert_eq!(
        payments
            .get(&held.payment_ref)
            .await
            .unwrap()
            .unwrap()
            .status,
        commerce_core::PaymentStatus::Voided
    );

    // A confirmed order's payment is left alone.
    let body = event("evt-4", &paid, order_id.as_str());
    let r = post(&body, Some(key.sign(body.as_bytes(), now))).await;
    assert_eq!(r.body["result"], "belongs", "{}", r.text);
    let kept = payments.get(&paid).await.unwrap().unwrap();
    assert!(kept.refunded.is_zero() && kept.captured.is_positive());

    // A payment the provider does not have, or named under another order: clear refusals.
    let ghost = PaymentRef::new("pay_nobody").unwrap();
    let body = event("evt-5", &ghost, "o-x");
    let r = post(&body, Some(key.sign(body.as_bytes(), now))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let body = event("evt-6", &paid, "o-someone-else");
    let r = post(&body, Some(key.sign(body.as_bytes(), now))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["field"], "order_id");
    assert!(
        payments
            .get(&paid)
            .await
            .unwrap()
            .unwrap()
            .refunded
            .is_zero()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_on_kafka_indexes_from_the_broker_and_resumes_after_a_restart() {
    let Some(shop) = Shop::start_on_kafka("kafka").await else {
        return;
    };
    let mut client = shop.client();
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    put_product(&mut admin, "KF-1", r#"{"title": "Quokka enamel teapot", "price": "12.00", "brand": "Acme", "category": "Kitchen/Tableware"}"#).await;
    let found = shop
        .search_until(&mut client, "/search?q=quokka", |b| b["total"] == 1)
        .await;
    assert_eq!(found["hits"][0]["price"]["amount"], "12.00", "{found}");
    // The outbox rows went to the broker, and the index keeps a position per partition.
    let before = shop.app.index.partition_offsets();
    assert!(before.values().sum::<u64>() >= 1, "{before:?}");
    assert_eq!(
        shop.app.index.next_offset(),
        0,
        "the PostgreSQL log is not read"
    );
    // Ready (as a probe polls it) once the index has read every partition to its end at start.
    shop.wait_ready(&mut client).await;

    // A price change reaches search through the broker.
    put_product(&mut admin, "KF-1", r#"{"title": "Quokka enamel teapot", "price": "9.50", "brand": "Acme", "category": "Kitchen/Tableware"}"#).await;
    let _ = shop
        .search_until(&mut client, "/search?q=quokka", |b| {
            b["hits"][0]["price"]["amount"] == "9.50"
        })
        .await;

    // Restarted, the index resumes at its partitions' offsets rather than from the start,
    // and what changed while it was down arrives.
    drop((client, admin)); // the old process's connections go with it
    let shop = shop.restart().await;
    let resumed = shop.app.index.partition_offsets();
    for (p, at) in &before {
        assert!(resumed.get(p).copied().unwrap_or(0) >= *at, "{resumed:?}");
    }
    let mut client = shop.client();
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    put_product(&mut admin, "KF-2", r#"{"title": "Wombat oven glove", "price": "4.00", "brand": "Acme", "category": "Kitchen/Textiles"}"#).await;
    let _ = shop
        .search_until(&mut client, "/search?q=wombat", |b| b["total"] == 1)
        .await;
    let kept = client
        .send(Method::GET, "/search?q=quokka", None, &[])
        .await;
    assert_eq!(
        kept.body["hits"][0]["price"]["amount"], "9.50",
        "{}",
        kept.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_index_on_a_broker_that_lost_its_topics_is_rebuilt_from_the_catalog() {
    let Some(shop) = Shop::start_on_kafka("kafka-lost").await else {
        return;
    };
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    put_product(&mut admin, "KL-1", r#"{"title": "Quokka enamel teapot", "price": "12.00", "brand": "Acme", "category": "Kitchen/Tableware"}"#).await;
    put_product(&mut admin, "KL-2", r#"{"title": "Quokka tea towel", "price": "3.00", "brand": "Acme", "category": "Kitchen/Textiles"}"#).await;
    put_product(&mut admin, "KL-3", r#"{"title": "Quokka egg cup", "price": "2.00", "brand": "Acme", "category": "Kitchen/Tableware"}"#).await;
    put_product(&mut admin, "KL-3", r#"{"title": "Quokka egg cup", "price": "2.00", "brand": "Acme", "category": "Kitchen/Tableware", "active": false}"#).await;
    let mut client = shop.client();
    let _ = shop
        .search_until(&mut client, "/search?q=quokka", |b| b["total"] == 2)
        .await;

    // The relay moved the outbox rows to the broker and deleted them. Started again on new,
    // empty topics (a broker that lost its data, or a retention shorter than the shop's age)
    // and a new data folder (a new replica), the index is rebuilt from the catalog before the
    // server says it is ready.
    drop((client, admin));
    let data = std::env::temp_dir().join(format!(
        "reference-server-kafka-lost-2-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data);
    let shop = shop
        .restart_with(|c| {
            c.kafka_topic_prefix = format!("reference-kafka-lost-2-{}.", std::process::id());
            c.data_dir = data;
        })
        .await;
    let mut client = shop.client();
    shop.wait_ready(&mut client).await;
    let found = client
        .send(Method::GET, "/search?q=quokka", None, &[])
        .await;
    assert_eq!(found.body["total"], 2, "{}", found.text);
    let mut prices: Vec<&str> = found.body["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|h| h["price"]["amount"].as_str())
        .collect();
    prices.sort_unstable();
    assert_eq!(prices, ["12.00", "3.00"], "{}", found.text);

    // Changes after the rebuild still arrive through the new topics.
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    put_product(&mut admin, "KL-2", r#"{"title": "Quokka tea towel", "price": "2.50", "brand": "Acme", "category": "Kitchen/Textiles"}"#).await;
    let _ = shop
        .search_until(&mut client, "/search?q=towel", |b| {
            b["hits"][0]["price"]["amount"] == "2.50"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_analyzed_in_another_locale_is_rebuilt_at_start() {
    let Some(shop) = Shop::start_on_postgres("relocale").await else {
        return;
    };
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    put_product(&mut admin, "RL-1", r#"{"title": "Bürostuhl mit Armlehnen", "price": "89.00", "brand": "Acme", "category": "Büro/Sitzmöbel"}"#).await;
    let mut client = shop.client();
    let _ = shop
        .search_until(&mut client, "/search?q=b%C3%BCrostuhl", |b| b["total"] == 1)
        .await;
    // English analysis: a compound's head alone finds nothing.
    let head = client.send(Method::GET, "/search?q=stuhl", None, &[]).await;
    assert_eq!(head.body["total"], 0, "{}", head.text);
    drop((client, admin));
    // The same data folder, now German: the index on disk is rebuilt from the log, not
    // refused, and the head of the compound finds it.
    let shop = shop
        .restart_with(|c| c.search_locale = search::Locale::German)
        .await;
    let mut client = shop.client();
    let found = shop
        .search_until(&mut client, "/search?q=stuhl", |b| b["total"] == 1)
        .await;
    assert_eq!(found["hits"][0]["sku"], "RL-1", "{found}");
}

async fn put_product(admin: &mut harness::Client, sku: &str, body: &str) {
    let put = admin
        .send(
            Method::PUT,
            &format!("/admin/products/{sku}"),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_promotions_and_carts_reprice() {
    let shop = Shop::start("promotions").await;
    let mut admin = shop.client();
    admin.token = Some(shop.admin());
    let mut ada = shop.signed_in("ada@example.com");
    ada.fill(&[("22224", 2)]).await;
    let code = ada
        .send(
            Method::POST,
            "/cart/codes",
            Some(r#"{"code": "HALF"}"#),
            &[],
        )
        .await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.text);
    let before = code.body["totals"]["total"]["amount"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.body["promotions"], json!([]), "no such promotion yet");

    let half = r#"{"id": "half", "name": "Half off with HALF", "code": "HALF", "action": {"percent_off": {"percent": "50"}}}"#;
    // Only an admin; a body whose id is not the path's, or a rule that does not hold, changes
    // nothing.
    let denied = ada
        .send(Method::PUT, "/admin/promotions/half", Some(half), &[])
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let other_id = admin
        .send(Method::PUT, "/admin/promotions/other", Some(half), &[])
        .await;
    assert_eq!(other_id.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other_id.body["field"], "id");
    let bad = half.replace(r#""50""#, r#""150""#);
    let refused = admin
        .send(Method::PUT, "/admin/promotions/half", Some(&bad), &[])
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    let listed = admin
        .send(Method::GET, "/admin/promotions", None, &[])
        .await;
    let ids = |b: &serde_json::Value| -> Vec<String> {
        b["promotions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&listed.body), ["welcome10", "ship-free-50"]);

    // In force: the cart with the code reprices on its next read.
    let put = admin
        .send(Method::PUT, "/admin/promotions/half", Some(half), &[])
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["id"], "half");
    let cart = ada.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(
        cart.body["promotions"],
        json!(["Half off with HALF"]),
        "{}",
        cart.text
    );
    let after = cart.body["totals"]["total"]["amount"].as_str().unwrap();
    assert_ne!(after, before, "{}", cart.text);

    // Withdrawn: the cart is back at its old total; withdrawing again is 404.
    let gone = admin
        .send(Method::DELETE, "/admin/promotions/half", None, &[])
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = admin
        .send(Method::DELETE, "/admin/promotions/half", None, &[])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let cart = ada.send(Method::GET, "/cart", None, &[]).await;
    assert_eq!(cart.body["totals"]["total"]["amount"], before.as_str());
}

/// With a mail server configured, a checkout e-mails its confirmation to the customer, once,
/// even when the client retries the checkout with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_mails_its_confirmation_once() {
    let mail = sink::Sink::start().await;
    let url = mail.url();
    let shop = Shop::start_with("smtp", |c| c.smtp_url = Some(url)).await;
    let mut ada = shop.signed_in("ada@example.com");
    let order = ada.buy(&[("22224", 1)], "mail-1").await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let id = order.body["order_id"].as_str().unwrap().to_owned();
    let again = ada
        .send_patiently(
            Method::POST,
            "/cart/checkout",
            Some(r#"{"payment_method": "tok_visa"}"#),
            &[("idempotency-key", "mail-1")],
        )
        .await;
    assert_eq!(
        again.body["order_id"], order.body["order_id"],
        "{}",
        again.text
    );
    let mut got = mail.messages();
    for _ in 0..50 {
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        got = mail.messages();
    }
    assert_eq!(got.len(), 1, "one confirmation");
    assert_eq!(got[0].to, ["<ada@example.com>"]);
    assert!(
        got[0]
            .data
            .contains(&format!("Subject: Your order {id} is confirmed")),
        "{}",
        got[0].data
    );
}
