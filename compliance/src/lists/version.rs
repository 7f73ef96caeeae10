//! The content version of a list: the first 16 hex digits of SHA-256 over its source files.
//!
//! Each file contributes its role ("sdn", "alt", ...), its length and its bytes, in the
//! loader's fixed order, so that moving bytes from one file to another changes the version.
//! The publication date a list states is inside those bytes, so it is covered too.

use std::io::Read;

use sha2::{Digest, Sha256};

/// Accumulates the source files of one list.
#[derive(Default)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a whole file held in memory.
    pub fn add_file(&mut self, role: &str, bytes: &[u8]) {
        self.begin(role, Some(bytes.len() as u64));
        self.hasher.update(bytes);
    }

    /// Starts a file whose bytes will be fed through [`Fingerprint::update`] (streamed files,
    /// whose length is not known up front: the role alone separates them).
    pub(crate) fn begin(&mut self, role: &str, len: Option<u64>) {
        self.hasher.update(role.as_bytes());
        self.hasher.update([0u8]);
        if let Some(len) = len {
            self.hasher.update(len.to_le_bytes());
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The version string: 16 lowercase hex digits.
    pub fn finish(self) -> String {
        let digest = self.hasher.finalize();
        hex::encode(&digest[..8])
    }
}

/// A reader that feeds every byte it passes on into a fingerprint.
pub(crate) struct HashingReader<R> {
    inner: R,
    fingerprint: Fingerprint,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, role: &str) -> Self {
        let mut fingerprint = Fingerprint::new();
        fingerprint.begin(role, None);
        HashingReader { inner, fingerprint }
    }

    /// Reads what is left (so the version covers the whole file even when parsing stopped at
    /// the closing root element) and returns the version.
    pub(crate) fn finish(mut self) -> std::io::Result<String> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                break;
            }
        }
        Ok(self.fingerprint.finish())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.fingerprint.update(&buf[..n]);
        Ok(n)
    }
}
