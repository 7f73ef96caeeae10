//! `hub demo` and `hub bench`: the main job, end to end, on a fresh machine.
//!
//! Generates a core-banking customer export (windows-1251), starts the sandbox CRM, writes
//! a config file for them, and runs the real pipeline — file drop, mapping, bus, CRM sink —
//! until every event is settled; then drops the very same file again (which must be a
//! no-op), and reports what happened: rows read, delivered, quarantined with reasons,
//! re-sends skipped, p50/p99 sync lag and throughput. The run fails (non-zero exit) when
//! what reached the CRM differs from what the generator says is valid.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::config::{self, BusKind};
use crate::demo_data::{self, Generated};
use crate::pipeline;
use crate::sandbox_crm::SandboxCrm;
use crate::telemetry::Stats;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub customers: usize,
    pub invalid_ratio: f64,
    pub resend_ratio: f64,
    pub bus: BusKind,
    pub kafka_bootstrap: String,
    /// Working folder; a fresh temporary one when `None`.
    pub dir: Option<PathBuf>,
    /// Serve `/metrics` on this address while running.
    pub http_listen: Option<String>,
    /// Drop the same file a second time and check it is a no-op.
    pub redrop: bool,
}

#[derive(Debug, Clone)]
pub struct DemoReport {
    pub file_name: String,
    pub customers: usize,
    pub generated_rows: usize,
    pub expected_valid: usize,
    pub expected_invalid: usize,
    pub resent: usize,
    pub rows_read: u64,
    pub published: u64,
    pub delivered: u64,
    pub skipped: u64,
    pub quarantined: u64,
    pub quarantine_reasons: Vec<(String, u64)>,
    pub quarantine_file: PathBuf,
    pub files_duplicate: u64,
    pub crm_contacts: usize,
    pub crm_writes: u64,
    pub version_regressions: u64,
    pub lag_p50: f64,
    pub lag_p99: f64,
    /// Valid customers per second, from the file drop to the last CRM acknowledgement.
    pub throughput: f64,
    pub elapsed: Duration,
    pub metrics_url: Option<String>,
    pub dir: PathBuf,
}

