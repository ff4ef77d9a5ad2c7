//! TLS for the server and for clients, through tonic's rustls support (with the `ring`
//! provider; clients also trust the system's roots). The server reads its PEM files once at start, so a missing or unreadable
//! file stops it with the file's name rather than failing the first handshake.
//!
//! What this is not: a certificate authority. Certificates come from the operator (the
//! README shows a command that makes a test set).

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::TlsConfig;

/// Reads `path` for the setting `field`, naming both when it cannot.
fn read(field: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("{field} {}: {error}", path.display()))
}

/// The server's TLS from its configuration.
pub fn server_config(tls: &TlsConfig) -> Result<ServerTlsConfig, String> {
    let certificate = read("server.tls.cert_file", &tls.cert_file)?;
    let key = read("server.tls.key_file", &tls.key_file)?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(certificate, key));
    if let Some(client_ca_file) = &tls.client_ca_file {
        let ca = read("server.tls.client_ca_file", client_ca_file)?;
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(config)
}

/// A client's TLS: the system's trusted roots, plus the CA in `ca_file` when the
/// exchange's certificate comes from its operator's own CA, and optionally a client
/// certificate and key for mutual TLS.
pub fn client_config(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientTlsConfig, String> {
    let mut config = ClientTlsConfig::new().with_enabled_roots();
    if let Some(ca_file) = ca_file {
        config = config.ca_certificate(Certificate::from_pem(read("--ca-file", ca_file)?));
    }
    if let Some((cert_file, key_file)) = identity {
        let certificate = read("--cert-file", cert_file)?;
        let key = read("--key-file", key_file)?;
        config = config.identity(Identity::from_pem(certificate, key));
    }
    Ok(config)
}
