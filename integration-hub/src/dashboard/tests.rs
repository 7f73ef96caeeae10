use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::config::BusKind;
use crate::demo::{ConfigSpec, config_text};

fn config() -> Config {
    let text = config_text(&ConfigSpec {
        bus: BusKind::Embedded,
        topic_prefix: "hub",
        kafka_bootstrap: "",
        http_listen: Some("127.0.0.1:0"),
        crm_base_url: "http://127.0.0.1:1",
        crm_extra: "",
    });
    crate::config::parse(&text, std::env::temp_dir()).expect("the demo config parses")
}

/// A dashboard over metrics text the test sets.
fn dashboard(text: &str) -> (Arc<Dashboard>, Arc<Mutex<Option<String>>>) {
    let metrics = Arc::new(Mutex::new(Some(text.to_string())));
    let m = metrics.clone();
    let render: Render = Arc::new(move || m.lock().ok().and_then(|t| t.clone()));
    (
        Dashboard::new(&config(), render, Duration::from_secs(5), 4),
        metrics,
    )
}

async fn get(d: Arc<Dashboard>, uri: &str) -> (StatusCode, Option<String>, String) {
    let res = routes(d)
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let csp = res
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, csp, String::from_utf8_lossy(&body).into_owned())
}

const METRICS: &str = r#"# TYPE hub_sink_records_delivered_total counter
hub_sink_records_delivered_total{sink="crm",source="abs-customers",entity="party"} 12
hub_sink_circuit_state{sink="crm"} 2
hub_sync_lag_seconds_sum{source="abs-customers",entity="party"} 1.5
hub_sync_lag_seconds_count{source="abs-customers",entity="party"} 12
hub_odd{v="x"} NaN
"#;

#[tokio::test]
async fn api_sends_every_series_and_the_pipelines_with_state() {
    let (d, _) = dashboard(METRICS);
    let (status, _, body) = get(d, "/api/dashboard").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 5);
    assert_eq!(series[0]["name"], "hub_sink_records_delivered_total");
    assert_eq!(series[0]["labels"]["source"], "abs-customers");
    assert_eq!(series[0]["value"], 12.0);
    assert_eq!(series[4]["value"], "NaN");
    let p = &v["pipelines"];
    assert_eq!(p["sources"][0]["name"], "abs-customers");
    assert_eq!(p["sources"][0]["kind"], "file_drop");
    assert_eq!(p["sources"][0]["state"], "running");
    assert_eq!(p["sinks"][0]["name"], "crm");
    assert_eq!(p["sinks"][0]["kind"], "crm_rest");
    assert_eq!(p["sinks"][0]["state"], "circuit open");
    assert_eq!(p["stages"], serde_json::json!([]));
    // The config's URLs and secret references never reach the page.
    assert!(!body.contains("127.0.0.1"), "{body}");
    assert!(!body.contains("crm.token"), "{body}");
}

#[tokio::test]
async fn history_is_bounded_and_served_as_rates() {
    let (d, metrics) = dashboard(METRICS);
    for delivered in [12, 22, 32, 42, 52, 62] {
        *metrics.lock().unwrap() = Some(METRICS.replace(" 12\n", &format!(" {delivered}\n")));
        d.sample();
        // Samples need distinct times for a rate.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, body) = get(d, "/api/dashboard").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["history"]["capacity"], 4);
    let points = v["history"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "4 samples kept, 3 intervals");
    for p in points {
        assert!(p["delivered_per_sec"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["oldest_undelivered_seconds"].is_null(), "{p}");
    }
}

#[tokio::test]
async fn without_a_recorder_the_api_says_so() {
    let (d, metrics) = dashboard(METRICS);
    *metrics.lock().unwrap() = None;
    d.sample();
    let (status, _, body) = get(d, "/api/dashboard").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("metrics recorder unavailable"), "{body}");
}

#[tokio::test]
async fn unreadable_metrics_are_an_error_naming_the_line() {
    let (d, _) = dashboard("ok 1\nbroken{x=\"1\" 2\n");
    let (status, _, body) = get(d, "/api/dashboard").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("line 2"), "{body}");
}

#[tokio::test]
async fn page_and_assets_are_embedded_and_load_nothing_from_elsewhere() {
    let (d, _) = dashboard(METRICS);
    let (status, csp, page) = get(d.clone(), "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(csp.unwrap().contains("script-src 'self'"));
    assert!(page.contains("src=\"/dashboard/dashboard.js\""), "{page}");
    assert!(page.contains("href=\"/dashboard/dashboard.css\""), "{page}");
    for (uri, needle) in [
        ("/dashboard/dashboard.js", "data-metric"),
        ("/dashboard/dashboard.css", "svg.chart"),
    ] {
        let (status, _, body) = get(d.clone(), uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(body.contains(needle), "{uri}");
    }
    for asset in [PAGE, SCRIPT, STYLE] {
        for line in asset.lines() {
            // The SVG namespace is a name, not a fetch.
            let fetches =
                line.contains("http://") || line.contains("https://") || line.contains("//cdn");
            assert!(
                !fetches || line.contains("http://www.w3.org/2000/svg"),
                "an asset refers to another origin: {line}"
            );
        }
    }
}
