//! HTTPS for the hub's listener (`[http.tls]`) and the sandbox CRM: rustls with ring.
//!
//! Contract: [`server_config`] reads the certificate chain, key and optional client CA
//! bundle once, at start, and fails naming the field and file. With a client CA every
//! connection must present a certificate chaining to it (mTLS) or the handshake fails.
//! [`TlsListener`] is an [`axum::serve::Listener`]: it accepts TCP connections in a task
//! of its own and runs each handshake in a task bounded by a timeout and a cap on
//! concurrent handshakes, so a slow or silent client never holds up the others, and axum
//! (with its graceful shutdown) only ever sees finished TLS streams. HTTP/1.1 only, as the
//! plain listener.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::ListenerTls;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;
/// Finished connections waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// A TLS setting of the listener that cannot be used: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ListenerTlsError {
    pub field: String,
    pub reason: String,
}

fn error(field: &str, reason: String) -> ListenerTlsError {
    ListenerTlsError {
        field: format!("http.tls.{field}"),
        reason,
    }
}

fn certificates(
    field: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ListenerTlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(field, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            field,
            format!("{}: holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The rustls server configuration of `[http.tls]`: HTTP/1.1 over TLS 1.2 or 1.3.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, ListenerTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("cert_file", &tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        error(
            "key_file",
            format!("{}: no usable PEM private key: {e}", tls.key_file.display()),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| error("cert_file", format!("tls versions: {e}")))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("client_ca_file", ca)? {
                roots.add(cert).map_err(|e| {
                    error(
                        "client_ca_file",
                        format!("{}: not a usable CA certificate: {e}", ca.display()),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| error("client_ca_file", format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        error(
            "key_file",
            format!(
                "{} does not go with {}: {e}",
                tls.key_file.display(),
                tls.cert_file.display()
            ),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener that hands out connections after their TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accept_task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener {
            ready,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    /// The server stopped listening: stop accepting (handshakes in progress finish and
    /// their connections are dropped).
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            _ = ready.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "tls handshake refused");
                }
                Err(_) => {
                    tracing::info!(%peer, "tls handshake timed out");
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accept task only ends when this listener is dropped (or the runtime
            // stops), so no further connection will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_cannot_be_used_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let tls = ListenerTls {
            cert_file: dir.path().join("missing.pem"),
            key_file: dir.path().join("missing.key"),
            client_ca_file: None,
        };
        let err = server_config(&tls).unwrap_err();
        assert_eq!(err.field, "http.tls.cert_file");
        assert!(err.reason.contains("missing.pem"), "{err}");
        std::fs::write(dir.path().join("empty.pem"), "nothing\n").unwrap();
        let tls = ListenerTls {
            cert_file: dir.path().join("empty.pem"),
            ..tls
        };
        let err = server_config(&tls).unwrap_err();
        assert!(err.reason.contains("holds no PEM certificate"), "{err}");
    }
}
