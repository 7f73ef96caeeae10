//! Configuration of a customer file drop.
//!
//! Contract: every field has a default except `inbox`; [`FileDropConfig::validate`] rejects
//! values the other modules cannot work with (a non-ASCII delimiter, a pattern with more than
//! one `*`, an empty done-marker, a zero poll interval). Directory helpers derive the
//! `processing/`, `archive/`, `failed/` and `quarantine/` paths from the work directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::FileDropError;

/// The character encoding of the dropped files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// The single-byte Cyrillic code page windows-1251.
    #[serde(
        rename = "windows-1251",
        alias = "cp1251",
        alias = "Windows-1251",
        alias = "WINDOWS-1251"
    )]
    Windows1251,
    /// The single-byte Cyrillic DOS code page 866 (1C files with `Кодировка=DOS`).
    #[serde(
        rename = "cp866",
        alias = "ibm866",
        alias = "IBM866",
        alias = "CP866",
        alias = "dos"
    )]
    Cp866,
}

impl Encoding {
    /// The name used in configuration and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1251 => "windows-1251",
            Encoding::Cp866 => "cp866",
        }
    }

    /// The `encoding_rs` codec.
    pub fn codec(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Windows1251 => encoding_rs::WINDOWS_1251,
            Encoding::Cp866 => encoding_rs::IBM866,
        }
    }

    /// Whether every character is one byte (the Cyrillic code pages).
    pub fn is_single_byte(self) -> bool {
        self != Encoding::Utf8
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where files are dropped and how to tell that one is complete and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropConfig {
    /// The directory the legacy system writes files into.
    pub inbox: PathBuf,
    /// The directory that holds `processing/`, `archive/`, `failed/` and `quarantine/`;
    /// defaults to the inbox itself. Must be on the same filesystem as the inbox.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    /// Which file names in the inbox are data files: an exact name, or a name with one `*`
    /// standing for any run of characters (`*.csv`, `customers_*`, `cust_*.csv`). Matching
    /// ignores ASCII case. Names starting with `.` are never picked up.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// The encoding of the files: `utf-8` (default), `windows-1251` or `cp866`.
    #[serde(default)]
    pub encoding: Encoding,
    /// The cell separator; must be a single ASCII character. Default `;`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// A suffix such as `.done`: the file `X.csv.done` next to `X.csv` says `X.csv` is
    /// complete. When set, only files with a marker are picked up and `settle_ms` is unused.
    #[serde(default)]
    pub done_marker: Option<String>,
    /// Without a done-marker, a file whose size and mtime stayed the same for this many
    /// milliseconds is taken as complete. Default 2000.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// How often the runtime scans the inbox, in milliseconds. Default 1000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Whether a processed file is kept in `archive/` (default true). Set false for files
    /// that carry full card numbers: the hub then deletes the file once every record is on
    /// the bus, so no full PAN stays on its disk. (A file that fails stays in `failed/` for
    /// the operator.)
    #[serde(default = "default_keep_processed")]
    pub keep_processed: bool,
}

fn default_keep_processed() -> bool {
    true
}

fn default_pattern() -> String {
    "*.csv".to_owned()
}

fn default_delimiter() -> char {
    ';'
}

fn default_settle_ms() -> u64 {
    2000
}

fn default_poll_interval_ms() -> u64 {
    1000
}

impl FileDropConfig {
    /// A configuration with every default and the given inbox.
    pub fn new(inbox: impl Into<PathBuf>) -> Self {
        FileDropConfig {
            inbox: inbox.into(),
            work_dir: None,
            pattern: default_pattern(),
            encoding: Encoding::default(),
            delimiter: default_delimiter(),
            done_marker: None,
            settle_ms: default_settle_ms(),
            poll_interval_ms: default_poll_interval_ms(),
            keep_processed: default_keep_processed(),
        }
    }

    /// Checks the values the file-drop modules rely on.
    pub fn validate(&self) -> Result<(), FileDropError> {
        let bad = |field: &'static str, reason: &str| FileDropError::Config {
            field,
            reason: reason.to_owned(),
        };
        if self.inbox.as_os_str().is_empty() {
            return Err(bad("inbox", "must not be empty"));
        }
        if !self.delimiter.is_ascii() || self.delimiter == '"' || self.delimiter == '\n' {
            return Err(bad(
                "delimiter",
                "must be one ASCII character other than a quote or a newline",
            ));
        }
        if self.pattern.is_empty() {
            return Err(bad("pattern", "must not be empty"));
        }
        if self.pattern.matches('*').count() > 1 {
            return Err(bad("pattern", "may contain at most one '*'"));
        }
        if self.pattern.contains('/') || self.pattern.contains('\\') {
            return Err(bad("pattern", "must be a file name, not a path"));
        }
        let bad_marker = |m: &str| m.is_empty() || m.contains('/') || m.contains('\\');
        if self.done_marker.as_deref().is_some_and(bad_marker) {
            return Err(bad(
                "done_marker",
                "must be a non-empty file-name suffix such as \".done\"",
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(bad("poll_interval_ms", "must be greater than zero"));
        }
        Ok(())
    }

    /// The directory holding `processing/`, `archive/`, `failed/` and `quarantine/`.
    pub fn work_dir(&self) -> &Path {
        self.work_dir.as_deref().unwrap_or(&self.inbox)
    }

    /// Where claimed files are while they are processed.
    pub fn processing_dir(&self) -> PathBuf {
        self.work_dir().join("processing")
    }

    /// Where processed files end up.
    pub fn archive_dir(&self) -> PathBuf {
        self.work_dir().join("archive")
    }

    /// Where files that could not be processed end up.
    pub fn failed_dir(&self) -> PathBuf {
        self.work_dir().join("failed")
    }

    /// Where the per-file lists of rejected rows are written.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.work_dir().join("quarantine")
    }

    /// `settle_ms` as a duration.
    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }

    /// `poll_interval_ms` as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The delimiter as the byte the CSV parser wants (`;` if it is not ASCII; `validate`
    /// rejects that case up front).
    pub fn delimiter_byte(&self) -> u8 {
        u8::try_from(self.delimiter)
            .ok()
            .filter(u8::is_ascii)
            .unwrap_or(b';')
    }

    /// Whether `name` is a data file by `pattern` (ASCII case ignored; dot-files and
    /// done-markers never are).
    pub fn matches(&self, name: &str) -> bool {
        if name.starts_with('.') {
            return false;
        }
        let is_marker = |m: &str| !m.is_empty() && ends_with_ignore_case(name, m);
        if self.done_marker.as_deref().is_some_and(is_marker) {
            return false;
        }
        match self.pattern.split_once('*') {
            None => name.eq_ignore_ascii_case(&self.pattern),
            Some((prefix, suffix)) => {
                name.len() >= prefix.len() + suffix.len()
                    && starts_with_ignore_case(name, prefix)
                    && ends_with_ignore_case(name, suffix)
            }
        }
    }

    /// The done-marker path of a data file, if markers are configured.
    pub fn marker_path(&self, data_file: &Path) -> Option<PathBuf> {
        let marker = self.done_marker.as_deref()?;
        let mut name = data_file.file_name()?.to_os_string();
        name.push(marker);
        Some(data_file.with_file_name(name))
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len()
        .checked_sub(suffix.len())
        .and_then(|start| s.as_bytes().get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
}
