//! Steady-rate sync lag: what the bank's "real-time within 5 s" asks of the hub.
//!
//! Starts, in this process, the sandbox CRM and a hub pipeline with one webhook source of
//! customers and the CRM REST sink, then sends events at a steady rate (token-bucket pacing:
//! every 10 ms, the events due by then), each a new customer whose event time is the moment
//! it was made. Two ways in:
//!
//! - `--path webhook` (default): one signed `POST /webhooks/core-events` per event, as a core
//!   system sends them; the hub maps it, publishes it and records its id before answering.
//! - `--path direct`: the same event mapped here and published straight to
//!   `<prefix>.canonical`, one publish per 10 ms tick; isolates the bus and the sink.
//!
//! Lag per event = the time the sandbox CRM stored the contact (`updated_at`) − the event
//! time, over the events made after the warm-up. Also printed: the hub's own
//! `hub_sync_lag_seconds` observations (sink acknowledgement − event time, all events), the
//! achieved rate, CRM writes, the backlog when sending stopped and how long it took to drain.
//!
//! ```text
//! cargo run --release -p integration-hub --example lag_bench -- --rate 2000 --seconds 60 --bus embedded
//! cargo run --release -p integration-hub --example lag_bench -- --rate 2000 --seconds 60 --bus kafka --bootstrap 127.0.0.1:9092
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{Semaphore, watch};

use integration_hub::bus::OutMessage;
use integration_hub::config::{self, BusKind};
use integration_hub::pipeline::{self, Ctx, file_source::to_message};
use integration_hub::sandbox_crm::SandboxCrm;
use integration_hub::telemetry::Stats;
use mapping::Envelope;
use mapping::declarative::CompiledMapping;

const SOURCE: &str = "core-events";
const SECRET: &str = "lag-bench-webhook-secret";
const TICK: Duration = Duration::from_millis(10);
/// How long the pipeline may take to deliver what was sent before the run gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Webhook,
    Direct,
}

struct Args {
    rate: u64,
    seconds: u64,
    warmup: u64,
    bus: BusKind,
    bootstrap: String,
    path: Path,
    in_flight: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        rate: 2000,
        seconds: 60,
        warmup: 5,
        bus: BusKind::Embedded,
        bootstrap: "127.0.0.1:9092".into(),
        path: Path::Webhook,
        in_flight: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rate" => a.rate = value()?.parse().context("--rate: events per second")?,
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--warmup" => a.warmup = value()?.parse().context("--warmup: seconds")?,
            "--bootstrap" => a.bootstrap = value()?,
            "--in-flight" => a.in_flight = value()?.parse().context("--in-flight")?,
            "--bus" => {
                a.bus = match value()?.as_str() {
                    "embedded" => BusKind::Embedded,
                    "kafka" => BusKind::Kafka,
                    other => bail!("--bus must be embedded or kafka, not {other}"),
                }
            }
            "--path" => {
                a.path = match value()?.as_str() {
                    "webhook" => Path::Webhook,
                    "direct" => Path::Direct,
                    other => bail!("--path must be webhook or direct, not {other}"),
                }
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if a.rate == 0 || a.seconds == 0 || a.in_flight == 0 {
        bail!("--rate, --seconds and --in-flight must be positive");
    }
    Ok(a)
}

/// One webhook source of customers (event time from the body, to the millisecond) and the
/// CRM sink, as `hub demo` lays them out.
fn config_text(a: &Args, crm: std::net::SocketAddr) -> String {
    let bus = match a.bus {
        BusKind::Embedded => "topic_prefix = \"hub\"\nkind = \"embedded\"\n".to_string(),
        BusKind::Kafka => format!(
            "topic_prefix = \"lag-{}-{}\"\nkind = \"kafka\"\n\n[bus.kafka]\nbootstrap_servers = \"{}\"\n",
            std::process::id(),
            Utc::now().timestamp(),
            a.bootstrap
        ),
    };
    format!(
        r#"[hub]
data_dir = "var"

[bus]
{bus}
[[sources]]
name = "{SOURCE}"
kind = "webhook"

[sources.webhook]
secret = "file:hook.secret"
event_id_path = "$.event_id"

[sources.mapping]
entity = "party"
key = "$.id"
version = "$.v"
event_time = "$.ts"
[sources.mapping.fields]
last_name = "$.ln"
first_name = "$.fn"
middle_name = "$.mn"

[[sinks]]
name = "crm"
kind = "crm_rest"

[sinks.crm_rest]
base_url = "http://{crm}"
token = "file:crm.token"
concurrency = 16
"#
    )
}

/// Customer `i`, made at `at`.
fn event(i: u64, at: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "event_id": format!("ev-{i}"),
        "id": key(i),
        "v": 1,
        "ts": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "ln": "Lagtest",
        "fn": format!("N{i}"),
        "mn": "Benchovich",
    })
}

fn key(i: u64) -> String {
    format!("LAG{i:09}")
}

