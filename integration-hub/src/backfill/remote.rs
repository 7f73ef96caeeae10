//! Full passes over the HTTP sources for a backfill: REST polling from its initial cursor,
//! SOAP from every operation's initial cursor and first page. Records are mapped exactly as
//! the live tasks map them (same version and event-time rules); the persisted cursors are
//! never read or written.

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;

use adapters::rest_poll::RestPollClient;
use adapters::soap::response::ReadError;
use adapters::soap::{SoapClient, TemplateVars};
use mapping::Envelope;
use mapping::declarative::CompiledMapping;

use super::read::{Item, Out, PASS_STOPPED, failed, reasons};
use crate::config::{Config, SourceConfig, resolve_secret};

/// One pass of a REST source from `initial_cursor`. A page that cannot be had ends the
/// pass with one failure naming the page.
pub async fn read_rest(
    cfg: &Config,
    source: &SourceConfig,
    mapping: CompiledMapping,
    tx: mpsc::Sender<Vec<Item>>,
) -> anyhow::Result<()> {
    let rest = source
        .rest_poll
        .clone()
        .with_context(|| format!("source `{}` has no [sources.rest_poll]", source.name))?;
    let base = cfg.base_dir.clone();
    let resolve = |r: &str| resolve_secret(r, &base);
    let client = RestPollClient::new(rest, &base, &resolve)
        .with_context(|| format!("source `{}`", source.name))?;
    let start = client
        .initial_cursor()
        .with_context(|| format!("source `{}`: initial cursor", source.name))?;
    let mut pass = client.pass(start);
    let mut out = Out::new(tx);
    while !pass.is_done() {
        let page_no = pass.next_number();
        let page = match client.next_page(&mut pass).await {
            Ok((p, _attempts)) => p,
            Err(e) => {
                let reason = format!("{PASS_STOPPED}: {e}");
                out.push_async(failed(
                    &source.name,
                    format!("page {page_no}"),
                    None,
                    reason,
                ))
                .await;
                break;
            }
        };
        let now = Utc::now();
        for rec in &page.records {
            let at = || format!("page {}, record {}", page.number, rec.index);
            let item = match &rec.cursor {
                Err(reason) => failed(
                    &source.name,
                    at(),
                    mapping.key_of(&rec.value),
                    format!("cursor field: {reason}"),
                ),
                Ok(cursor) => match mapping.apply(&rec.value) {
                    Ok(m) => Item::Record(Box::new(Envelope::new(
                        &source.name,
                        m.entity,
                        m.op,
                        &m.key,
                        m.version.unwrap_or_else(|| cursor.as_version()),
                        m.event_time.or_else(|| cursor.as_time()).unwrap_or(now),
                        now,
                        m.payload,
                    ))),
                    Err(errors) => failed(
                        &source.name,
                        at(),
                        mapping.key_of(&rec.value),
                        reasons(&errors),
                    ),
                },
            };
            if !out.push_async(item).await {
                return Ok(());
            }
        }
    }
    out.flush_async().await;
    Ok(())
}

