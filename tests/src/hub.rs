//! Runs the `hub` binary as a child process against a config written for the test, and waits
//! for conditions with bounded polling (never a bare sleep).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use integration_hub::config::BusKind;
use integration_hub::demo::{ConfigSpec, config_text};
use integration_hub::sandbox_crm::SandboxCrm;

/// Process-wide set-up every suite calls first: the TLS crypto provider for HTTP clients.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The `hub` binary built next to this test executable (or `HUB_BIN`).
///
/// `cargo test -p hub-tests` does not rebuild another package's binary, so a binary older
/// than the sources it is built from is refused rather than silently tested.
pub fn hub_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HUB_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/hub
    let exe = std::env::current_exe().unwrap_or_default();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("hub"))
        .unwrap_or_default();
    let built = modified(&bin);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest_source = [
        "integration-hub/src",
        "adapters/src",
        "mapping/src",
        "compliance/src",
    ]
    .iter()
    .filter_map(|d| newest_in(&root.join(d)))
    .max();
    if let (Some(built), Some(src)) = (built, newest_source) {
        assert!(
            built >= src,
            "{} is older than its sources: run `cargo build --workspace --bins` first",
            bin.display()
        );
    }
    bin
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newest_in(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let t = if p.is_dir() {
            newest_in(&p)
        } else {
            modified(&p)
        };
        newest = newest.max(t);
    }
    newest
}

/// Which bus a test config uses.
#[derive(Debug, Clone)]
pub enum TestBus {
    Embedded,
    Kafka { bootstrap: String },
}

/// The demo's config layout on `bus`, with fast retries for tests.
pub fn write_config(
    dir: &Path,
    bus: &TestBus,
    topic_prefix: &str,
    crm_base_url: &str,
    http_listen: &str,
) -> anyhow::Result<PathBuf> {
    let (kind, bootstrap) = match bus {
        TestBus::Embedded => (BusKind::Embedded, ""),
        TestBus::Kafka { bootstrap } => (BusKind::Kafka, bootstrap.as_str()),
    };
    let text = config_text(&ConfigSpec {
        bus: kind,
        topic_prefix,
        kafka_bootstrap: bootstrap,
        http_listen: Some(http_listen),
        crm_base_url,
        crm_extra: "max_attempts = 6\ninitial_backoff_ms = 50\nmax_backoff_ms = 2000\n",
    });
    std::fs::create_dir_all(dir.join("inbox"))?;
    let path = dir.join("hub.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

pub use integration_hub::demo::drop_file;

/// A test bed in `dir`: a sandbox CRM requiring a token, the token file, and a config for
/// `bus` pointing at both. Returns the CRM handle, the config path and the HTTP port.
pub async fn test_bed(
    dir: &Path,
    bus: &TestBus,
    topic_prefix: &str,
) -> anyhow::Result<(SandboxCrm, PathBuf, u16)> {
    init();
    let token = "test-token";
    std::fs::write(dir.join("crm.token"), token)?;
    let crm = SandboxCrm::new().with_token(token);
    let (addr, _task) = crm.clone().serve("127.0.0.1:0").await?;
    let port = free_port()?;
    let config = write_config(
        dir,
        bus,
        topic_prefix,
        &format!("http://{addr}"),
        &format!("127.0.0.1:{port}"),
    )?;
    Ok((crm, config, port))
}

/// A running `hub run --config …` process; killed when dropped.
pub struct HubProcess {
    child: Child,
    pub log: PathBuf,
}

impl HubProcess {
    pub fn start(config: &Path, log: &Path) -> anyhow::Result<HubProcess> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(hub_bin())
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", hub_bin().display()))?;
        Ok(HubProcess {
            child,
            log: log.to_path_buf(),
        })
    }

    /// SIGKILL: no drain, no commit — a crash.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("hub did not stop within {within:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails if the process has exited.
    pub fn assert_running(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!("hub exited with {s}; last log lines:\n{}", tail.join("\n"));
        }
        Ok(())
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 50 ms until it holds or `within` passes; `what` names it on failure.
pub async fn wait_for(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Files directly in `dir` whose names end with `suffix`.
pub fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    v.sort();
    v
}
