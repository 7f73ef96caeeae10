//! The little SQL the hub's stores need (the golden-record store, the delivery state store),
//! behind one trait so each store's logic is written once for SQLite and PostgreSQL.
//!
//! Contract: statements use `$1, $2, ...` placeholders numbered in ascending order of first
//! appearance (SQLite reads `$n` as a named parameter and numbers names in order of first
//! appearance, so positional binding then agrees with PostgreSQL). Values are four kinds
//! only — 64-bit integers, doubles, text and typed nulls — so one schema (BIGINT, DOUBLE
//! PRECISION, TEXT) serves both. Errors carry the database's message and never a bound
//! value.

use std::fmt;

/// A database error: the backend's message, without bound values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bound parameter. Nulls are typed, since PostgreSQL checks a parameter's type even when
/// it is null.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// BIGINT or NULL.
    Int(Option<i64>),
    /// DOUBLE PRECISION.
    Float(f64),
    /// TEXT or NULL.
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Float(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(Some(v.to_owned()))
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(Some(v))
    }
}

impl From<&String> for Param {
    fn from(v: &String) -> Self {
        Param::Text(Some(v.clone()))
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::Text(v)
    }
}

impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Self {
        Param::Text(v.map(str::to_owned))
    }
}

/// A value read from a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, DbError> {
        self.0
            .get(i)
            .ok_or_else(|| DbError(format!("result has no column {i}")))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.cell(i)? {
            Cell::Int(v) => Ok(*v),
            other => Err(type_error(i, "an integer", other)),
        }
    }

    /// Column `i` as a double (integers widen).
    pub fn float(&self, i: usize) -> Result<f64, DbError> {
        match self.cell(i)? {
            Cell::Float(v) => Ok(*v),
            // Stored doubles are probabilities; a whole number read back as an integer
            // by SQLite is exact in a double.
            #[allow(clippy::cast_precision_loss)]
            Cell::Int(v) => Ok(*v as f64),
            other => Err(type_error(i, "a number", other)),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        match self.cell(i)? {
            Cell::Text(v) => Ok(v.clone()),
            other => Err(type_error(i, "text", other)),
        }
    }

    /// Column `i` as text or null.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v.clone())),
            other => Err(type_error(i, "text or null", other)),
        }
    }
}

fn type_error(i: usize, wanted: &str, got: &Cell) -> DbError {
    let kind = match got {
        Cell::Null => "null",
        Cell::Int(_) => "an integer",
        Cell::Float(_) => "a double",
        Cell::Text(_) => "text",
    };
    DbError(format!("column {i}: expected {wanted}, found {kind}"))
}

/// How a transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// A consistent snapshot for several reads; takes no write lock.
    Read,
    /// Writes, serialised with every other writer of the same store (also in other
    /// processes): SQLite `BEGIN IMMEDIATE`, PostgreSQL an advisory transaction lock.
    Write,
    /// Writes whose every statement is safe under concurrency by itself (upserts that
    /// only ever move a value forward): SQLite `BEGIN IMMEDIATE` (SQLite has one writer
    /// anyway), PostgreSQL a plain `BEGIN`, so writers of different rows run in parallel.
    Concurrent,
}

/// One connection to a store's database. Not shared between threads by itself: the store
/// holds it behind a mutex.
pub trait Db: Send {
    /// Runs several statements without parameters (the schema).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Starts a transaction.
    fn begin(&mut self, kind: TxKind) -> Result<(), DbError>;
    /// Commits the open transaction.
    fn commit(&mut self) -> Result<(), DbError>;
    /// Rolls the open transaction back; used on every error path.
    fn rollback(&mut self) -> Result<(), DbError>;
    /// Runs one statement and returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError>;
    /// Runs one query and returns its rows.
    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, DbError>;
}

pub mod postgres;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod test_schema;
