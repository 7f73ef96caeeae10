//! Kafka over SASL_SSL: SCRAM authentication over TLS, against the real broker's SASL_SSL
//! listener started by `scripts/kafka.sh` (127.0.0.1:9094, a private CA, the SCRAM user `hub`).
//!
//! The listener's address, CA, user and password file come from the `KAFKA_SASL_*` variables
//! that `scripts/kafka.sh sasl-env` prints (`scripts/test.sh` exports them). Without them every
//! case fails, naming that command: a security test that quietly skips proves nothing.
//!
//! Cases: the bus publishes and consumes through the listener; a wrong password is refused
//! with an authentication error that does not contain the password; a client that does not
//! trust the private CA refuses the broker's certificate; a `hub run` process takes a dropped
//! file into the sandbox CRM through the listener.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, test_bed, wait_for};
use hub_tests::kafka::{unique, wait_reachable};
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};
use integration_hub::bus::{Bus, OutMessage, offsets_after};
use integration_hub::config::{KafkaProtocol, KafkaSecurity, ScramMechanism};
use integration_hub::demo_data::{self, Options};

/// How long a refused client may take to report why (TLS handshake or SCRAM exchange).
const REFUSAL_WITHIN: Duration = Duration::from_secs(20);

/// The broker's SASL_SSL listener, as `scripts/kafka.sh sasl-env` describes it.
struct Listener {
    bootstrap: String,
    ca: PathBuf,
    user: String,
    password_file: PathBuf,
}

fn listener() -> Listener {
    let var = |name: &str| -> String {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => panic!(
                "{name} is not set: export the variables printed by `scripts/kafka.sh sasl-env` \
                 (after `scripts/kafka.sh start`), as scripts/test.sh does"
            ),
        }
    };
    let l = Listener {
        bootstrap: var("KAFKA_SASL_BOOTSTRAP"),
        ca: PathBuf::from(var("KAFKA_SASL_CA")),
        user: var("KAFKA_SASL_USER"),
        password_file: PathBuf::from(var("KAFKA_SASL_PASSWORD_FILE")),
    };
    for (name, p) in [
        ("KAFKA_SASL_CA", &l.ca),
        ("KAFKA_SASL_PASSWORD_FILE", &l.password_file),
    ] {
        assert!(
            p.is_file(),
            "{name}={} does not exist; run `scripts/kafka.sh start`, then export \
             `scripts/kafka.sh sasl-env` again",
            p.display()
        );
    }
    l
}

/// The real password, only to check that no error message carries it.
fn real_password(l: &Listener) -> String {
    std::fs::read_to_string(&l.password_file)
        .expect("read the SCRAM password file")
        .trim_end()
        .to_owned()
}

fn security(l: &Listener, password_file: &Path, ca: Option<&Path>) -> KafkaSecurity {
    KafkaSecurity {
        protocol: KafkaProtocol::SaslSsl,
        sasl_mechanism: ScramMechanism::ScramSha512,
        username: Some(l.user.clone()),
        password: Some(format!("file:{}", password_file.display())),
        ca_file: ca.map(Path::to_path_buf),
        ..KafkaSecurity::default()
    }
}

fn sasl_bus(l: &Listener, security: KafkaSecurity) -> KafkaBus {
    let mut cfg = KafkaConfig::new(l.bootstrap.clone());
    cfg.client_id = "sasl-ssl-test".into();
    *cfg.security = security;
    KafkaBus::new(&cfg).expect("create kafka bus")
}

