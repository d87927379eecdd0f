//! TLS: client configurations (system roots or a CA file) and the handshake probe, with
//! SNI set to the owned name while connecting to the target's address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::{io_detail, ProbeOutcome, ProbeTarget};

/// TLS client configurations by CA file (`None`: the system's roots), built once each.
#[derive(Default)]
pub struct TlsConfigs {
    built: Mutex<HashMap<Option<PathBuf>, Arc<ClientConfig>>>,
}

impl TlsConfigs {
    pub fn get(&self, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
        let key = ca_file.map(Path::to_path_buf);
        let mut built = self
            .built
            .lock()
            .map_err(|_| "TLS configuration cache poisoned".to_owned())?;
        if let Some(config) = built.get(&key) {
            return Ok(config.clone());
        }
        let config = Arc::new(client_config(ca_file)?);
        built.insert(key, config.clone());
        Ok(config)
    }
}

fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|err| format!("CA file {}: {err}", path.display()))?
            {
                let cert = cert.map_err(|err| format!("CA file {}: {err}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|err| format!("CA file {}: {err}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // One unusable system certificate must not disable all the others.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub async fn handshake(target: &ProbeTarget, port: u16, config: Arc<ClientConfig>) -> ProbeOutcome {
    let started = Instant::now();
    let host = target.host();
    let Ok(server_name) = ServerName::try_from(host.clone()) else {
        return ProbeOutcome::fail(format!("{host:?} is not a TLS server name"));
    };
    let addr = SocketAddr::new(target.addr, port);
    let stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(err) => return ProbeOutcome::fail(format!("tcp {addr}: {}", io_detail(&err))),
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match connector.connect(server_name, stream).await {
        Ok(_) => ProbeOutcome::pass(started, None),
        Err(err) => ProbeOutcome::fail(format!("tls {addr} as {host}: {err}")),
    }
}
