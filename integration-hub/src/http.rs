//! The hub's HTTP endpoints: `/healthz` (the process lives), `/readyz` (bus and store are
//! reachable), `/metrics` (Prometheus text format), `/api/openapi.json`, and the routers of
//! the APIs, the dashboard and the webhook sources. Every route is registered through
//! [`crate::api_doc::Documented`], which also applies its access rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::api_doc::{Access, Documented, Endpoint};
use crate::bus::Bus;
use crate::store::Store;
use crate::telemetry;

#[derive(Clone)]
pub struct AppState {
    pub bus: Arc<dyn Bus>,
    pub store: Arc<Store>,
    /// Further routes mounted beside the probes (the compliance API).
    pub api: Option<Router>,
}

impl AppState {
    /// The endpoints of a running hub: probes and metrics, the dashboard, the APIs of the
    /// parts configured (behind [`crate::auth`]) and the webhook sources.
    pub fn of_hub(ctx: &crate::pipeline::Ctx) -> anyhow::Result<AppState> {
        let auth = Arc::new(auth_of(&ctx.config)?);
        let mut api = crate::audit::api::routes();
        if let Some(screening) = &ctx.screening {
            api = api.merge(crate::screening::api::routes(screening.clone()));
        }
        if let Some(golden) = &ctx.golden {
            api = api.merge(crate::golden::api::routes(golden.clone()));
        }
        let dlq = Arc::new(crate::dlq::Dlq::for_config(
            ctx.bus.clone(),
            ctx.store.clone(),
            &ctx.config,
        ));
        dlq.clone()
            .spawn_depth_refresh(std::time::Duration::from_secs(
                ctx.config.bus.dlq_depth_refresh_secs,
            ));
        api = api.merge(crate::dlq::api::routes(dlq));
        api = api.merge(crate::quality_api::routes(Arc::new(ctx.config.clone())));
        let reconciler = crate::reconcile::runs::Reconciler::new(&ctx.config);
        reconciler.spawn_schedule();
        api = api.merge(crate::reconcile::api::routes(reconciler));
        // The dashboard page is public like /metrics (counts only, docs/dashboard.md); its
        // `/api/pipelines` is for operators.
        api = api.merge(crate::dashboard::router(
            &ctx.config,
            Arc::new(metrics_text),
        ));
        let mut api = crate::auth::protect(api, auth);
        if let Some(webhooks) = crate::pipeline::webhook_source::router(ctx)? {
            api = api.merge(webhooks);
        }
        Ok(AppState {
            bus: ctx.bus.clone(),
            store: ctx.store.clone(),
            api: Some(api),
        })
    }
}

/// The callers a hub accepts: `[auth]` tokens and OIDC issuers, plus the single tokens of
/// earlier configs (`[http] admin_token` → admin, `[compliance] api_token` → compliance,
/// `[master_data] api_token` → admin), each kept only as its SHA-256.
pub fn auth_of(config: &crate::config::Config) -> anyhow::Result<crate::auth::Auth> {
    use crate::auth::Role;
    let mut auth = match &config.auth {
        Some(section) => section.build(&config.base_dir)?,
        None => crate::auth::Auth::default(),
    };
    let legacy = [
        (
            "http.admin_token",
            config.http.admin_token.as_ref(),
            Role::Admin,
        ),
        (
            "compliance.api_token",
            config
                .compliance
                .as_ref()
                .and_then(|c| c.api_token.as_ref()),
            Role::Compliance,
        ),
        (
            "master_data.api_token",
            config
                .master_data
                .as_ref()
                .and_then(|m| m.api_token.as_ref()),
            Role::Admin,
        ),
    ];
    for (field, reference, role) in legacy {
        if let Some(reference) = reference {
            let token = crate::config::resolve_secret(reference, &config.base_dir)
                .map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
            let name = field.split('.').next().unwrap_or(field);
            auth = auth.with_token(&token, &format!("{name}-token"), &[role]);
        }
    }
    Ok(auth)
}

/// The JSON error every API answers with: `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

pub fn app(state: AppState) -> Router {
    let api = state.api.clone();
    let router = probes().into_router().with_state(state);
    match api {
        Some(api) => router.merge(api),
        None => router,
    }
}