/// One pass of every operation of a SOAP source, from its initial cursor and first page to
/// an empty page (or the one call of an operation that is not paged). A call or an answer
/// that fails ends that operation's pass with one failure naming operation and page.
pub async fn read_soap(
    cfg: &Config,
    source: &SourceConfig,
    mapping: CompiledMapping,
    tx: mpsc::Sender<Vec<Item>>,
) -> anyhow::Result<()> {
    let mut soap = source
        .soap
        .clone()
        .with_context(|| format!("source `{}` has no [sources.soap]", source.name))?;
    if let Some(ws) = &mut soap.ws_security {
        ws.password = resolve_secret(&ws.password, &cfg.base_dir).map_err(|e| {
            anyhow::anyhow!("source `{}`: soap.ws_security.password: {e}", source.name)
        })?;
    }
    let resolve = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| cfg.resolve(p));
    soap.tls.ca_bundle = resolve(&soap.tls.ca_bundle);
    soap.tls.client_cert = resolve(&soap.tls.client_cert);
    soap.tls.client_key = resolve(&soap.tls.client_key);
    // A spool of its own, so a backfill never shares files with a running hub.
    soap.spool_dir = Some(resolve(&soap.spool_dir).unwrap_or_else(|| {
        cfg.data_dir().join("spool").join(format!(
            "{}-backfill-{}",
            source.name,
            std::process::id()
        ))
    }));
    let operations = soap.operations.clone();
    let client =
        SoapClient::new(soap).map_err(|e| anyhow::anyhow!("source `{}`: {e}", source.name))?;
    for op in &operations {
        let mut page = op.first_page;
        loop {
            let vars = TemplateVars {
                cursor: op.initial_cursor.clone(),
                page,
                today: Utc::now().date_naive(),
            };
            let at = format!("operation {}, page {page}", op.name);
            let answer = match client.call(&op.name, &vars).await {
                Ok((a, _)) => a,
                Err(e) => {
                    let item = failed(&source.name, at, None, format!("{PASS_STOPPED}: {e}"));
                    let mut out = Out::new(tx.clone());
                    if !(out.push_async(item).await && out.flush_async().await) {
                        return Ok(());
                    }
                    break;
                }
            };
            let job = (
                source.name.clone(),
                op.name.clone(),
                op.record_path.clone(),
                mapping.clone(),
                tx.clone(),
            );
            let records = tokio::task::spawn_blocking(move || {
                let (source, operation, record_path, mapping, tx) = job;
                read_answer(
                    &source,
                    &operation,
                    &record_path,
                    page,
                    &mapping,
                    answer,
                    tx,
                )
            })
            .await
            .context("the soap reader failed")?;
            match records {
                Some(n) if n > 0 && op.paged => page = page.saturating_add(1),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Maps every record of one answer; the records read, or `None` when reading stopped
/// (broken answer, already reported; or the receiver went away).
fn read_answer(
    source: &str,
    operation: &str,
    record_path: &str,
    page: u32,
    mapping: &CompiledMapping,
    answer: adapters::soap::SpooledResponse,
    tx: mpsc::Sender<Vec<Item>>,
) -> Option<u64> {
    let mut out = Out::new(tx);
    let reader = match answer.records() {
        Ok(r) => r,
        Err(e) => {
            out.push(failed(
                source,
                format!("operation {operation}, page {page}"),
                None,
                e.to_string(),
            ));
            out.flush();
            return None;
        }
    };
    // As in the live task: without a version rule, the time of the call.
    let fetched_at = Utc::now();
    let mut n = 0u64;
    for item in reader {
        let record = match item {
            Ok(r) => r,
            Err(e) => {
                let reason = match e {
                    ReadError::Parse(p) => format!("broken answer: {p}"),
                    ReadError::Fault(f) => format!("unexpected fault: {f}"),
                };
                out.push(failed(
                    source,
                    format!("operation {operation}, page {page}"),
                    None,
                    reason,
                ));
                out.flush();
                return None;
            }
        };
        n += 1;
        let at = || {
            format!(
                "operation {operation}, page {page}, record {} (element {record_path}, byte {})",
                record.index, record.offset
            )
        };
        let item = match mapping.apply(&record.value) {
            Ok(m) => Item::Record(Box::new(Envelope::new(
                source,
                m.entity,
                m.op,
                &m.key,
                m.version.unwrap_or(fetched_at.timestamp_millis()),
                m.event_time.unwrap_or(fetched_at),
                Utc::now(),
                m.payload,
            ))),
            Err(errors) => failed(
                source,
                at(),
                mapping.key_of(&record.value),
                reasons(&errors),
            ),
        };
        if !out.push(item) {
            return None;
        }
    }
    out.flush().then_some(n)
}
