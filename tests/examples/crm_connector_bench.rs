//! Throughput of the vendor CRM connectors against their simulators, at each CRM's own
//! rate limit, with and without batching.
//!
//! ```text
//! cargo run --release -p hub-tests --example crm_connector_bench -- \
//!     [--records 5000] [--unbatched-records 500] [--bitrix-unbatched-records 60] \
//!     [--latency-ms 0] [--only salesforce,dynamics,bitrix24]
//! ```
//!
//! Every simulator runs in this process on 127.0.0.1, with `--latency-ms` added to every
//! answer (a round trip to a cloud CRM; 0 measures the connector and simulator alone):
//! - Salesforce: collections of 200 (batched) and single upserts (unbatched). The org's limit
//!   is a 24-hour request budget, not a rate, so it does not slow a run down; the line
//!   reports the requests spent.
//! - Dynamics 365: one request per record (the connector does not use `$batch`), 8 in flight
//!   (the default) and 1. Service protection as documented: 6,000 requests per 5-minute
//!   sliding window, 52 concurrent.
//! - Bitrix24: `batch` calls of 50 commands (batched) and direct calls (unbatched), the
//!   client's default pacing (2 requests/s, burst 40) against the portal's leaky bucket
//!   (blocks above 50, drains 2/s). Two requests per chunk (finds, then writes).
//!
//! One line per run: `<crm> <mode> records=N seconds=S records_per_s=X requests=R
//! rejected_by_limit=L failed=F`. Only counts and times are printed, no record content.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use adapters::crm::bitrix24::{Bitrix24Config, Bitrix24Connector};
use adapters::crm::connector::{ContactWrite, CrmConnector, WriteOutcome};
use adapters::crm::dynamics::{DynamicsConfig, DynamicsConnector};
use adapters::crm::salesforce::{SalesforceConfig, SalesforceConnector};
use anyhow::{Context, bail};
use hub_tests::crm_sim::bitrix24::Bitrix24Sim;
use hub_tests::crm_sim::dynamics::DynamicsSim;
use hub_tests::crm_sim::salesforce::SalesforceSim;
use serde_json::json;

const TOKEN: &str = "bench-token";

struct Args {
    records: usize,
    unbatched: usize,
    bitrix_unbatched: usize,
    latency: Duration,
    only: Vec<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        records: 5_000,
        unbatched: 500,
        bitrix_unbatched: 60,
        latency: Duration::ZERO,
        only: vec!["salesforce".into(), "dynamics".into(), "bitrix24".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--records" => out.records = value()?.parse().context("--records")?,
            "--unbatched-records" => {
                out.unbatched = value()?.parse().context("--unbatched-records")?;
            }
            "--bitrix-unbatched-records" => {
                out.bitrix_unbatched = value()?.parse().context("--bitrix-unbatched-records")?;
            }
            "--latency-ms" => {
                out.latency = Duration::from_millis(value()?.parse().context("--latency-ms")?);
            }
            "--only" => out.only = value()?.split(',').map(str::to_owned).collect(),
            other => bail!(
                "unknown argument {other} (--records N --unbatched-records N \
                 --bitrix-unbatched-records N --latency-ms N --only salesforce,dynamics,bitrix24)"
            ),
        }
    }
    Ok(out)
}

