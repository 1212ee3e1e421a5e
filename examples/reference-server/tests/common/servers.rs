//! The real servers integration tests need: an environment variable naming each, a skip with
//! the reason printed without it, a failure under `CI=true`.

/// The value of `var`; `None` (with the reason printed) when unset, except under `CI=true`.
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
pub(crate) fn server_env(var: &str, test: &str) -> Option<String> {
    let Ok(value) = std::env::var(var) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs {var}"
        );
        eprintln!("skipping {test}: {var} is not set");
        return None;
    };
    Some(value)
}

/// A schema name of the test's own in the database at `url`, dropped if a run before left it.
pub(crate) async fn fresh_schema(url: &str, name: &str) -> String {
    let schema = format!("reference_{name}_{}", std::process::id());
    let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .expect("drop the schema");
    pool.close().await;
    schema
}