/// Runs the demo; `keep_serving` keeps the hub and the sandbox CRM up until Ctrl-C after
/// the report was printed by `on_report`.
pub async fn run(
    opts: DemoOptions,
    keep_serving: bool,
    on_report: impl FnOnce(&DemoReport),
) -> anyhow::Result<DemoReport> {
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("hub-demo-{}", std::process::id())),
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox)?;

    let token = "sandbox-token";
    std::fs::write(dir.join("crm.token"), token)?;
    let crm = SandboxCrm::new().with_token(token);
    let (crm_addr, _crm_task) = crm.clone().serve("127.0.0.1:0").await?;

    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, demo_config(&opts, crm_addr))?;
    let config = config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;

    let generated = demo_data::generate(&demo_data::Options {
        customers: opts.customers,
        invalid_ratio: opts.invalid_ratio,
        resend_ratio: opts.resend_ratio,
        ..demo_data::Options::default()
    });

    let _ = crate::telemetry::prometheus();
    let stats = Arc::new(Stats::default());
    let ctx = pipeline::open(config, stats.clone()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_url = match &opts.http_listen {
        Some(listen) => {
            let state = crate::http::AppState::of_hub(&ctx)?;
            let (addr, _) = crate::http::serve(listen, state, stop_rx.clone()).await?;
            Some(format!("http://{addr}/metrics"))
        }
        None => None,
    };
    let hub = tokio::spawn(pipeline::run(ctx.clone(), stop_rx));

    let file_name = "customers_20261125.csv".to_string();
    let started = Instant::now();
    drop_file(&inbox, &file_name, &generated.bytes)?;
    let expected_events = (generated.valid_keys.len() + generated.resent) as u64;
    wait_until(&stats, Duration::from_secs(600), expected_events, |s| {
        Stats::get(&s.files_ingested) + Stats::get(&s.files_failed) >= 1
            && Stats::get(&s.committed) >= expected_events
    })
    .await?;
    let elapsed = started.elapsed();
    if opts.redrop {
        drop_file(&inbox, "customers_20261125_resend.csv", &generated.bytes)?;
        wait_until(&stats, Duration::from_secs(60), 0, |s| {
            Stats::get(&s.files_duplicate) >= 1
        })
        .await?;
    }

    let quarantine_reasons = stats
        .quarantine_reasons
        .lock()
        .map(|m| {
            let mut v: Vec<(String, u64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
            v.sort_by_key(|e| std::cmp::Reverse(e.1));
            v
        })
        .unwrap_or_default();
    let crm_stats = crm.stats();
    let report = DemoReport {
        file_name: file_name.clone(),
        customers: opts.customers,
        generated_rows: generated.rows,
        expected_valid: generated.valid_keys.len(),
        expected_invalid: generated.invalid.len(),
        resent: generated.resent,
        rows_read: Stats::get(&stats.rows_read),
        published: Stats::get(&stats.events_published),
        delivered: Stats::get(&stats.delivered),
        skipped: Stats::get(&stats.skipped),
        quarantined: Stats::get(&stats.quarantined),
        quarantine_reasons,
        quarantine_file: dir
            .join("inbox")
            .join("quarantine")
            .join(format!("{file_name}.quarantine.csv")),
        files_duplicate: Stats::get(&stats.files_duplicate),
        crm_contacts: crm_stats.contacts,
        crm_writes: crm_stats.writes,
        version_regressions: crm_stats.version_regressions,
        lag_p50: stats.lag_quantile(0.5).unwrap_or(0.0),
        lag_p99: stats.lag_quantile(0.99).unwrap_or(0.0),
        throughput: generated.valid_keys.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed,
        metrics_url,
        dir: dir.clone(),
    };
    on_report(&report);
    check(&report, &generated, &crm)?;

    if keep_serving {
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    hub.await??;
    Ok(report)
}

/// What the CRM holds must be exactly what the generator says is valid.
fn check(r: &DemoReport, generated: &Generated, crm: &SandboxCrm) -> anyhow::Result<()> {
    let missing = generated
        .valid_keys
        .iter()
        .filter(|k| crm.contact(k).is_none())
        .count();
    if missing > 0 || r.crm_contacts != generated.valid_keys.len() {
        bail!(
            "the CRM holds {} contacts, expected {} ({missing} valid customers missing)",
            r.crm_contacts,
            generated.valid_keys.len()
        );
    }
    if r.quarantined != generated.invalid.len() as u64 {
        bail!(
            "{} rows quarantined, expected {}",
            r.quarantined,
            generated.invalid.len()
        );
    }
    if r.version_regressions > 0 {
        bail!(
            "{} older versions overwrote newer ones",
            r.version_regressions
        );
    }
    Ok(())
}

/// Writes the file under a temporary name, renames it into place, then writes the
/// done-marker: how a well-behaved exporter drops a file.
pub fn drop_file(inbox: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = inbox.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, inbox.join(name))?;
    std::fs::write(inbox.join(format!("{name}.done")), b"")?;
    Ok(())
}

/// Waits for `cond`; on a terminal, shows a progress line of events published and delivered
/// against the `expected` events (none when 0).
async fn wait_until(
    stats: &Stats,
    limit: Duration,
    expected: u64,
    cond: impl Fn(&Stats) -> bool,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let show = expected > 0 && std::io::stderr().is_terminal();
    let deadline = Instant::now() + limit;
    let mut last_shown = Instant::now();
    while !cond(stats) {
        if show && last_shown.elapsed() >= Duration::from_millis(200) {
            last_shown = Instant::now();
            eprint!(
                "\r  published {:>8} / {expected}   delivered {:>8}   quarantined {:>6}",
                Stats::get(&stats.events_published),
                Stats::get(&stats.delivered),
                Stats::get(&stats.quarantined)
            );
            let _ = std::io::stderr().flush();
        }
        if Instant::now() > deadline {
            bail!(
                "pipeline did not settle within {limit:?}: read {}, published {}, delivered {}, files failed {}",
                Stats::get(&stats.rows_read),
                Stats::get(&stats.events_published),
                Stats::get(&stats.delivered),
                Stats::get(&stats.files_failed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if show {
        eprint!("\r{:90}\r", "");
    }
    Ok(())
}

fn demo_config(opts: &DemoOptions, crm: std::net::SocketAddr) -> String {
    let prefix = match opts.bus {
        BusKind::Embedded => "hub".to_string(),
        BusKind::Kafka => format!("demo-{}", std::process::id()),
    };
    config_text(&ConfigSpec {
        bus: opts.bus,
        topic_prefix: &prefix,
        kafka_bootstrap: &opts.kafka_bootstrap,
        http_listen: None,
        crm_base_url: &format!("http://{crm}"),
        crm_extra: "",
    })
}

/// What a generated pipeline config varies; the rest is the demo's layout: one file-drop
/// source with the generator's columns in `inbox/`, one REST CRM sink with its token in
/// `crm.token`, state in `var/`.
pub struct ConfigSpec<'a> {
    pub bus: BusKind,
    pub topic_prefix: &'a str,
    pub kafka_bootstrap: &'a str,
    pub http_listen: Option<&'a str>,
    pub crm_base_url: &'a str,
    /// Further `[sinks.crm_rest]` lines (timeouts, attempts).
    pub crm_extra: &'a str,
}

/// The config file text for `spec`.
pub fn config_text(spec: &ConfigSpec<'_>) -> String {
    let mut bus = format!("topic_prefix = \"{}\"\n", spec.topic_prefix);
    match spec.bus {
        BusKind::Embedded => bus.push_str("kind = \"embedded\"\n"),
        BusKind::Kafka => bus.push_str(&format!(
            "kind = \"kafka\"\n\n[bus.kafka]\nbootstrap_servers = \"{}\"\n",
            spec.kafka_bootstrap
        )),
    }
    let http = spec
        .http_listen
        .map(|l| format!("[http]\nlisten = \"{l}\"\n\n"))
        .unwrap_or_default();
    format!(
        r#"# Written by `hub demo`.
[hub]
data_dir = "var"

[bus]
{bus}
{http}[[sources]]
name = "abs-customers"
kind = "file_drop"
entity = "party"

[sources.file_drop]
inbox = "inbox"
encoding = "windows-1251"
delimiter = ";"
done_marker = ".done"
poll_interval_ms = 100

[sources.columns]
{columns}
[[sinks]]
name = "crm"
kind = "crm_rest"

[sinks.crm_rest]
base_url = "{crm}"
token = "file:crm.token"
concurrency = 16
{extra}"#,
        crm = spec.crm_base_url,
        extra = spec.crm_extra,
        columns = demo_data::COLUMNS_TOML
    )
}

/// Prints the report as the demo's summary.
pub fn print_report(r: &DemoReport) {
    println!("hub demo: core-bank customer export → hub → sandbox CRM");
    println!(
        "  file                {} ({} customers, {} rows, windows-1251)",
        r.file_name, r.customers, r.generated_rows
    );
    println!("  rows read           {}", r.rows_read);
    println!("  events published    {}", r.published);
    println!(
        "  delivered to CRM    {}   (CRM contacts: {}, expected {}; CRM writes: {})",
        r.delivered, r.crm_contacts, r.expected_valid, r.crm_writes
    );
    println!(
        "  re-sent rows        {}   (skipped: same version already delivered; skipped total {})",
        r.resent, r.skipped
    );
    println!(
        "  quarantined         {}   (expected {}) → {}",
        r.quarantined,
        r.expected_invalid,
        r.quarantine_file.display()
    );
    for (field, n) in &r.quarantine_reasons {
        println!("      {field:<16} {n}");
    }
    println!(
        "  re-dropped file     {}   (same SHA-256: nothing ingested)",
        r.files_duplicate
    );
    println!("  version regressions {}", r.version_regressions);
    println!(
        "  sync lag            p50 {:.3} s   p99 {:.3} s",
        r.lag_p50, r.lag_p99
    );
    println!(
        "  throughput          {:.0} customers/s ({:.2} s from drop to last CRM ack)",
        r.throughput,
        r.elapsed.as_secs_f64()
    );
    if let Some(url) = &r.metrics_url {
        println!("  metrics             {url}");
    }
    println!("  working folder      {}", r.dir.display());
}
