//! For the PostgreSQL runs of the stores' suites: the server is `HUB_TEST_POSTGRES` (started
//! by `scripts/postgres.sh start`); each test works in a schema of its own, so the tests run
//! in parallel. Without the variable they fail, never skip.

use std::sync::atomic::{AtomicU64, Ordering};

/// The test server's URL; `suite` names who needs it in the failure.
pub(crate) fn postgres_url(suite: &str) -> String {
    match std::env::var("HUB_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "HUB_TEST_POSTGRES is not set: run `scripts/postgres.sh start` and \
             `export HUB_TEST_POSTGRES=$(scripts/postgres.sh url)` ({suite}'s PostgreSQL \
             tests never skip)"
        ),
    }
}

/// A schema of its own for one test, dropped with its tables at the end.
pub(crate) struct PgSchema {
    /// The server's URL.
    pub url: String,
    pub name: String,
}

impl PgSchema {
    /// Creates a schema named `<prefix>_<process>_<n>_<nanos>`, unique across processes and
    /// tests.
    pub(crate) fn create(suite: &str, prefix: &str) -> PgSchema {
        static N: AtomicU64 = AtomicU64::new(0);
        let url = postgres_url(suite);
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos.rem_euclid(1_000_000_000)
        );
        let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls)
            .expect("connect to HUB_TEST_POSTGRES (is `scripts/postgres.sh start` running?)");
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create test schema");
        PgSchema { url, name }
    }

    /// A URL whose connections work in this schema.
    pub(crate) fn search_path_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }

    /// The store's URL: the schema, and its name as application name, which lets a test find
    /// the store's connections on the server.
    pub(crate) fn store_url(&self) -> String {
        format!("{}&application_name={}", self.search_path_url(), self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = ::postgres::Client::connect(&self.url, ::postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
