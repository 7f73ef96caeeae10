//! `hub`: the command line of the integration hub.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use integration_hub::config::{self, BusKind};
use integration_hub::demo::{self, DemoOptions};
use integration_hub::telemetry::{self, Stats};
use integration_hub::{http, pipeline};

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "Integration hub: legacy banking systems → CRM"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Json, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Copy, ValueEnum)]
enum BusArg {
    Embedded,
    Kafka,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file: every problem at once, with its location; non-zero exit if any.
    Validate {
        #[arg(long)]
        config: PathBuf,
        /// Also check that the Kafka brokers and the CRMs answer.
        #[arg(long)]
        connect: bool,
    },
    /// Run the sources, the bus and the sinks of a config until SIGINT or SIGTERM.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// The main job on the embedded bus: a 10,000-customer windows-1251 export into a
    /// sandbox CRM, with a summary.
    Demo {
        #[arg(long, default_value_t = 10_000)]
        customers: usize,
        /// Keep running after the summary and serve /metrics until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Address for /metrics with --serve.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: String,
        /// Working folder (default: a fresh temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure end-to-end throughput and sync lag: file drop → CRM acknowledgement.
    Bench {
        #[arg(long, default_value_t = 100_000)]
        customers: usize,
        #[arg(long, value_enum, default_value_t = BusArg::Embedded)]
        bus: BusArg,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Screen names against the sanctions/PEP lists of a config and print every hit with its
    /// explanation; `hub screen eval` measures the matcher.
    #[command(args_conflicts_with_subcommands = true)]
    Screen {
        #[command(subcommand)]
        eval: Option<ScreenCommand>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// A CSV of parties: `name` and optionally kind, birth_date, inn, ogrn, passport,
        /// nationality.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Score from which a match is a hit (default: the config's).
        #[arg(long)]
        threshold: Option<f64>,
        /// Full names to screen, in any script and word order.
        names: Vec<String>,
    },
    /// Dry run of a source's mapping on a sample: prints the canonical records and every
    /// error (record, field, reason); non-zero exit when any record failed.
    Map {
        #[arg(long)]
        config: PathBuf,
        /// The source whose mapping is used.
        #[arg(long)]
        source: String,
        /// A sample: JSON (array or one object per line), CSV, or a bank file.
        #[arg(long)]
        input: PathBuf,
    },
    /// Data-quality report over the raw rows of the file-drop sources of customers: valid
    /// contacts, complete mandatory fields, duplicates; exit 0 when every source passes the
    /// bars, 1 when one fails, 2 on errors.
    Quality(integration_hub::quality_cli::QualityArgs),
    /// Re-send a whole source or a selection of it (ids, a deterministic pilot sample) to
    /// repair the CRM, or show with --dry-run what that would change; exit 0 done, 1 some
    /// records failed, 2 configuration error (docs/backfill.md).
    Backfill(integration_hub::backfill::BackfillArgs),
    /// Compare a source (the core bank) with the CRM by counts and per-record hashes:
    /// missing, extra and different records by id; exit 0 clean, 1 differences, 2 error
    /// (docs/reconcile.md).
    Reconcile(integration_hub::reconcile::ReconcileArgs),
    /// Master data: measure record matching.
    Mdm {
        #[command(subcommand)]
        command: MdmCommand,
    },
    /// Dead letters: list them, show one, replay or discard them (docs/operations-dlq.md).
    Dlq {
        #[command(subcommand)]
        command: integration_hub::dlq::cli::DlqCommand,
    },
    /// An event's path through the hub (read, published, screened, merged, delivered, with
    /// times), from the hub's JSON logs.
    Trace {
        /// The event's trace id (the envelope's `trace_id`, a `trace_id` header on the bus).
        id: String,
        /// JSON log files of the hub, or folders of them (every instance's logs may be given).
        #[arg(long, required = true, num_args = 1..)]
        log: Vec<PathBuf>,
    },
    /// API callers: make a token (printed once; the config keeps only its SHA-256).
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// The audit log: verify its hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Field-encryption keys (docs/pii.md).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the sandbox CRM alone (the REST CRM API the generic sink speaks).
    SandboxCrm {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// Bearer token required from clients (none when absent).
        #[arg(long)]
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum ScreenCommand {
    /// Precision/recall on labelled name pairs (`schema,name1,name2,is_match`), alerts per
    /// 1,000 people on no list, recall on rewritten UN entries.
    Eval {
        /// Labelled pairs; last line `precision=P recall=R f1=F threshold=T`.
        #[arg(long)]
        pairs: Option<PathBuf>,
        /// People on no list (`full_name,...,date_of_birth,...,nationality`), screened against
        /// the lists of --config; last line `alerts_per_1000=X`.
        #[arg(long)]
        negatives: Option<PathBuf>,
        /// Recall on UN-listed persons rewritten in Cyrillic, reordered, shortened and
        /// re-romanised (needs a UN list in --config).
        #[arg(long)]
        un_variants: bool,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        threshold: Option<f64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored personal value not under `[encryption] active` (older keys,
    /// plain values) in small batches, each its own transaction: safe while the hub runs.
    Rotate {
        #[arg(long)]
        config: PathBuf,
        /// Rows per batch (transaction).
        #[arg(long, default_value_t = 200)]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// A new API token for a caller: prints the token once and the `[[auth.tokens]]` entry
    /// (with the token's SHA-256) to add to the config.
    Token {
        /// The caller's name, as the audit log will show it.
        #[arg(long)]
        name: String,
        /// A role: operator, compliance, auditor or admin (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain; exit 0 when intact, 1 naming every edited, reordered or deleted
    /// entry, 2 on errors.
    Verify {
        /// The hub's config (the log is `[audit] path`, by default `<data_dir>/audit.log`).
        #[arg(long, conflicts_with = "file")]
        config: Option<PathBuf>,
        /// An audit log file (SHA-256 chain; use --config for a keyed chain).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MdmCommand {
    /// Pair precision/recall of the matcher on FEBRL-layout files: one file deduplicates,
    /// two link; last line `precision=P recall=R f1=F`.
    Eval {
        #[arg(long, num_args = 1..=2, required = true)]
        febrl: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Command::Demo { .. }
            | Command::Bench { .. }
            | Command::Screen { .. }
            | Command::Mdm { .. }
            | Command::Quality(_)
            | Command::Reconcile(_)
            | Command::Map { .. }
            | Command::Trace { .. }
            | Command::Auth { .. }
            | Command::Audit { .. }
    );
    init_logs(cli.log_format, if quiet { "warn" } else { "info" });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every line passes the PII masking layer (docs/pii.md).
        .with_writer(integration_hub::pii_mask::MaskingMakeWriter::new(
            std::io::stderr,
        ));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Trace { id, log } => {
            let (found, scanned) = integration_hub::trace::find(&id, &log)?;
            print!("{}", integration_hub::trace::render(&id, &found));
            if scanned == 0 {
                eprintln!(
                    "no trace lines in the logs given: the hub writes them with --log-format json \
                     (the default) unless RUST_LOG turns hub_trace off"
                );
            }
            Ok(if found.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Auth {
            command: AuthCommand::Token { name, roles },
        } => {
            let mut parsed = Vec::new();
            for r in &roles {
                match integration_hub::auth::Role::parse(r) {
                    Some(role) => parsed.push(role),
                    None => anyhow::bail!(
                        "unknown role `{r}`: one of operator, compliance, auditor, admin"
                    ),
                }
            }
            let (token, hash) = integration_hub::auth::tokens::generate()?;
            println!("token (shown once; hand it to the caller): {token}");
            println!("add to the config:\n");
            print!(
                "{}",
                integration_hub::auth::tokens::config_entry(&name, &parsed, &hash)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Rotate { config, batch },
        } => {
            let cfg = config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let totals = tokio::task::spawn_blocking(move || {
                integration_hub::crypto::rotate::run_config(&cfg, batch, &mut |line| {
                    println!("{line}")
                })
            })
            .await??;
            println!(
                "done: {} rows read, {} re-encrypted",
                totals.scanned, totals.changed
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify { config, file },
        } => {
            use integration_hub::audit;
            let (path, chain) = match (config, file) {
                (Some(c), _) => {
                    let cfg = config::load(&c).map_err(|e| anyhow::anyhow!("{e}"))?;
                    audit::of_config(&cfg)?
                }
                (None, Some(f)) => (f, audit::Chain::Sha256),
                (None, None) => anyhow::bail!("give --config or --file"),
            };
            let report = match audit::verify::verify(&path, &chain) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            for p in &report.problems {
                println!("{}: {p}", path.display());
            }
            println!(
                "{}: {} entries, last {}: {}",
                path.display(),
                report.entries,
                report.last_seq,
                if report.intact() {
                    "intact"
                } else {
                    "TAMPERED"
                }
            );
            Ok(if report.intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Validate { config, connect } => Ok(validate(&config, connect).await),
        Command::Run { config } => {
            let cfg = config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let env = config::check_environment(&cfg);
            if !env.is_empty() {
                anyhow::bail!("environment not ready:\n  {}", env.join("\n  "));
            }
            run_hub(cfg).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            customers,
            serve,
            listen,
            dir,
        } => {
            let opts = DemoOptions {
                customers,
                invalid_ratio: 0.03,
                resend_ratio: 0.01,
                bus: BusKind::Embedded,
                kafka_bootstrap: String::new(),
                dir,
                http_listen: serve.then_some(listen),
                redrop: true,
            };
            demo::run(opts, serve, |r| {
                demo::print_report(r);
                if serve {
                    println!("serving; press Ctrl-C to stop");
                }
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            customers,
            bus,
            bootstrap,
            dir,
        } => {
            let kind = match bus {
                BusArg::Embedded => BusKind::Embedded,
                BusArg::Kafka => BusKind::Kafka,
            };
            let opts = DemoOptions {
                customers,
                invalid_ratio: 0.0,
                resend_ratio: 0.0,
                bus: kind,
                kafka_bootstrap: bootstrap,
                dir,
                http_listen: None,
                redrop: false,
            };
            let r = demo::run(opts, false, |_| {}).await?;
            println!(
                "bench bus={} customers={} elapsed_s={:.2} throughput_per_s={:.0} lag_p50_s={:.3} lag_p99_s={:.3}",
                match kind {
                    BusKind::Embedded => "embedded",
                    BusKind::Kafka => "kafka",
                },
                r.expected_valid,
                r.elapsed.as_secs_f64(),
                r.throughput,
                r.lag_p50,
                r.lag_p99
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Screen {
            eval,
            config,
            input,
            threshold,
            names,
        } => screen(eval, config, input, threshold, names),
        Command::Map {
            config,
            source,
            input,
        } => {
            let cfg = config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = std::io::stdout().lock();
            let summary = integration_hub::mapping_cli::run(&cfg, &source, &input, &mut out)?;
            Ok(if summary.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Quality(args) => integration_hub::quality_cli::run(&args),
        Command::Backfill(args) => Ok(integration_hub::backfill::run(&args).await),
        Command::Reconcile(args) => Ok(integration_hub::reconcile::run(&args).await),
        Command::Mdm {
            command: MdmCommand::Eval { febrl },
        } => {
            let paths: Vec<&std::path::Path> = febrl.iter().map(PathBuf::as_path).collect();
            let report = mapping::mdm::febrl::eval(&paths).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq { command } => {
            integration_hub::dlq::cli::run(command, &mut std::io::stdout()).await
        }
        Command::SandboxCrm { listen, token } => {
            let mut crm = integration_hub::sandbox_crm::SandboxCrm::new();
            if let Some(t) = token {
                crm = crm.with_token(&t);
            }
            let (addr, task) = crm.serve(&listen).await?;
            println!("sandbox CRM on http://{addr}");
            task.await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `hub screen` and `hub screen eval`.
fn screen(
    eval: Option<ScreenCommand>,
    config: Option<PathBuf>,
    input: Option<PathBuf>,
    threshold: Option<f64>,
    names: Vec<String>,
) -> anyhow::Result<ExitCode> {
    use integration_hub::screening::cli;
    let load = |p: &PathBuf| config::load(p).map_err(|e| anyhow::anyhow!("{e}"));
    let mut out = std::io::stdout().lock();
    match eval {
        Some(ScreenCommand::Eval {
            pairs,
            negatives,
            un_variants,
            config,
            threshold,
        }) => {
            if pairs.is_none() && negatives.is_none() && !un_variants {
                anyhow::bail!("give --pairs FILE, --negatives FILE or --un-variants");
            }
            let cfg = config.as_ref().map(load).transpose()?;
            cli::eval(
                cfg.as_ref(),
                pairs.as_deref(),
                negatives.as_deref(),
                un_variants,
                threshold,
                &mut out,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let config = config.context("--config FILE is required: it names the lists")?;
            if names.is_empty() && input.is_none() {
                anyhow::bail!("give names to screen or --input parties.csv");
            }
            let cfg = load(&config)?;
            let engine = cli::engine_of(&cfg, threshold)?;
            let hits = cli::screen(&engine, &names, input.as_deref(), &mut out)?;
            // Exit 1 when anything hit, so scripts can react.
            Ok(if hits > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Static problems first (every one, with its line), then what the machine must provide,
/// then, with `--connect`, whether the peers answer; each reported separately.
async fn validate(path: &std::path::Path, connect: bool) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}: configuration ok", path.display());
    let mut failed = false;
    let env = config::check_environment(&cfg);
    if !env.is_empty() {
        failed = true;
        eprintln!("{}: environment: {} problem(s)", path.display(), env.len());
        for p in &env {
            eprintln!("  {p}");
        }
    }
    if connect {
        let peers = check_connectivity(&cfg).await;
        if peers.is_empty() {
            println!("{}: connectivity ok", path.display());
        } else {
            failed = true;
            eprintln!(
                "{}: connectivity: {} problem(s)",
                path.display(),
                peers.len()
            );
            for p in &peers {
                eprintln!("  {p}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Asks each peer for an answer: the Kafka brokers for metadata, each CRM for any HTTP
/// response at its base URL.
async fn check_connectivity(cfg: &config::Config) -> Vec<String> {
    use std::time::Duration;
    let mut out = Vec::new();
    if let (BusKind::Kafka, Some(k)) = (cfg.bus.kind, &cfg.bus.kafka) {
        match integration_hub::bus::kafka::KafkaBus::new(k) {
            Ok(bus) => {
                use integration_hub::bus::Bus;
                if let Err(e) = bus.ping().await {
                    out.push(format!("bus.kafka {}: {e}", k.bootstrap_servers));
                }
            }
            Err(e) => out.push(format!("bus.kafka: {e}")),
        }
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            out.push(format!("cannot build an http client: {e}"));
            return out;
        }
    };
    for s in &cfg.sinks {
        if let Some(crm) = &s.crm_rest
            && let Err(e) = client.get(&crm.base_url).send().await
        {
            out.push(format!(
                "sinks `{}`: {} does not answer: {}",
                s.name,
                crm.base_url,
                if e.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                }
            ));
        }
    }
    out
}

/// `hub run`: the pipeline and the HTTP endpoints until SIGINT or SIGTERM, then a drain.
async fn run_hub(cfg: config::Config) -> anyhow::Result<()> {
    let listen = cfg.http.listen.clone();
    let listen_tls = cfg.http.tls.clone();
    let stats = Arc::new(Stats::default());
    let _ = telemetry::prometheus();
    let (audit_path, chain) = integration_hub::audit::of_config(&cfg)?;
    integration_hub::audit::install(integration_hub::audit::AuditLog::open(&audit_path, chain)?);
    let ctx = pipeline::open(cfg, stats).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(integration_hub::audit::log_heads(
        std::time::Duration::from_secs(60),
        stop_rx.clone(),
    ));
    let state = http::AppState::of_hub(&ctx)?;
    let (addr, server) =
        http::serve_with_tls(&listen, listen_tls.as_ref(), state, stop_rx.clone()).await?;
    tracing::info!(%addr, "http listening: /healthz /readyz /metrics");
    let hub = tokio::spawn(pipeline::run(ctx, stop_rx));
    shutdown_signal().await;
    tracing::info!("shutdown requested: draining in-flight work");
    let _ = stop_tx.send(true);
    hub.await??;
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