/// Outcomes of the sends, counted by the send tasks.
#[derive(Default)]
struct Sent {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    /// How long each send took to be acknowledged (a webhook answer, a bus publish), s.
    answer_secs: std::sync::Mutex<Vec<f64>>,
}

impl Sent {
    fn answered(&self, since: Instant) {
        if let Ok(mut v) = self.answer_secs.lock() {
            v.push(since.elapsed().as_secs_f64());
        }
    }
}

/// Where events go: a signed POST per event, or a publish per tick.
enum Sender {
    Webhook {
        client: reqwest::Client,
        url: String,
    },
    Direct {
        ctx: Ctx,
        mapping: Box<CompiledMapping>,
        topic: String,
    },
}

impl Sender {
    fn direct_message(
        mapping: &CompiledMapping,
        ev: &serde_json::Value,
    ) -> anyhow::Result<OutMessage> {
        let m = mapping
            .apply(ev)
            .map_err(|e| anyhow::anyhow!("the bench's own event does not map: {e:?}"))?;
        let at = m
            .event_time
            .context("the bench's event has no event time")?;
        let env = Envelope::new(
            SOURCE,
            m.entity,
            m.op,
            &m.key,
            m.version.unwrap_or(1),
            at,
            Utc::now(),
            m.payload,
        );
        to_message(&env)
    }
}

async fn post(client: reqwest::Client, url: String, body: Vec<u8>, sent: Arc<Sent>) {
    let asked = Instant::now();
    let ts = Utc::now().timestamp();
    let signature = adapters::webhook::sign(SECRET.as_bytes(), ts, &body);
    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", signature)
        .body(body)
        .send()
        .await;
    sent.answered(asked);
    match res {
        Ok(r) if r.status().is_success() => sent.ok.fetch_add(1, Ordering::Relaxed),
        Ok(_) => sent.refused.fetch_add(1, Ordering::Relaxed),
        Err(_) => sent.failed.fetch_add(1, Ordering::Relaxed),
    };
}

struct Quantiles {
    n: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn quantiles(mut v: Vec<f64>) -> Option<Quantiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    // Nearest rank.
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Quantiles {
        n: v.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: v[v.len() - 1],
    })
}

