//! TLS on both listeners, when a certificate and key are configured (`COFFER_TLS_CERT`,
//! `COFFER_TLS_KEY`: PEM files, the certificate file holding the chain, leaf first).
//! Without them Coffer speaks plain HTTP and gRPC, for a proxy or a mesh in front that
//! terminates TLS.
//!
//! The files are read and checked once at startup ([`Tls::load`]): a missing file, a file
//! with no certificate or no private key, or a key that does not match the certificate
//! stops the server with a message naming the variable. REST is served by
//! [`TlsListener`], which accepts connections and runs their handshakes concurrently
//! (bounded in number and time) so that one slow client cannot hold up the others;
//! gRPC by tonic's own TLS ([`Tls::grpc`]) with the same certificate and the same
//! handshake timeout. rustls with the ring provider, TLS 1.2 and 1.3.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at once on the REST listener; connections beyond wait in the
/// kernel's accept queue.
pub const HANDSHAKES_MAX: usize = 256;

/// Connections whose handshake is done, waiting for the HTTP server to take them.
const READY_MAX: usize = 64;

/// The configured certificate and key, checked.
#[derive(Clone)]
pub struct Tls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// For REST: HTTP/1.1 over TLS.
    rest: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks the certificate chain and key.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        // tonic's TLS takes the process's provider.
        crate::support::install_crypto_provider();
        let cert_pem = std::fs::read(cert)
            .with_context(|| format!("COFFER_TLS_CERT: cannot read {}", cert.display()))?;
        let key_pem =
            std::fs::read(key).with_context(|| format!("COFFER_TLS_KEY: cannot read {}", key.display()))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("COFFER_TLS_CERT: {} is not PEM", cert.display()))?;
        anyhow::ensure!(!chain.is_empty(), "COFFER_TLS_CERT: {} holds no certificate", cert.display());
        let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
            .with_context(|| format!("COFFER_TLS_KEY: {} holds no private key", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut rest = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .context("COFFER_TLS_KEY does not match the certificate of COFFER_TLS_CERT")?;
        rest.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { cert_pem, key_pem, rest: Arc::new(rest) })
    }

    /// The same certificate for tonic's gRPC server (HTTP/2 over TLS).
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        let identity = tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem);
        tonic::transport::ServerTlsConfig::new().identity(identity).timeout(HANDSHAKE_TIMEOUT)
    }

    /// The REST listener: `listener`'s connections, once their handshake is done.
    pub fn listener(&self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (ready, handshaken) = mpsc::channel(READY_MAX);
        tokio::spawn(accept(listener, TlsAcceptor::from(self.rest.clone()), ready));
        Ok(TlsListener { handshaken, local })
    }
}

/// Accepts connections and runs their handshakes until the [`TlsListener`] is dropped.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The REST server's listener under TLS: hands over connections whose handshake is done.
#[derive(Debug)]
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it only does when this listener is dropped):
            // nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
