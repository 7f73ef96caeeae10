//! A store on PostgreSQL, for several hub processes sharing one database.
//!
//! Contract: a [`TxKind::Write`] transaction first takes `pg_advisory_xact_lock(<lock
//! class>, hashtext(current_schema()))`, the class being the store's own (given to
//! [`PgDb::connect`]), so every writer of the same store and schema — in this process or
//! another — runs one at a time and sees what the previous one committed (READ COMMITTED
//! takes a fresh snapshot per statement). A [`TxKind::Concurrent`] transaction takes no
//! lock: its statements must be safe under concurrency by themselves. Reads run in a
//! REPEATABLE READ, READ ONLY transaction for a consistent view without the lock. The schema
//! comes from the connection's `search_path` (for example
//! `?options=-c%20search_path%3Dgolden` in the URL).
//!
//! The `postgres` client blocks on a runtime of its own: call the store from
//! `tokio::task::spawn_blocking`, never directly on an async task. Dropping the store on an
//! async task is safe (the connection is closed on a thread of its own).

use std::collections::HashMap;
use std::str::FromStr;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};

use super::{Cell, Db, DbError, Param, Row, TxKind};

pub struct PgDb {
    config: postgres::Config,
    /// First key of the advisory lock that serialises this store's writers.
    write_lock_class: i32,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

/// The error without its DETAIL line, which can quote key values.
pub(crate) fn err(e: &postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError(format!(
            "postgres: {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        )),
        None => {
            let cause = std::error::Error::source(e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            DbError(format!("postgres: {e}{cause}"))
        }
    }
}

impl PgDb {
    /// Connects without TLS (a database on the same host or a trusted network).
    /// `write_lock_class` is the first key of the advisory lock [`TxKind::Write`]
    /// transactions take: one per store, so two stores in one schema do not serialise each
    /// other.
    pub fn connect(url: &str, write_lock_class: i32) -> Result<PgDb, DbError> {
        let config = parse_url(url)?;
        let client = open_client(&config)?;
        Ok(PgDb {
            config,
            write_lock_class,
            client: Some(client),
            statements: HashMap::new(),
        })
    }

    /// Replaces a connection the server closed (a restart, a network cut), so the store
    /// recovers at the next call instead of failing until the process restarts.
    fn reconnect_if_closed(&mut self) -> Result<(), DbError> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.reconnect()
    }

    fn reconnect(&mut self) -> Result<(), DbError> {
        self.statements.clear();
        if let Some(old) = self.client.take() {
            close(old);
        }
        self.client = Some(open_client(&self.config)?);
        Ok(())
    }

    fn begin_once(&mut self, kind: TxKind) -> Result<(), postgres::Error> {
        let sql = match kind {
            TxKind::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY".to_owned(),
            // One round trip: the transaction and its lock.
            TxKind::Write => format!(
                "BEGIN; SELECT pg_advisory_xact_lock({}, hashtext(current_schema()))",
                self.write_lock_class
            ),
            TxKind::Concurrent => "BEGIN".to_owned(),
        };
        match self.client.as_mut() {
            Some(c) => c.batch_execute(&sql),
            // reconnect_if_closed ran just before: a client is there.
            None => Ok(()),
        }
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client
            .as_mut()
            .ok_or_else(|| DbError("postgres: connection closed".into()))
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client()?.prepare(sql).map_err(|e| err(&e))?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// Whether an error means the connection is gone (closed, I/O failure, or the server ending
/// the session: SQLSTATE class 08, or 57P01–57P03 on shutdown).
fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// Parses a connection URL. The URL may carry a password: it never goes into a message.
pub(crate) fn parse_url(url: &str) -> Result<postgres::Config, DbError> {
    postgres::Config::from_str(url)
        .map_err(|_| DbError("postgres: the connection URL cannot be parsed".into()))
}

/// Connecting blocks on the client's own runtime, which panics on a thread that runs async
/// tasks: connect on a thread of its own, whatever the caller's thread is.
pub(crate) fn open_client(config: &postgres::Config) -> Result<Client, DbError> {
    std::thread::scope(|s| {
        s.spawn(|| config.connect(NoTls).map_err(|e| err(&e)))
            .join()
            .unwrap_or_else(|_| Err(DbError("postgres: the connecting thread panicked".into())))
    })
}

/// Closing blocks on the client's runtime too: on a thread of its own when the caller may be
/// an async task.
pub(crate) fn close(client: Client) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("pg-close".into())
            .spawn(move || drop(client));
    } else {
        drop(client);
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            close(client);
        }
    }
}

fn boxed(params: &[Param]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                Param::Int(v) => Box::new(*v),
                Param::Float(v) => Box::new(*v),
                Param::Text(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

fn cells(row: &postgres::Row) -> Result<Row, DbError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let get_err = |e: postgres::Error| err(&e);
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map_err(get_err)?
                .map(Cell::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map_err(get_err)?
                .map(|v| Cell::Int(i64::from(v)))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)
                .map_err(get_err)?
                .map(|v| Cell::Int(i64::from(v)))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)
                .map_err(get_err)?
                .map(Cell::Float)
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
            row.try_get::<_, Option<String>>(i)
                .map_err(get_err)?
                .map(Cell::Text)
        } else {
            return Err(DbError(format!(
                "postgres: column {i} has unsupported type {ty}"
            )));
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(out))
}

impl Db for PgDb {
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.client()?.batch_execute(sql).map_err(|e| err(&e))
    }

    fn begin(&mut self, kind: TxKind) -> Result<(), DbError> {
        self.reconnect_if_closed()?;
        match self.begin_once(kind) {
            Ok(()) => Ok(()),
            // The server dropped the connection since the last call: nothing of this
            // transaction ran, so connecting again and retrying once is safe.
            Err(e) if connection_lost(&e) => {
                self.reconnect()?;
                self.begin_once(kind).map_err(|e| err(&e))
            }
            Err(e) => Err(err(&e)),
        }
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        self.batch("ROLLBACK")
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError> {
        let stmt = self.statement(sql)?;
        let values = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| &**b).collect();
        self.client()?.execute(&stmt, &refs).map_err(|e| err(&e))
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, DbError> {
        let stmt = self.statement(sql)?;
        let values = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| &**b).collect();
        let rows = self.client()?.query(&stmt, &refs).map_err(|e| err(&e))?;
        rows.iter().map(cells).collect()
    }
}