/// Why `ping` fails, once the reason is known (a first ping may only time out while the
/// connection is still failing); fails the case if the broker accepts the client.
async fn refusal(bus: &KafkaBus) -> String {
    let deadline = tokio::time::Instant::now() + REFUSAL_WITHIN;
    loop {
        let err = match bus.ping().await {
            Ok(()) => panic!("the broker accepted a client it must refuse"),
            Err(e) => e.to_string(),
        };
        if !err.to_lowercase().contains("timed out") || tokio::time::Instant::now() >= deadline {
            return err;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_publishes_and_consumes_over_scram_and_tls() {
    let l = listener();
    let bus = sasl_bus(&l, security(&l, &l.password_file, Some(&l.ca)));
    if let Err(e) = wait_reachable(&bus, Duration::from_secs(30)).await {
        panic!(
            "no SASL_SSL listener usable at {}: {e:#}; `scripts/kafka.sh restart` adds it to a \
             broker started before it existed",
            l.bootstrap
        );
    }
    let topic = unique("sasl-ssl");
    let messages: Vec<OutMessage> = (0..50)
        .map(|i| OutMessage {
            key: format!("k{}", i % 7),
            headers: vec![("seq".into(), i.to_string())],
            payload: format!("event {i}").into_bytes(),
        })
        .collect();
    bus.publish(&topic, messages.clone())
        .await
        .expect("publish over SASL_SSL");

    let mut consumer = bus
        .subscribe(&unique("sasl-ssl-group"), &topic)
        .await
        .expect("subscribe over SASL_SSL");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < messages.len() && tokio::time::Instant::now() < deadline {
        got.extend(
            consumer
                .poll(100, Duration::from_millis(500))
                .await
                .expect("poll over SASL_SSL"),
        );
    }
    assert_eq!(got.len(), messages.len(), "not every event came back");
    consumer
        .commit(&offsets_after(&got))
        .await
        .expect("commit over SASL_SSL");
    let mut payloads: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    payloads.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("event {i}")).collect();
    expected.sort();
    assert_eq!(payloads, expected);
    assert!(got.iter().all(|r| r.header("seq").is_some()));

    // The listener offers SCRAM-SHA-256 too; the same user has a credential for it.
    let sha256 = KafkaSecurity {
        sasl_mechanism: ScramMechanism::ScramSha256,
        ..security(&l, &l.password_file, Some(&l.ca))
    };
    wait_reachable(&sasl_bus(&l, sha256), Duration::from_secs(30))
        .await
        .expect("SCRAM-SHA-256 over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_an_authentication_error() {
    let l = listener();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrong-password-0a1b2c3d";
    let wrong_file = dir.path().join("wrong-password");
    std::fs::write(&wrong_file, wrong).unwrap();
    let bus = sasl_bus(&l, security(&l, &wrong_file, Some(&l.ca)));
    let err = refusal(&bus).await;
    eprintln!("wrong password: {err}");
    assert!(
        err.to_lowercase().contains("authentication"),
        "the error does not name the authentication failure: {err}"
    );
    assert!(
        !err.contains(wrong),
        "the error carries the password: {err}"
    );
    assert!(
        !err.contains(&real_password(&l)),
        "the error carries the real password: {err}"
    );
    // Publishing fails too, and within bounds, rather than waiting for ever.
    let started = std::time::Instant::now();
    let publish = bus
        .publish(
            &unique("sasl-ssl-refused"),
            vec![OutMessage {
                key: "k".into(),
                headers: Vec::new(),
                payload: b"never".to_vec(),
            }],
        )
        .await;
    assert!(publish.is_err(), "a refused client published");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "publish took {:?} to fail",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_ca_refuses_the_broker_certificate() {
    let l = listener();
    // No ca_file: the system trust store, which does not know the private CA.
    let bus = sasl_bus(&l, security(&l, &l.password_file, None));
    let err = refusal(&bus).await;
    eprintln!("without the CA: {err}");
    let lower = err.to_lowercase();
    assert!(
        lower.contains("certificate verify failed"),
        "the error does not name the certificate check: {err}"
    );
    assert!(!err.contains(&real_password(&l)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_process_delivers_a_dropped_file_through_sasl_ssl() {
    let l = listener();
    let dir = tempfile::tempdir().unwrap();
    let bus = TestBus::Kafka {
        bootstrap: l.bootstrap.clone(),
    };
    let (crm, config, _port) = test_bed(dir.path(), &bus, &unique("sasl-e2e"))
        .await
        .unwrap();
    // The password by reference to the listener's password file, as a bank would mount it.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[bus.kafka.security]\nprotocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
         username = \"{}\"\npassword = \"file:{}\"\nca_file = \"{}\"\n",
        l.user,
        l.password_file.display(),
        l.ca.display()
    ));
    std::fs::write(&config, text).unwrap();

    let file = demo_data::generate(&Options {
        customers: 300,
        ..Options::default()
    });
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let inbox = dir.path().join("inbox");
    drop_file(&inbox, "customers.csv", &file.bytes).unwrap();
    wait_for(
        "the file archived and every valid customer in the CRM",
        Duration::from_secs(180),
        || {
            hub.assert_running()?;
            Ok(crm.contacts_len() >= file.valid_keys.len()
                && files_in(&inbox.join("archive"), ".csv").len() == 1)
        },
    )
    .await
    .unwrap();
    assert_eq!(crm.contacts_len(), file.valid_keys.len());
    for k in &file.valid_keys {
        assert!(
            crm.contact(k).is_some(),
            "customer {k} missing from the CRM"
        );
    }
    let status = hub.terminate(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "hub exited with {status} after SIGTERM");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log_text.contains(&real_password(&l)),
        "the hub's log carries the SCRAM password"
    );
}