/// A synthetic customer (no real person).
fn person(i: usize) -> ContactWrite {
    ContactWrite {
        external_id: format!("G{i:010}"),
        version: 1,
        source: "bench".to_owned(),
        envelope_id: format!("env-{i}"),
        fields: json!({
            "kind": "person",
            "last_name": format!("Benchov{i}"),
            "first_name": "Petr",
            "birth_date": "1975-05-06",
            "phones": [format!("+7901{i:07}")],
            "emails": [format!("bench{i}@example.test")],
            "addresses": [{ "kind": "primary", "text": format!("Bench avenue {i}"), "postal_code": "190000" }],
        }),
    }
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Writes `n` records through `connector`; prints the line. `stats` reads the simulator's
/// (requests, rejected by the limit) after the run.
async fn run(
    crm: &str,
    mode: &str,
    connector: &dyn CrmConnector,
    n: usize,
    stats: impl Fn() -> (u64, u64),
) -> anyhow::Result<()> {
    let batch: Vec<ContactWrite> = (0..n).map(person).collect();
    let started = Instant::now();
    let out = connector.write_batch(&batch).await;
    let seconds = started.elapsed().as_secs_f64();
    let failed = out
        .iter()
        .filter(|o| !matches!(o, WriteOutcome::Written { .. }))
        .count();
    let (requests, limited) = stats();
    println!(
        "{crm} {mode} records={n} seconds={seconds:.2} records_per_s={:.1} requests={requests} \
         rejected_by_limit={limited} failed={failed}",
        n as f64 / seconds.max(f64::EPSILON)
    );
    if failed > 0 {
        bail!("{crm} {mode}: {failed} records not written");
    }
    Ok(())
}

async fn salesforce(a: &Args) -> anyhow::Result<()> {
    for (mode, batch_size, n) in [("batched", 200, a.records), ("unbatched", 1, a.unbatched)] {
        let sim = SalesforceSim::new(TOKEN);
        sim.set_latency(a.latency);
        let (addr, _) = sim.serve(any_port()).await?;
        let mut cfg = SalesforceConfig::new(format!("http://{addr}"), TOKEN);
        cfg.batch_size = batch_size;
        let connector = SalesforceConnector::new(cfg)?;
        let mode = format!("{mode} batch_size={batch_size}");
        run("salesforce", &mode, &connector, n, || {
            let s = sim.stats();
            (s.requests, s.limit_rejections)
        })
        .await?;
    }
    Ok(())
}

async fn dynamics(a: &Args) -> anyhow::Result<()> {
    for (mode, concurrency, n) in [("concurrent", 8, a.records), ("serial", 1, a.unbatched)] {
        let sim = DynamicsSim::new(TOKEN);
        sim.set_latency(a.latency);
        sim.set_request_limit(Some((6_000, Duration::from_secs(300))));
        let (addr, _) = sim.serve(any_port()).await?;
        let mut cfg = DynamicsConfig::new(format!("http://{addr}"), TOKEN);
        cfg.concurrency = concurrency;
        let connector = DynamicsConnector::new(cfg)?;
        let mode = format!("{mode} concurrency={concurrency}");
        run("dynamics", &mode, &connector, n, || {
            let s = sim.stats();
            (s.requests, s.throttled)
        })
        .await?;
    }
    Ok(())
}

async fn bitrix24(a: &Args) -> anyhow::Result<()> {
    for (mode, batch_size, n) in [
        ("batched", 50, a.records),
        ("unbatched", 1, a.bitrix_unbatched),
    ] {
        let sim = Bitrix24Sim::new("1", "bench-secret");
        sim.set_latency(a.latency);
        let (addr, _) = sim.serve(any_port()).await?;
        let mut cfg = Bitrix24Config::new(sim.webhook_url(addr));
        cfg.batch_size = batch_size;
        let connector = Bitrix24Connector::new(cfg)?;
        let mode = format!("{mode} batch_size={batch_size}");
        run("bitrix24", &mode, &connector, n, || {
            let s = sim.stats();
            (s.requests, s.limit_rejections)
        })
        .await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    println!(
        "crm_connector_bench records={} unbatched_records={} bitrix_unbatched_records={} latency_ms={}",
        a.records,
        a.unbatched,
        a.bitrix_unbatched,
        a.latency.as_millis()
    );
    for crm in &a.only {
        match crm.as_str() {
            "salesforce" => salesforce(&a).await?,
            "dynamics" => dynamics(&a).await?,
            "bitrix24" => bitrix24(&a).await?,
            other => bail!("unknown crm {other} (salesforce, dynamics, bitrix24)"),
        }
    }
    Ok(())
}
