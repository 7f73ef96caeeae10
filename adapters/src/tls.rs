//! TLS of the hub's outgoing HTTP clients, shared by every connector (CRM sinks, the AML
//! provider, REST polling, SOAP), and the rule against plain HTTP off the machine.
//!
//! Contract:
//! - Trust: without `ca_file` a client trusts what it trusted before (the operating
//!   system's store through reqwest's platform verifier). `ca_file` *adds* a PEM bundle (a
//!   bank's internal CA) to that store; with `ca_only = true` the bundle is the only trust.
//! - Identity: `client_cert` + `client_key` (PEM) present a client certificate (mTLS); one
//!   without the other is a configuration error, never silently ignored.
//! - Paths are resolved against the config file's folder by [`ClientTls::resolve_paths`]
//!   when the config is loaded, so a client receives absolute (or working-dir) paths.
//! - Plain HTTP: [`plain_http_problem`] refuses an `http://` URL whose host is not loopback
//!   unless the endpoint sets `allow_plain_http = true`: a token or customer data must not
//!   cross a network unencrypted by accident.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `tls` table of an outgoing endpoint (`[sinks.crm_rest.tls]`, `[compliance.provider.tls]`,
/// ...). Every field is optional; an empty table changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// PEM bundle of CA certificates to trust in addition to the system's (or instead of
    /// them with `ca_only`). Relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system's store. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ca_only: bool,
    /// PEM client certificate chain for mTLS (needs `client_key`). Also accepted as
    /// `cert_file`, the name `[bus.kafka.security]` uses.
    #[serde(default, alias = "cert_file", skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (PKCS#8, PKCS#1 or SEC1). Also accepted
    /// as `key_file`.
    #[serde(default, alias = "key_file", skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A TLS setting that cannot be applied: the field (`tls.ca_file`, ...) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TlsError {
    pub field: String,
    pub reason: String,
}

impl ClientTls {
    /// Whether the table sets anything at all.
    pub fn is_empty(&self) -> bool {
        self == &ClientTls::default()
    }

