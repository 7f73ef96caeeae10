//! TLS end to end, through a `hub run` process and certificates made by
//! `scripts/test-pki.sh` (a private CA, a server certificate for 127.0.0.1, a client one):
//! - `[http.tls]`: `/healthz` answers over HTTPS to a client trusting the CA; plain HTTP to
//!   the same port gets no answer;
//! - `client_ca_file` (mTLS): without a client certificate the handshake is refused, with
//!   one the probe answers;
//! - a CRM sink to a CRM behind the private CA: without `tls.ca_file` nothing is delivered
//!   and the log names the certificate; with it, after a restart, every record arrives
//!   exactly once (none was lost while the CRM was not trusted);
//! - the plain-HTTP rule of `hub validate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hub_tests::hub::{
    HubProcess, TestBus, drop_file, free_port, hub_bin, init, wait_for, write_config,
};
use integration_hub::config::{ListenerTls, parse};
use integration_hub::demo_data::{self, Options};
use integration_hub::sandbox_crm::SandboxCrm;

const SETTLE: Duration = Duration::from_secs(60);

/// Runs `scripts/test-pki.sh` into `dir/pki` and returns that folder.
fn pki(dir: &Path) -> PathBuf {
    let out = dir.join("pki");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-pki.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .status()
        .expect("run scripts/test-pki.sh");
    assert!(status.success(), "scripts/test-pki.sh failed: {status}");
    out
}

