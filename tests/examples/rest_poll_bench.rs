//! Throughput of the REST polling source against the core-banking REST simulator.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! target/release/examples/rest_poll_bench                      # embedded bus
//! scripts/kafka.sh start && target/release/examples/rest_poll_bench --bus kafka
//! ```
//!
//! Starts the simulator (`--customers`, default 100,000; page numbers of `--page-size`,
//! default 500; no auth, faults, rate limit or latency) and the sandbox CRM in this process,
//! and a `hub run` child process (the `hub` binary next to this example's directory, or
//! `--hub PATH`, or `HUB_BIN`) with one `rest_poll` source on the chosen bus and the
//! sandbox CRM as its sink. Waits until every customer is in the CRM and the source's pass
//! has ended, then prints one line:
//!
//! ```text
//! rest_poll_bench customers=N seconds=S poll_records_per_s=X end_to_end_per_s=Y pages=P
//! ```
//!
//! All times count from the start of the hub process. `poll_records_per_s`: records the
//! simulator served (the records read by the source, the boundary record of every keyset
//! step included) / time until the simulator answered its last page. `end_to_end_per_s`:
//! customers in the CRM / time until the last one arrived (`seconds`). `pages`: pages the
//! simulator served. Details (hub start-up, the hub's own pass time) go to stderr. Nothing
//! personal is printed: only counts and times.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::Request;
use axum::middleware::Next;
use hub_tests::core_bank::{CoreBankSim, customer_mapping};
use integration_hub::sandbox_crm::SandboxCrm;

const SOURCE: &str = "abs-rest";
const DATA_PATH: &str = "/api/v1/customers";

struct Args {
    customers: u64,
    page_size: usize,
    bus: String,
    bootstrap: String,
    hub: Option<PathBuf>,
    seed: u64,
    timeout: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        customers: 100_000,
        page_size: 500,
        bus: "embedded".to_owned(),
        bootstrap: hub_tests::kafka::bootstrap(),
        hub: None,
        seed: 20_261_125,
        timeout: Duration::from_secs(1800),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--customers" => out.customers = value()?.parse().context("--customers")?,
            "--page-size" => out.page_size = value()?.parse().context("--page-size")?,
            "--bus" => out.bus = value()?,
            "--bootstrap" => out.bootstrap = value()?,
            "--hub" => out.hub = Some(PathBuf::from(value()?)),
            "--seed" => out.seed = value()?.parse().context("--seed")?,
            "--timeout-secs" => {
                out.timeout = Duration::from_secs(value()?.parse().context("--timeout-secs")?);
            }
            other => bail!(
                "unknown argument {other} (--customers N --page-size N --bus embedded|kafka \
                 --bootstrap HOST:PORT --hub PATH --seed N --timeout-secs N)"
            ),
        }
    }
    if !matches!(out.bus.as_str(), "embedded" | "kafka") {
        bail!("--bus must be embedded or kafka");
    }
    if out.customers == 0 || out.page_size == 0 {
        bail!("--customers and --page-size must be positive");
    }
    Ok(out)
}

/// `--hub`, else `HUB_BIN`, else `hub` in the profile directory this example was built in
/// (`target/<profile>/examples/rest_poll_bench` → `target/<profile>/hub`).
fn hub_bin(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match (arg, std::env::var_os("HUB_BIN")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("hub"))
            .context("cannot find the profile directory of this example")?,
    };
    if !bin.is_file() {
        bail!(
            "no hub binary at {} (build it with `cargo build --release --workspace --bins` or pass --hub)",
            bin.display()
        );
    }
    Ok(bin)
}

fn config_text(a: &Args, prefix: &str, sim: &str, crm: &str, port: u16) -> String {
    let bus = match a.bus.as_str() {
        "kafka" => format!(
            "kind = \"kafka\"\ntopic_prefix = \"{prefix}\"\n\n[bus.kafka]\nbootstrap_servers = \"{}\"\n",
            a.bootstrap
        ),
        _ => format!("kind = \"embedded\"\ntopic_prefix = \"{prefix}\"\n"),
    };
    format!(
        r#"[hub]
data_dir = "var"

[bus]
{bus}
[http]
listen = "127.0.0.1:{port}"

[[sources]]
name = "{SOURCE}"
kind = "rest_poll"

[sources.rest_poll]
base_url = "{sim}"
path = "{DATA_PATH}"
records_path = "data"
rate_limit_per_sec = 0
poll_interval_ms = 600000

[sources.rest_poll.cursor]
kind = "updated_since"
param = "updated_since"
field = "updated_at"

[sources.rest_poll.pagination]
kind = "page_number"
page_size = {page_size}
{mapping}
[[sinks]]
name = "crm"
kind = "crm_rest"

[sinks.crm_rest]
base_url = "{crm}"
token = "file:crm.token"
concurrency = 16
"#,
        page_size = a.page_size,
        mapping = customer_mapping("$", None),
    )
}

/// The hub child process; killed when dropped.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Hub {
    fn check_running(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.0.try_wait()? {
            bail!("hub exited with {status}\n{}", log_tail(log));
        }
        Ok(())
    }
}

