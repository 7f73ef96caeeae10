//! Which hub instance runs a polling source (file drop, REST poll, SOAP poll) when several
//! instances share the PostgreSQL state store.
//!
//! Contract:
//! - A lease is a session-level advisory lock, `pg_try_advisory_lock(<key>)`, held on a
//!   connection of its own. The instance holding it runs the source; the others try again
//!   every [`RETRY_EVERY`]. When the holder stops, is killed or loses its connection, the
//!   server ends its session and the lock with it, so another instance takes the source
//!   over and resumes from the shared cursor, file ledger and `processing/` folder.
//! - The key is unique per source within one schema: the source name gets a number in the
//!   `source_leases` table (no hash collisions between source names), and the schema's hash
//!   is the high half, so deployments sharing a database in different schemas do not
//!   block each other.
//! - The holder checks every [`CHECK_EVERY`] that the server still shows its lock. If the
//!   check fails or takes longer than [`CHECK_TIMEOUT`] it stops the source (the source
//!   finishes the batch in hand) and competes for the lease again. Two instances can
//!   therefore overlap for at most about one check period after a network cut; that is
//!   harmless, as it is after a crash: files are claimed by an atomic rename, events have
//!   deterministic ids and the sinks' version guard skips what was delivered.
//! - The lease connection carries `application_name = hub <pid> <source>` (cut to the
//!   server's 63 bytes), so `pg_stat_activity` shows which process runs which source.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::{STATE_LOCK_CLASS, Store, StoreError};
use crate::pipeline::sleep_or_shutdown;
use crate::sql::postgres::{close, err, open_client, parse_url};

/// How often a standby instance asks for a lease.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How often the holder checks that it still holds its lease.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Longest a check may take before the holder gives the source up.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's limit on `application_name`, in bytes.
const APPLICATION_NAME_MAX: usize = 63;

/// One polling source's lease, on a PostgreSQL connection of its own.
pub struct SourceLease {
    client: Option<postgres::Client>,
    source: String,
    key: i64,
    held: bool,
}

impl std::fmt::Debug for SourceLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLease")
            .field("source", &self.source)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

fn application_name(source: &str) -> String {
    let mut name = format!("hub {} {source}", std::process::id());
    while name.len() > APPLICATION_NAME_MAX {
        name.pop();
    }
    name
}

impl SourceLease {
    /// Connects and finds the source's lock key (numbering the source on first use).
    /// Takes nothing yet: see [`SourceLease::try_acquire`].
    pub fn connect(url: &str, source: &str) -> Result<SourceLease, StoreError> {
        let mut config = parse_url(url)?;
        config
            .application_name(&application_name(source))
            .connect_timeout(CHECK_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(CHECK_TIMEOUT);
        let mut client = open_client(&config)?;
        let key = lease_key(&mut client, source).map_err(|e| {
            StoreError::new(format!("source {source}: cannot read its lease key: {e}"))
        })?;
        Ok(SourceLease {
            client: Some(client),
            source: source.to_owned(),
            key,
            held: false,
        })
    }

    fn client(&mut self) -> Result<&mut postgres::Client, StoreError> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::new(format!("source {}: lease closed", self.source)))
    }

    /// Takes the lease if no other session holds it; returns whether this one holds it.
    pub fn try_acquire(&mut self) -> Result<bool, StoreError> {
        if self.held {
            return self.holds();
        }
        let key = self.key;
        let row = self
            .client()?
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(|e| StoreError::from(err(&e)))?;
        self.held = row.try_get::<_, bool>(0).map_err(|e| err(&e))?;
        Ok(self.held)
    }

    /// Whether the server still shows this session holding the lease (false when the
    /// connection is gone).
    pub fn holds(&mut self) -> Result<bool, StoreError> {
        let key = self.key;
        let row = self
            .client()?
            .query_one(
                "SELECT COUNT(*) FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                   AND objsubid = 1
                   AND classid::bigint = ($1::bigint >> 32) & 4294967295
                   AND objid::bigint = $1::bigint & 4294967295",
                &[&key],
            )
            .map_err(|e| StoreError::from(err(&e)))?;
        let n: i64 = row.try_get(0).map_err(|e| err(&e))?;
        self.held = n == 1;
        Ok(self.held)
    }
}