fn show(label: &str, q: &Option<Quantiles>) {
    match q {
        Some(q) => println!(
            "  {label:<28} n {:>7}   p50 {:.3} s   p95 {:.3} s   p99 {:.3} s   max {:.3} s",
            q.n, q.p50, q.p95, q.p99, q.max
        ),
        None => println!("  {label:<28} no deliveries"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();

    let dir = tempfile_dir()?;
    let token = "sandbox-token";
    std::fs::write(dir.join("crm.token"), token)?;
    std::fs::write(dir.join("hook.secret"), SECRET)?;
    let crm = SandboxCrm::new().with_token(token);
    let (crm_addr, _crm_task) = crm.clone().serve("127.0.0.1:0").await?;

    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, config_text(&a, crm_addr))?;
    let config = config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let topic = config.bus.canonical_topic();
    let source = config
        .sources
        .first()
        .context("the generated config has no source")?;
    let mapping = source
        .mapping
        .as_ref()
        .context("the generated source has no mapping")?
        .compile(&|r: &str| Err(format!("no secret {r} in this bench")))
        .map_err(|e| anyhow::anyhow!("mapping: {e:?}"))?;

    let stats = Arc::new(Stats::default());
    let ctx = pipeline::open(config, stats.clone()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = integration_hub::http::AppState::of_hub(&ctx)?;
    let (http_addr, _http_task) =
        integration_hub::http::serve("127.0.0.1:0", state, stop_rx.clone()).await?;
    let hub = tokio::spawn(pipeline::run(ctx.clone(), stop_rx));

    let sender = match a.path {
        Path::Webhook => Sender::Webhook {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(a.in_flight)
                .timeout(Duration::from_secs(30))
                .build()?,
            url: format!("http://{http_addr}/webhooks/{SOURCE}"),
        },
        Path::Direct => Sender::Direct {
            ctx: ctx.clone(),
            mapping: Box::new(mapping),
            topic,
        },
    };

    let total = a.rate * (a.warmup + a.seconds);
    let warm = a.rate * a.warmup;
    println!(
        "lag_bench: {} events/s for {} s (+{} s warm-up) via {} on the {} bus",
        a.rate,
        a.seconds,
        a.warmup,
        match a.path {
            Path::Webhook => "signed webhooks, one event per POST",
            Path::Direct => "direct publishes to the canonical topic",
        },
        match a.bus {
            BusKind::Embedded => "embedded",
            BusKind::Kafka => "kafka",
        }
    );

    // Token bucket: at each tick, everything due by then goes out.
    let sent = Arc::new(Sent::default());
    let permits = Arc::new(Semaphore::new(a.in_flight));
    let mut event_times: Vec<DateTime<Utc>> = Vec::with_capacity(total as usize);
    let mut behind_max = Duration::ZERO;
    let start = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while (event_times.len() as u64) < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * a.rate as f64) as u64).min(total);
        let first = event_times.len() as u64;
        let mut batch = Vec::new();
        for i in first..due {
            let at = Utc::now();
            event_times.push(at);
            batch.push(event(i, at));
        }
        if batch.is_empty() {
            continue;
        }
        // How late the oldest event of this tick is against the steady schedule.
        let scheduled = Duration::from_secs_f64(first as f64 / a.rate as f64);
        behind_max = behind_max.max(start.elapsed().saturating_sub(scheduled + TICK));
        match &sender {
            Sender::Webhook { client, url } => {
                for ev in batch {
                    let permit = permits.clone().acquire_owned().await?;
                    let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
                    let body = serde_json::to_vec(&ev)?;
                    tokio::spawn(async move {
                        post(client, url, body, sent).await;
                        drop(permit);
                    });
                }
            }
            Sender::Direct {
                ctx,
                mapping,
                topic,
            } => {
                let msgs = batch
                    .iter()
                    .map(|ev| Sender::direct_message(mapping, ev))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let n = msgs.len() as u64;
                let permit = permits.clone().acquire_owned().await?;
                let (bus, topic, sent) = (ctx.bus.clone(), topic.clone(), sent.clone());
                tokio::spawn(async move {
                    let asked = Instant::now();
                    let res = bus.publish(&topic, msgs).await;
                    sent.answered(asked);
                    match res {
                        Ok(_) => sent.ok.fetch_add(n, Ordering::Relaxed),
                        Err(_) => sent.failed.fetch_add(n, Ordering::Relaxed),
                    };
                    drop(permit);
                });
            }
        }
    }
    let send_window = start.elapsed();
    // Let the sends in flight finish, then see what is still on its way.
    let _ = permits.acquire_many(a.in_flight as u32).await?;
    let accepted = Stats::get(&sent.ok);
    let delivered_at_end = Stats::get(&stats.delivered) + Stats::get(&stats.skipped);
    let backlog = accepted.saturating_sub(delivered_at_end);
    let drain_start = Instant::now();
    while Stats::get(&stats.delivered) + Stats::get(&stats.skipped) < accepted {
        if drain_start.elapsed() > DRAIN_LIMIT {
            println!("  (gave up waiting for the pipeline to drain after {DRAIN_LIMIT:?})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained_in = drain_start.elapsed();

    // Lag from the CRM's side, for the events made after the warm-up.
    let mut lags = Vec::with_capacity(event_times.len());
    let mut missing = 0u64;
    // Per 10 s of the measured window: is the lag steady or growing?
    let mut windows: Vec<Vec<f64>> = Vec::new();
    for (i, at) in event_times.iter().enumerate().skip(warm as usize) {
        match crm.contact(&key(i as u64)) {
            Some(c) => {
                let lag = (c.updated_at - *at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                lags.push(lag);
                let w = (i as u64 - warm) / (a.rate * 10);
                if windows.len() <= w as usize {
                    windows.resize(w as usize + 1, Vec::new());
                }
                windows[w as usize].push(lag);
            }
            None => missing += 1,
        }
    }
    let hub_lags = stats.lags.lock().map(|l| l.clone()).unwrap_or_default();
    let crm_stats = crm.stats();

    let measured = total - warm;
    println!(
        "  achieved rate                {:.0} events/s ({} events in {:.2} s; sender at most {:.3} s behind schedule)",
        event_times.len() as f64 / send_window.as_secs_f64().max(1e-9),
        event_times.len(),
        send_window.as_secs_f64(),
        behind_max.as_secs_f64()
    );
    println!(
        "  accepted / refused / failed  {} / {} / {}",
        accepted,
        Stats::get(&sent.refused),
        Stats::get(&sent.failed)
    );
    println!(
        "  CRM                          {} contacts, {} writes, {} version regressions",
        crm_stats.contacts, crm_stats.writes, crm_stats.version_regressions
    );
    println!(
        "  backlog when sending stopped {backlog} events (drained in {:.3} s)",
        drained_in.as_secs_f64()
    );
    show(
        &format!("CRM lag, after warm-up ({measured})"),
        &quantiles(lags),
    );
    if missing > 0 {
        println!("  missing from the CRM         {missing} of the measured events");
    }
    for (w, v) in windows.into_iter().enumerate() {
        show(&format!("  {}–{} s", w * 10, (w + 1) * 10), &quantiles(v));
    }
    show("hub_sync_lag_seconds, all", &quantiles(hub_lags));
    let answers = sent
        .answer_secs
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    show(
        match a.path {
            Path::Webhook => "webhook answer time, all",
            Path::Direct => "publish ack time, all",
        },
        &quantiles(answers),
    );

    let _ = stop_tx.send(true);
    hub.await??;
    let _ = std::fs::remove_dir_all(&dir);
    if missing > 0 {
        bail!("{missing} measured events never reached the CRM");
    }
    if crm_stats.version_regressions > 0 {
        bail!(
            "{} older versions overwrote newer ones",
            crm_stats.version_regressions
        );
    }
    Ok(())
}

/// A fresh working folder for the hub's state and the generated config.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hub-lag-bench-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