/// The last lines of the hub's log (which carries no personal data), for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The `rest_pass_done` line of the hub's log, once there is one.
fn pass_done(log: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter(|l| l.contains("rest_pass_done"))
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "rest_pass_done")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    hub_tests::hub::init();
    let a = args()?;
    let hub_bin = hub_bin(a.hub.as_deref())?;
    let dir = tempfile::tempdir()?;

    // The simulator, with the time of the last customer page it answered.
    let sim = CoreBankSim::new(a.customers, a.seed);
    let last_page: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let first_page: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let app = {
        let (first_page, last_page) = (first_page.clone(), last_page.clone());
        sim.router().layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let (first_page, last_page) = (first_page.clone(), last_page.clone());
                async move {
                    let data = req.uri().path() == DATA_PATH;
                    let response = next.run(req).await;
                    if data && response.status().is_success() {
                        let now = Instant::now();
                        if let Ok(mut f) = first_page.lock() {
                            f.get_or_insert(now);
                        }
                        if let Ok(mut l) = last_page.lock() {
                            *l = Some(now);
                        }
                    }
                    response
                }
            },
        ))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_addr = listener.local_addr()?;
    let _sim_task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let token = "bench-token";
    std::fs::write(dir.path().join("crm.token"), token)?;
    let crm = SandboxCrm::new().with_token(token);
    let (crm_addr, _crm_task) = crm.clone().serve("127.0.0.1:0").await?;

    let prefix = match a.bus.as_str() {
        "kafka" => hub_tests::kafka::unique("restbench"),
        _ => "hub".to_owned(),
    };
    let port = hub_tests::hub::free_port()?;
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        config_text(
            &a,
            &prefix,
            &format!("http://{sim_addr}"),
            &format!("http://{crm_addr}"),
            port,
        ),
    )?;
    let log = dir.path().join("hub.log");
    let log_file = std::fs::File::create(&log)?;

    let started = Instant::now();
    let mut hub = Hub(Command::new(&hub_bin)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", hub_bin.display()))?);
    let total = usize::try_from(a.customers)?;
    let deadline = started + a.timeout;
    let mut last_report = Instant::now();
    let mut done_at = None;
    let pass = loop {
        hub.check_running(&log)?;
        if done_at.is_none() && crm.contacts_len() >= total {
            done_at = Some(started.elapsed());
        }
        if done_at.is_some()
            && let Some(p) = pass_done(&log)
        {
            break p;
        }
        if Instant::now() > deadline {
            bail!(
                "not done within {:?}: {} of {total} customers in the CRM, simulator {:?}\n{}",
                a.timeout,
                crm.contacts_len(),
                sim.stats(),
                log_tail(&log)
            );
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let s = sim.stats();
            eprintln!(
                "  {:>6.1} s: pages {} records served {} CRM contacts {}",
                started.elapsed().as_secs_f64(),
                s.pages_served,
                s.records_served,
                crm.contacts_len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = done_at.unwrap_or_default().as_secs_f64();
    let stats = sim.stats();
    let instant = |m: &Mutex<Option<Instant>>| m.lock().ok().and_then(|g| *g);
    let first = instant(&first_page).context("no page was served")?;
    let last = instant(&last_page).context("no page was served")?;
    let poll_secs = last.duration_since(started).as_secs_f64();
    let contacts = crm.contacts_len();
    let crm_stats = crm.stats();
    let status = {
        // SIGTERM for a clean stop; the guard kills it if that takes too long.
        let _ = Command::new("kill")
            .args(["-TERM", &hub.0.id().to_string()])
            .status();
        let stop = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = hub.0.try_wait()? {
                break Some(s);
            }
            if Instant::now() > stop {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    eprintln!("  bus {} ({prefix}), hub {}", a.bus, hub_bin.display());
    eprintln!(
        "  first page {:.2} s after the hub started, last page {poll_secs:.2} s; hub's own pass: {} pages, {} records, {} published, {} repeated, {} quarantined in {} ms",
        first.duration_since(started).as_secs_f64(),
        pass["pages"],
        pass["records"],
        pass["published"],
        pass["repeated"],
        pass["quarantined"],
        pass["elapsed_ms"]
    );
    eprintln!(
        "  simulator: {} requests, {} pages, {} records; CRM: {} contacts, {} writes, {} version regressions; hub stopped: {}",
        stats.requests,
        stats.pages_served,
        stats.records_served,
        crm_stats.contacts,
        crm_stats.writes,
        crm_stats.version_regressions,
        status.map_or_else(|| "killed".to_owned(), |s| s.to_string())
    );
    if contacts as u64 != a.customers {
        bail!("{contacts} customers in the CRM, expected {}", a.customers);
    }
    println!(
        "rest_poll_bench customers={contacts} seconds={seconds:.2} poll_records_per_s={:.0} end_to_end_per_s={:.0} pages={}",
        stats.records_served as f64 / poll_secs.max(1e-9),
        contacts as f64 / seconds.max(1e-9),
        stats.pages_served
    );
    Ok(())
}