impl Drop for SourceLease {
    fn drop(&mut self) {
        // Closing the session releases the lock.
        if let Some(client) = self.client.take() {
            close(client);
        }
    }
}

/// The source's number in `source_leases` (created on first use) under the schema's hash.
fn lease_key(client: &mut postgres::Client, source: &str) -> Result<i64, postgres::Error> {
    let mut tx = client.transaction()?;
    // Several instances start at once: the DDL and the numbering under one lock.
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({STATE_LOCK_CLASS}, hashtext(current_schema()));
         CREATE TABLE IF NOT EXISTS source_leases (
             source TEXT PRIMARY KEY,
             id BIGINT GENERATED ALWAYS AS IDENTITY (MAXVALUE 2147483647))"
    ))?;
    tx.execute(
        "INSERT INTO source_leases (source) VALUES ($1) ON CONFLICT (source) DO NOTHING",
        &[&source],
    )?;
    let row = tx.query_one(
        "SELECT (hashtext(current_schema())::bigint << 32) | id FROM source_leases
         WHERE source = $1",
        &[&source],
    )?;
    let key: i64 = row.try_get(0)?;
    tx.commit()?;
    Ok(key)
}

/// Moves `lease` to a blocking thread for `f` and back.
async fn on_lease<T: Send + 'static>(
    mut lease: SourceLease,
    f: impl FnOnce(&mut SourceLease) -> Result<T, StoreError> + Send + 'static,
) -> anyhow::Result<(SourceLease, Result<T, StoreError>)> {
    tokio::task::spawn_blocking(move || {
        let r = f(&mut lease);
        (lease, r)
    })
    .await
    .context("source lease worker panicked")
}

/// Runs polling source `source` while this instance holds its lease: at once when the store
/// is one process's (SQLite); otherwise after taking the lease (waiting as a standby until
/// then), stopping it when the lease is lost. Returns `Ok` on shutdown; an error (the lease
/// lost, the database unreachable, the source failing) goes to the supervisor, which starts
/// it again.
pub async fn run_as_leader<F, Fut>(
    store: Arc<Store>,
    source: String,
    mut shutdown: watch::Receiver<bool>,
    make_task: F,
) -> anyhow::Result<()>
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    if !store.is_shared() {
        return make_task(shutdown).await;
    }
    let name = source.clone();
    let lease = tokio::task::spawn_blocking(move || store.source_lease(&name))
        .await
        .context("source lease worker panicked")??;
    let Some(mut lease) = lease else {
        return make_task(shutdown).await;
    };
    let mut announced = false;
    loop {
        let (l, held) = on_lease(lease, SourceLease::try_acquire).await?;
        lease = l;
        if held? {
            break;
        }
        if !announced {
            tracing::info!(
                event = "source_standby",
                source,
                "another instance runs this source; standing by"
            );
            announced = true;
        }
        if sleep_or_shutdown(RETRY_EVERY, &mut shutdown).await {
            return Ok(());
        }
    }
    tracing::info!(
        event = "source_lease_taken",
        source,
        "this instance runs the source"
    );
    let (stop, stop_rx) = watch::channel(false);
    let mut task = tokio::spawn(make_task(stop_rx));
    loop {
        tokio::select! {
            r = &mut task => {
                drop(lease);
                return r.context("source task panicked")?;
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    let _ = stop.send(true);
                    let r = (&mut task).await;
                    drop(lease);
                    return r.context("source task panicked")?;
                }
            }
            () = tokio::time::sleep(CHECK_EVERY) => {
                let check = tokio::time::timeout(
                    CHECK_TIMEOUT,
                    on_lease(lease, SourceLease::holds),
                )
                .await;
                let reason = match check {
                    Ok(Ok((l, Ok(true)))) => {
                        lease = l;
                        continue;
                    }
                    Ok(Ok((_, Ok(false)))) => "the server no longer shows the lock".to_owned(),
                    Ok(Ok((_, Err(e)))) => e.to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
                };
                tracing::warn!(
                    event = "source_lease_lost",
                    source,
                    reason,
                    "lease lost; stopping the source"
                );
                let _ = stop.send(true);
                let _ = (&mut task).await;
                anyhow::bail!("source {source}: lease lost ({reason}); stopped");
            }
        }
    }
}
