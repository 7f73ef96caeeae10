//! How long the dead-letter operations take on a full DLQ: publishes N dead letters shaped
//! like the CRM sink's (an ~800-byte envelope each) to a fresh topic, then times a listing,
//! finding the last letter (`show`), and replaying all of them.
//!
//! ```text
//! cargo run --release -p integration-hub --example dlq_bench -- --bus embedded --letters 10000
//! cargo run --release -p integration-hub --example dlq_bench -- --bus kafka --bootstrap 127.0.0.1:9092
//! ```

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use integration_hub::bus::embedded::EmbeddedBus;
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};
use integration_hub::bus::{Bus, OutMessage};
use integration_hub::dlq::{Dlq, LetterId, ListQuery, LogEnd, ReplayOptions, StatusFilter};
use integration_hub::store::Store;

struct Args {
    kafka: bool,
    letters: usize,
    bootstrap: String,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        kafka: false,
        letters: 10_000,
        bootstrap: "127.0.0.1:9092".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bus" => {
                a.kafka = match value()?.as_str() {
                    "kafka" => true,
                    "embedded" => false,
                    other => bail!("--bus must be embedded or kafka, not {other}"),
                }
            }
            "--letters" => a.letters = value()?.parse().context("--letters")?,
            "--bootstrap" => a.bootstrap = value()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// A dead letter as the CRM sink writes it, for customer `i`.
fn letter(i: usize, topic: &str) -> OutMessage {
    let key = format!("C{:08}", i);
    let payload = serde_json::json!({
        "id": format!("{i:032x}"),
        "source": "abs-customers",
        "entity": "party",
        "op": "upsert",
        "key": key,
        "version": 1,
        "event_time": "2024-03-01T10:00:00Z",
        "ingest_time": "2024-03-01T10:00:01Z",
        "trace_id": format!("{i:032x}"),
        "schema_version": 1,
        "payload": {
            "kind": "person", "full_name": "Иванова Мария Петровна", "birth_date": "1985-03-01",
            "phone": "+79161234567", "email": "m.ivanova@example.ru", "inn": "500100732259",
            "passport": "4509 123456", "address": "г. Москва, ул. Тверская, д. 1, кв. 1",
        },
    });
    let now = chrono::Utc::now().to_rfc3339();
    OutMessage {
        key,
        headers: vec![
            (
                "error".into(),
                "crm answered 422 (invalid_field) for envelope".into(),
            ),
            ("attempts".into(), "1".into()),
            ("first_failure".into(), now.clone()),
            ("last_failure".into(), now),
            ("origin_topic".into(), topic.into()),
            ("origin_partition".into(), "0".into()),
            ("origin_offset".into(), i.to_string()),
            ("sink".into(), "crm".into()),
            ("id".into(), format!("{i:032x}")),
            ("source".into(), "abs-customers".into()),
            ("entity".into(), "party".into()),
        ],
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let prefix = format!("dlqbench-{}-{nanos:x}", std::process::id());
    let (dlq_topic, origin) = (format!("{prefix}.dlq"), format!("{prefix}.canonical"));
    let (bus, end): (Arc<dyn Bus>, LogEnd) = if a.kafka {
        let cfg = KafkaConfig::new(a.bootstrap.clone());
        (Arc::new(KafkaBus::new(&cfg)?), LogEnd::KafkaWatermarks(cfg))
    } else {
        (
            Arc::new(EmbeddedBus::open(&dir.path().join("bus.db"), 4)?),
            LogEnd::FirstEmptyPoll,
        )
    };
    let store = Arc::new(Store::open(&dir.path().join("state.db"))?);
    let dlq = Dlq::new(bus.clone(), store, dlq_topic.clone(), end);
    let bus_name = if a.kafka { "kafka" } else { "embedded" };

    let started = Instant::now();
    for chunk in (0..a.letters).collect::<Vec<_>>().chunks(1000) {
        let msgs = chunk.iter().map(|i| letter(*i, &origin)).collect();
        bus.publish(&dlq_topic, msgs).await?;
    }
    println!(
        "bus={bus_name} letters={} publish_s={:.2}",
        a.letters,
        started.elapsed().as_secs_f64()
    );

    let mut last = None;
    for run in 1..=3 {
        let t = Instant::now();
        let l = dlq
            .list(&ListQuery {
                sink: None,
                status: StatusFilter::Pending,
                limit: 100,
            })
            .await?;
        println!(
            "bus={bus_name} list run={run} pending={} shown={} elapsed_s={:.2}",
            l.counts.pending,
            l.dead_letters.len(),
            t.elapsed().as_secs_f64()
        );
        if l.counts.pending != a.letters as u64 {
            bail!("listed {} of {} letters", l.counts.pending, a.letters);
        }
        last = l.dead_letters.last().map(|v| v.id.clone());
    }

    // The worst case for `show`: the letter read last (any id; the read stops when found).
    let full = dlq
        .list(&ListQuery {
            sink: None,
            status: StatusFilter::All,
            limit: a.letters,
        })
        .await?;
    let max_id = full
        .dead_letters
        .iter()
        .filter_map(|v| LetterId::parse(&v.id).ok())
        .max_by_key(|id| id.offset)
        .or_else(|| last.and_then(|s| LetterId::parse(&s).ok()))
        .context("no letter listed")?;
    let t = Instant::now();
    dlq.get(max_id).await?;
    println!(
        "bus={bus_name} show id={max_id} elapsed_s={:.2}",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let s = dlq
        .replay_all_pending(
            &ReplayOptions {
                sink: None,
                force: false,
                dry_run: false,
                by: "bench".into(),
            },
            &mut |_| {},
        )
        .await?;
    println!(
        "bus={bus_name} replay_all_pending replayed={} elapsed_s={:.2}",
        s.replayed,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let l = dlq.list(&ListQuery::default()).await?;
    println!(
        "bus={bus_name} list after replay pending={} replayed={} elapsed_s={:.2}",
        l.counts.pending,
        l.counts.replayed,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