/// A client that trusts only the test CA, with the test client certificate if `identity`.
fn https_client(pki: &Path, identity: bool) -> reqwest::Client {
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap());
    if identity {
        let mut pem = std::fs::read(pki.join("client.pem")).unwrap();
        pem.extend(std::fs::read(pki.join("client.key")).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// A hub config (embedded bus, the CRM at `crm_url`) on a free port, with `http_tls`
/// lines put into its `[http]` section; the CRM token file written beside it.
fn hub_config(dir: &Path, crm_url: &str, http_tls: &str) -> (PathBuf, u16) {
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let config = write_config(dir, &TestBus::Embedded, "tls", crm_url, &listen).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let line = format!("listen = \"{listen}\"\n");
    assert!(text.contains(&line), "{text}");
    std::fs::write(
        &config,
        text.replacen(&line, &format!("{line}{http_tls}"), 1),
    )
    .unwrap();
    std::fs::write(dir.join("crm.token"), "test-token").unwrap();
    (config, port)
}

/// Waits until `url` answers 200 through `client`.
async fn wait_ok(hub: &mut HubProcess, client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        hub.assert_running().unwrap();
        match client.get(url).send().await {
            Ok(res) if res.status() == reqwest::StatusCode::OK => return,
            _ if Instant::now() > deadline => panic!("{url} did not answer 200 in time"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_serves_probes_and_refuses_plain_http() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (config, port) = hub_config(
        dir.path(),
        "http://127.0.0.1:9",
        "[http.tls]\ncert_file = \"pki/server.pem\"\nkey_file = \"pki/server.key\"\n",
    );
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let started = Instant::now();
    let client = https_client(&pki, false);
    wait_ok(
        &mut hub,
        &client,
        &format!("https://127.0.0.1:{port}/healthz"),
    )
    .await;
    eprintln!(
        "figures: https /healthz answered {:?} after start",
        started.elapsed()
    );
    // The name in the certificate works as well as the address.
    let res = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);

    // Plain HTTP to the TLS port: the handshake fails, no HTTP answer comes back.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let answer = plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(answer.is_err(), "plain http got an answer: {answer:?}");
    // A client that does not trust the private CA is refused too.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let answer = untrusting
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(answer.is_err(), "a client without the CA got an answer");
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (config, port) = hub_config(
        dir.path(),
        "http://127.0.0.1:9",
        "[http.tls]\ncert_file = \"pki/server.pem\"\nkey_file = \"pki/server.key\"\n\
         client_ca_file = \"pki/ca.pem\"\n",
    );
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    wait_ok(&mut hub, &https_client(&pki, true), &url).await;
    let without = https_client(&pki, false).get(&url).send().await;
    assert!(without.is_err(), "no client certificate, yet: {without:?}");
    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    assert!(log.contains("tls handshake refused"), "{log}");
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_behind_a_private_ca_needs_its_bundle_and_loses_nothing() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let crm = SandboxCrm::new().with_token("test-token");
    let server = integration_hub::tls_listener::server_config(&ListenerTls {
        cert_file: pki.join("server.pem"),
        key_file: pki.join("server.key"),
        client_ca_file: None,
    })
    .unwrap();
    let (addr, _task) = crm.clone().serve_tls("127.0.0.1:0", server).await.unwrap();
    let (config, _port) = hub_config(
        dir.path(),
        &format!("https://localhost:{}", addr.port()),
        "",
    );
    let customers = demo_data::generate(&Options {
        customers: 50,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let log = dir.path().join("hub.log");

    // Without the bundle: the CRM's certificate is not trusted, nothing is delivered.
    let mut hub = HubProcess::start(&config, &log).unwrap();
    drop_file(
        &dir.path().join("inbox"),
        "customers_1.csv",
        &customers.bytes,
    )
    .unwrap();
    wait_for("a certificate error in the log", SETTLE, || {
        hub.assert_running()?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Ok(text.lines().any(|l| {
            l.contains("delivery failed") && l.to_ascii_lowercase().contains("certificate")
        }))
    })
    .await
    .unwrap();
    assert_eq!(crm.contacts_len(), 0);
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");

    // With it: every record arrives, once.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[sinks.crm_rest.tls]\nca_file = \"pki/ca.pem\"\n");
    std::fs::write(&config, text).unwrap();
    let restarted = Instant::now();
    let mut hub = HubProcess::start(&config, &log).unwrap();
    wait_for("every customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= customers.valid_keys.len())
    })
    .await
    .unwrap();
    eprintln!(
        "figures: {} customers delivered over TLS {:?} after the restart with the CA",
        customers.valid_keys.len(),
        restarted.elapsed()
    );
    for key in &customers.valid_keys {
        assert_eq!(crm.writes_for(key), 1, "customer written other than once");
    }
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");
}

fn source() -> String {
    format!(
        "[[sources]]\nname = \"abs\"\nkind = \"file_drop\"\n[sources.file_drop]\n\
         inbox = \"inbox\"\n[sources.columns]\n{}\n",
        demo_data::COLUMNS_TOML
    )
}

fn sink(url: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"crm\"\nkind = \"crm_rest\"\n[sinks.crm_rest]\nbase_url = \"{url}\"\n{extra}"
    )
}

/// The problems `hub validate` would list for `text`, as "path: message".
fn problems(text: &str) -> Vec<String> {
    match parse(text, PathBuf::from("/etc/hub")) {
        Ok(_) => Vec::new(),
        Err(p) => p
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

#[test]
fn validate_refuses_plain_http_off_loopback_unless_allowed() {
    let source = source();
    let refused = problems(&format!("{source}{}", sink("http://10.1.2.3/", "")));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("sinks[0].crm_rest.base_url: plain http to `10.1.2.3` is refused"),
        "{refused:?}"
    );
    assert!(
        refused[0].contains("allow_plain_http = true"),
        "{refused:?}"
    );
    let allowed = problems(&format!(
        "{source}{}",
        sink("http://10.1.2.3/", "allow_plain_http = true\n")
    ));
    assert!(allowed.is_empty(), "{allowed:?}");
    for loopback in [
        "http://127.0.0.1:8080/",
        "http://localhost/api",
        "http://[::1]:80/",
    ] {
        let p = problems(&format!("{source}{}", sink(loopback, "")));
        assert!(p.is_empty(), "{loopback}: {p:?}");
    }
    assert!(problems(&format!("{source}{}", sink("https://crm.bank.local/", ""))).is_empty());

    // The listener: off loopback it needs [http.tls] or an explicit allowance.
    let sink = sink("https://crm.bank.local/", "");
    let listener = problems(&format!(
        "[http]\nlisten = \"0.0.0.0:9464\"\n{source}{sink}"
    ));
    assert_eq!(listener.len(), 1, "{listener:?}");
    assert!(
        listener[0].starts_with("http.listen: plain http on 0.0.0.0:9464"),
        "{listener:?}"
    );
    let with_tls = problems(&format!(
        "[http]\nlisten = \"0.0.0.0:9464\"\n[http.tls]\ncert_file = \"hub.pem\"\n\
         key_file = \"hub.key\"\n{source}{sink}"
    ));
    assert!(with_tls.is_empty(), "{with_tls:?}");
    let allowed = problems(&format!(
        "[http]\nlisten = \"0.0.0.0:9464\"\nallow_plain_http = true\n{source}{sink}"
    ));
    assert!(allowed.is_empty(), "{allowed:?}");

    // A half client identity is named.
    let half = problems(&format!(
        "{source}{sink}[sinks.crm_rest.tls]\nclient_cert = \"hub.pem\"\n"
    ));
    assert_eq!(
        half,
        [
            "sinks[0].crm_rest.tls.client_cert: client_cert and client_key go together (mTLS needs both)"
        ]
    );
}

#[test]
fn hub_validate_names_the_field_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
    let source = source();
    std::fs::write(&config, format!("{source}{}", sink("http://10.1.2.3/", ""))).unwrap();
    let out = Command::new(hub_bin())
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("sinks[0].crm_rest.base_url"), "{text}");
    assert!(
        text.contains("plain http to `10.1.2.3` is refused"),
        "{text}"
    );
}
