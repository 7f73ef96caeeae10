//! The hub's HTTP endpoints: `/healthz` (the process lives), `/readyz` (bus and store are
//! reachable) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

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
    /// The endpoints of a running hub: probes, metrics and, when configured with a token,
    /// the compliance API.
    pub fn of_hub(ctx: &crate::pipeline::Ctx) -> anyhow::Result<AppState> {
        let mut api = None;
        if let (Some(screening), Some(section)) = (&ctx.screening, &ctx.config.compliance)
            && let Some(token) = &section.api_token
        {
            let token = crate::config::resolve_secret(token, &ctx.config.base_dir)
                .map_err(|e| anyhow::anyhow!("compliance.api_token: {e}"))?;
            api = Some(crate::screening::api::router(screening.clone(), token));
        }
        if let (Some(golden), Some(section)) = (&ctx.golden, &ctx.config.master_data)
            && let Some(token) = &section.api_token
        {
            let token = crate::config::resolve_secret(token, &ctx.config.base_dir)
                .map_err(|e| anyhow::anyhow!("master_data.api_token: {e}"))?;
            let stewards = crate::golden::api::router(golden.clone(), token);
            api = Some(match api {
                Some(a) => a.merge(stewards),
                None => stewards,
            });
        }
        if let Some(token) = &ctx.config.http.admin_token {
            let token = crate::config::resolve_secret(token, &ctx.config.base_dir)
                .map_err(|e| anyhow::anyhow!("http.admin_token: {e}"))?;
            let dlq = crate::dlq::Dlq::for_config(ctx.bus.clone(), ctx.store.clone(), &ctx.config);
            let admin = crate::dlq::api::router(Arc::new(dlq), token);
            api = Some(match api {
                Some(a) => a.merge(admin),
                None => admin,
            });
        }
        if let Some(webhooks) = crate::pipeline::webhook_source::router(ctx)? {
            api = Some(match api {
                Some(a) => a.merge(webhooks),
                None => webhooks,
            });
        }
        Ok(AppState {
            bus: ctx.bus.clone(),
            store: ctx.store.clone(),
            api,
        })
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
pub fn bearer_matches(headers: &axum::http::HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|t| {
        t.len() == token.len()
            && t.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    })
}

/// The JSON error every API answers with: `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `router`'s routes answer `401` unless the caller presents `Authorization: Bearer <token>`;
/// `holder` names whose token it is in the answer ("compliance", "admin", ...).
pub fn guarded<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    token: String,
    holder: &'static str,
) -> Router<S> {
    let token: std::sync::Arc<str> = token.into();
    router.route_layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let token = token.clone();
            async move {
                if bearer_matches(req.headers(), &token) {
                    next.run(req).await
                } else {
                    json_error(
                        StatusCode::UNAUTHORIZED,
                        &format!("a valid {holder} bearer token is required"),
                    )
                }
            }
        },
    ))
}

pub fn app(state: AppState) -> Router {
    let api = state.api.clone();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    match api {
        Some(api) => router.merge(api),
        None => router,
    }
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

async fn metrics() -> Response {
    match telemetry::prometheus() {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
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
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let router = app(state);
    let handle = tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
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