    /// Static problems (no IO), as (field under `tls`, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.client_cert.is_some() != self.client_key.is_some() {
            out.push((
                "client_cert",
                "client_cert and client_key go together (mTLS needs both)".to_owned(),
            ));
        }
        if self.ca_only && self.ca_file.is_none() {
            out.push((
                "ca_only",
                "`ca_only = true` needs `ca_file` (otherwise nothing would be trusted)".to_owned(),
            ));
        }
        out
    }

    /// The configured files with their field names, for existence checks.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        [
            ("ca_file", self.ca_file.as_deref()),
            ("client_cert", self.client_cert.as_deref()),
            ("client_key", self.client_key.as_deref()),
        ]
        .into_iter()
        .filter_map(|(field, p)| p.map(|p| (field, p)))
        .collect()
    }

    /// Makes relative paths relative to `base_dir` (the config file's folder).
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        for p in [
            &mut self.ca_file,
            &mut self.client_cert,
            &mut self.client_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        }
    }

    /// Applies trust and identity to `builder`, reading the PEM files. Errors name the
    /// field (`tls.ca_file`, ...) and the file.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        if let Some((field, reason)) = self.problems().into_iter().next() {
            return Err(TlsError {
                field: format!("tls.{field}"),
                reason,
            });
        }
        if let Some(ca) = &self.ca_file {
            let pem = read("tls.ca_file", ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TlsError {
                field: "tls.ca_file".into(),
                reason: format!("{}: not a PEM certificate bundle: {e}", ca.display()),
            })?;
            if certs.is_empty() {
                return Err(TlsError {
                    field: "tls.ca_file".into(),
                    reason: format!("{}: holds no PEM certificate", ca.display()),
                });
            }
            builder = if self.ca_only {
                builder.tls_certs_only(certs)
            } else {
                builder.tls_certs_merge(certs)
            };
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            let mut pem = read("tls.client_cert", cert)?;
            pem.push(b'\n');
            pem.extend(read("tls.client_key", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| TlsError {
                field: "tls.client_cert".into(),
                reason: format!(
                    "{} with {}: not a PEM certificate and private key: {e}",
                    cert.display(),
                    key.display()
                ),
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

/// Reads a PEM file; certificates and keys are small, a larger file is a wrong path.
fn read(field: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    const MAX_PEM_BYTES: u64 = 4 << 20;
    let err = |reason: String| TlsError {
        field: field.to_owned(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(err(format!(
            "{} is {len} bytes, more than a PEM file of certificates or a key can be",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))
}

/// Whether `host` (a URL host, IPv6 with or without brackets) is this machine:
/// `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The plain-HTTP rule for one endpoint URL: `None` when `url` is `https://`, an `http://`
/// URL to a loopback host, or `allow_plain_http` is set; otherwise why it is refused.
/// A URL that does not parse is left to the endpoint's own check.
pub fn plain_http_problem(url: &str, allow_plain_http: bool) -> Option<String> {
    if allow_plain_http {
        return None;
    }
    let parsed = reqwest::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let host = parsed.host_str().unwrap_or_default();
    if is_loopback_host(host) {
        return None;
    }
    Some(format!(
        "plain http to `{host}` is refused: tokens and customer data would cross the network \
         unencrypted; use https:// or set `allow_plain_http = true` for this endpoint"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.1.2.3",
            "crm.bank.local",
            "localhost.evil.example",
            "::2",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn plain_http_rule() {
        let refused = plain_http_problem("http://10.1.2.3/", false).unwrap();
        assert!(refused.contains("`10.1.2.3`"), "{refused}");
        assert!(refused.contains("allow_plain_http = true"), "{refused}");
        assert!(plain_http_problem("http://crm.bank.local:8080/api", false).is_some());
        assert_eq!(plain_http_problem("http://10.1.2.3/", true), None);
        assert_eq!(plain_http_problem("https://10.1.2.3/", false), None);
        assert_eq!(plain_http_problem("http://127.0.0.1:9/", false), None);
        assert_eq!(plain_http_problem("http://localhost/", false), None);
        assert_eq!(plain_http_problem("http://[::1]:80/", false), None);
        assert_eq!(plain_http_problem("not a url", false), None);
    }

    #[test]
    fn parses_with_aliases_and_resolves_paths() {
        let tls: ClientTls = toml::from_str(
            "ca_file = \"tls/bank-ca.pem\"\ncert_file = \"/etc/hub/hub.pem\"\nkey_file = \"hub.key\"\n",
        )
        .unwrap();
        assert!(tls.problems().is_empty());
        let mut resolved = tls.clone();
        resolved.resolve_paths(Path::new("/etc/hub"));
        assert_eq!(
            resolved.ca_file.as_deref(),
            Some(Path::new("/etc/hub/tls/bank-ca.pem"))
        );
        assert_eq!(
            resolved.client_cert.as_deref(),
            Some(Path::new("/etc/hub/hub.pem"))
        );
        assert_eq!(
            resolved.client_key.as_deref(),
            Some(Path::new("/etc/hub/hub.key"))
        );
        assert!(toml::from_str::<ClientTls>("ca_bundle = \"x\"\n").is_err());
    }

    #[test]
    fn half_identity_and_ca_only_without_bundle_are_refused() {
        let half = ClientTls {
            client_cert: Some("a.pem".into()),
            ..ClientTls::default()
        };
        assert_eq!(half.problems()[0].0, "client_cert");
        let err = half.apply(reqwest::Client::builder()).unwrap_err();
        assert_eq!(err.field, "tls.client_cert");
        let only = ClientTls {
            ca_only: true,
            ..ClientTls::default()
        };
        assert_eq!(only.problems()[0].0, "ca_only");
    }

    #[test]
    fn unreadable_and_empty_bundles_name_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ClientTls {
            ca_file: Some(dir.path().join("missing.pem")),
            ..ClientTls::default()
        };
        let err = missing.apply(reqwest::Client::builder()).unwrap_err();
        assert_eq!(err.field, "tls.ca_file");
        assert!(err.reason.contains("missing.pem"), "{err}");
        std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").unwrap();
        let empty = ClientTls {
            ca_file: Some(dir.path().join("empty.pem")),
            ..ClientTls::default()
        };
        let err = empty.apply(reqwest::Client::builder()).unwrap_err();
        assert!(err.reason.contains("no PEM certificate"), "{err}");
    }
}
