//! A store on an embedded SQLite file: WAL, `synchronous=FULL` (a committed
//! transaction survives a loss of power), writers serialised by `BEGIN IMMEDIATE`.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};

use super::{Cell, Db, DbError, Param, Row, TxKind};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Statements kept prepared; a store uses a few dozen distinct ones.
const STATEMENT_CACHE: usize = 128;

pub struct SqliteDb {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> DbError {
    DbError(format!("sqlite: {e}"))
}

impl SqliteDb {
    pub fn open(path: &Path) -> Result<SqliteDb, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| DbError(format!("sqlite: cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteDb { conn })
    }
}

fn to_sql(p: &Param) -> SqlValue {
    match p {
        Param::Int(Some(v)) => SqlValue::Integer(*v),
        Param::Float(v) => SqlValue::Real(*v),
        Param::Text(Some(v)) => SqlValue::Text(v.clone()),
        Param::Int(None) | Param::Text(None) => SqlValue::Null,
    }
}

fn from_sql(v: ValueRef<'_>, column: usize) -> Result<Cell, DbError> {
    Ok(match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Float(f),
        ValueRef::Text(t) => Cell::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| DbError(format!("sqlite: column {column} is not utf-8")))?,
        ),
        ValueRef::Blob(_) => return Err(DbError(format!("sqlite: column {column} is a blob"))),
    })
}

impl Db for SqliteDb {
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(err)
    }

    fn begin(&mut self, kind: TxKind) -> Result<(), DbError> {
        let sql = match kind {
            TxKind::Read => "BEGIN DEFERRED",
            TxKind::Write | TxKind::Concurrent => "BEGIN IMMEDIATE",
        };
        self.conn.execute_batch(sql).map_err(err)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(err)
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").map_err(err)
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let n = stmt
            .execute(params_from_iter(params.iter().map(to_sql)))
            .map_err(err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(params.iter().map(to_sql)))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut cells = Vec::with_capacity(columns);
            for i in 0..columns {
                cells.push(from_sql(row.get_ref(i).map_err(err)?, i)?);
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}