/// The endpoints every hub serves, for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    probes().endpoints().to_vec()
}

fn probes() -> Documented<AppState> {
    Documented::default()
        .route(&HEALTHZ, || async { "ok\n" })
        .route(&READYZ, readyz)
        .route(&METRICS, metrics)
        .route(&OPENAPI, openapi)
}

static HEALTHZ: Endpoint = Endpoint {
    method: "get",
    path: "/healthz",
    tag: "operations",
    summary: "The process is alive",
    access: Access::Public,
    personal_data: false,
    query: &[],
    body: None,
    answer: None,
    errors: &[],
};

static READYZ: Endpoint = Endpoint {
    method: "get",
    path: "/readyz",
    tag: "operations",
    summary: "The bus and the state store answer",
    access: Access::Public,
    personal_data: false,
    query: &[],
    body: None,
    answer: None,
    errors: &[(503, "the bus or the store is unreachable")],
};

static METRICS: Endpoint = Endpoint {
    method: "get",
    path: "/metrics",
    tag: "operations",
    summary: "Prometheus metrics (docs/metrics.md); counts and names, never personal data",
    access: Access::Public,
    personal_data: false,
    query: &[],
    body: None,
    answer: None,
    errors: &[],
};

static OPENAPI: Endpoint = Endpoint {
    method: "get",
    path: "/api/openapi.json",
    tag: "operations",
    summary: "This API's OpenAPI 3.1 document, made from the routes themselves",
    access: Access::Public,
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| crate::api_doc::described("an OpenAPI 3.1 document")),
    errors: &[],
};

async fn openapi() -> Response {
    axum::Json(crate::api_doc::openapi(&crate::api_doc::all_endpoints())).into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    let bus = tokio::time::timeout(Duration::from_secs(5), s.bus.ping()).await;
    let bus_ok = matches!(bus, Ok(Ok(())));
    let store = s.store.clone();
    let store_ok = matches!(
        tokio::task::spawn_blocking(move || store.ping()).await,
        Ok(Ok(()))
    );
    let body = format!(
        "bus: {}\nstore: {}\n",
        if bus_ok { "ok" } else { "unreachable" },
        if store_ok { "ok" } else { "unreachable" }
    );
    let status = if bus_ok && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// The Prometheus text `/metrics` serves; the dashboard reads the same text, so its figures
/// equal the scrape's.
pub fn metrics_text() -> Option<String> {
    telemetry::prometheus().map(|h| telemetry::render(&h))
}

async fn metrics() -> Response {
    match metrics_text() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics recorder unavailable\n",
        )
            .into_response(),
    }
}

/// Binds `listen` and serves until `shutdown` turns true. Returns the bound address.
pub async fn serve(
    listen: &str,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with_tls(listen, None, state, shutdown).await
}

/// Like [`serve`], over TLS when `tls` (`[http.tls]`, paths already resolved) is given:
/// the certificate and key are read before the port is bound, so a bad file stops the
/// start with the field named. Graceful shutdown is the same for both.
pub async fn serve_with_tls(
    listen: &str,
    tls: Option<&crate::config::ListenerTls>,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let tls = tls.map(crate::tls_listener::server_config).transpose()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let router = app(state);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    let handle = match tls {
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "http server failed");
            }
        }),
        Some(config) => {
            let listener = crate::tls_listener::TlsListener::new(listener, config)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "https server failed");
                }
            })
        }
    };
    Ok((addr, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::bus::embedded::EmbeddedBus;

    fn state(dir: &std::path::Path) -> AppState {
        AppState {
            bus: Arc::new(EmbeddedBus::open(&dir.join("bus.db"), 2).unwrap()),
            store: Arc::new(Store::open(&dir.join("state.db")).unwrap()),
            api: None,
        }
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, String) {
        let res = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()));
        assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
        let (status, body) = get(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "bus: ok\nstore: ok\n");

        let stats = telemetry::Stats::default();
        telemetry::prometheus();
        telemetry::delivered(&stats, "crm", "abs", "party", 0.3);
        let (status, body) = get(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("hub_sync_lag_seconds_bucket"), "{body}");
        assert!(body.contains("hub_sink_records_delivered_total"), "{body}");
    }
}
