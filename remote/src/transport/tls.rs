//! TLS on the links: each connection's TCP stream is wrapped in TLS (rustls, ring provider)
//! before amber's own handshake runs inside it.
//!
//! amber's handshake (version, node identity, HMAC challenge–response over the shared
//! secret) stays as it is: TLS adds confidentiality and integrity on the wire, and with
//! [`TlsConfig::from_pem`] mutual authentication by certificate. A connection whose TLS
//! handshake fails is dropped with [`HandshakeError::Tls`](crate::HandshakeError::Tls) and a
//! log line, like one that fails amber's handshake; it never becomes a link.

use std::fmt;
use std::sync::Arc;

use tokio_rustls::rustls::{
    self, ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::WebPkiClientVerifier,
};

/// How the links of a transport use TLS: the client side (dialling) and the server side
/// (accepting) of every connection, and the name a dialling node expects in the
/// certificate of the node it dials.
///
/// Every node of a cluster uses it alike: set it on every node's
/// [`TransportConfig`](crate::TransportConfig) with
/// [`with_tls`](crate::TransportConfig::with_tls), or on none.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) server_name: ServerName<'static>,
}

/// A TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM input without a certificate or a private key, or that does not parse.
    #[error("bad PEM input: {0}")]
    Pem(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// rustls refused the certificates, key or settings.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. no trusted root).
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

impl TlsConfig {
    /// A configuration from rustls configurations built by the caller (any provider, any
    /// verification policy). `server_name` is what a dialling node checks the certificate of
    /// the node it dials against (one name for the whole cluster, or an IP address).
    pub fn new(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        server_name: &str,
    ) -> Result<TlsConfig, TlsError> {
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
        Ok(TlsConfig { client, server, server_name })
    }

    /// Mutual TLS for a cluster whose nodes present certificates issued by the CA(s) in
    /// `ca_pem`: every node serves `cert_chain_pem` with `key_pem`, presents the same chain
    /// when it dials, requires a certificate from that CA of every node that dials it, and
    /// checks that the node it dials presents one valid for `server_name`.
    ///
    /// The crypto provider is the process default if the application installed one
    /// (`rustls::crypto::CryptoProvider::install_default`, e.g. aws-lc-rs for post-quantum
    /// key exchange), else rustls's *ring* provider. [`TlsConfig::new`] takes configurations
    /// built with any provider.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        server_name: &str,
    ) -> Result<TlsConfig, TlsError> {
        let pem = |e: rustls::pki_types::pem::Error| TlsError::Pem(e.to_string());
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(ca.map_err(pem)?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem("no CA certificate".to_owned()));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(pem)?;
        if chain.is_empty() {
            return Err(TlsError::Pem("no certificate in the chain".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(pem)?;
        let provider = provider();
        let roots = Arc::new(roots);
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        TlsConfig::new(Arc::new(client), Arc::new(server), server_name)
    }
}

/// The crypto provider of [`TlsConfig::from_pem`]: the process-default one if the
/// application installed one ([`CryptoProvider::install_default`], e.g. aws-lc-rs for
/// post-quantum key exchange), else *ring*'s, which amber's `tls` feature builds in.
fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    // rustls 0.23.48 deprecates this constructor because *ring* offers no post-quantum key
    // exchange; it remains the provider amber builds in (no C toolchain needed), and its
    // choice is documented. An application wanting post-quantum key exchange installs
    // another provider as the process default, which is preferred above.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    Arc::new(ring)
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}
