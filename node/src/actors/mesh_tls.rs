//! Mutual TLS for the mesh (`[cluster.tls]`): every node presents a certificate of the mesh's CA
//! and accepts only peers that present one too, so a peer without the CA's certificate cannot
//! join, and what crosses the mesh (answer text, control messages) is encrypted. The cookie
//! handshake still runs inside the TLS session.

use crate::config::MeshTlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
pub enum MeshTlsError {
    #[error("mesh TLS file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("mesh TLS: {0}")]
    Config(String),
}

/// The mesh's TLS, ready for the node server (acceptor) and the dialer (connector).
#[derive(Clone)]
pub struct MeshTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

fn file_error(path: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> MeshTlsError + '_ {
    move |e| MeshTlsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, MeshTlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(file_error(path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(path))?;
    if certs.is_empty() {
        return Err(MeshTlsError::File {
            path: path.display().to_string(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

fn config_error(e: impl std::fmt::Display) -> MeshTlsError {
    MeshTlsError::Config(e.to_string())
}

/// Reads the certificate, key and CA and builds both sides of mutual TLS.
pub fn load(cfg: &MeshTlsConfig) -> Result<MeshTls, MeshTlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certs(&cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(file_error(&cfg.key))?;
    let mut roots = RootCertStore::empty();
    for ca in certs(&cfg.ca)? {
        roots.add(ca).map_err(config_error)?;
    }
    let roots = Arc::new(roots);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(config_error)?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config_error)?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(config_error)?;
    let server_name = ServerName::try_from(cfg.server_name.clone()).map_err(config_error)?;
    Ok(MeshTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        server_name,
    })
}
