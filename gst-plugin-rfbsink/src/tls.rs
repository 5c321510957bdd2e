// SPDX-License-Identifier: MPL-2.0

//! Certificates shared by the HTTPS/WebSocket server and WebTransport: loaded from PEM files, or
//! self-signed (valid 14 days, the most Chromium accepts with serverCertificateHashes) and renewed
//! before they expire. docs/security.md says when each is used.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use wtransport::tls::self_signed::time;
use wtransport::Identity;

/// Chromium accepts serverCertificateHashes only for certificates valid at most 14 days.
const SELF_SIGNED_VALIDITY: time::Duration = time::Duration::days(14);
/// A self-signed certificate is replaced this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(2 * 24 * 3600);

/// Why there is no certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertificateError {
    #[error("cannot load {} / {}: {source}", cert.display(), key.display())]
    Load {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: wtransport::tls::error::PemLoadError,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[source] wtransport::tls::error::InvalidSan),
    #[error("unsupported private key: {0}")]
    Key(#[source] rustls::Error),
}

/// Where the certificate comes from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generated, for these names besides the loopback ones.
    SelfSigned {
        names: Vec<String>,
    },
}

/// The current certificate; swapped in place when a self-signed one is renewed.
pub(crate) struct Certificates {
    source: Source,
    current: Mutex<Current>,
}

struct Current {
    identity: Identity,
    certified: Arc<CertifiedKey>,
    /// SHA-256 of the self-signed certificate (hex); None for one from files, which the browser
    /// validates the usual way.
    hash: Option<String>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("source", &self.source)
            .finish()
    }
}

impl Certificates {
    /// Loads or generates the certificate. `block_on` runs the file loading (async in
    /// wtransport).
    pub fn new(source: Source) -> Result<Arc<Certificates>, CertificateError> {
        let current = Current::new(&source)?;
        Ok(Arc::new(Certificates {
            source,
            current: Mutex::new(current),
        }))
    }

    pub fn is_self_signed(&self) -> bool {
        matches!(self.source, Source::SelfSigned { .. })
    }

    pub fn identity(&self) -> Identity {
        self.current.lock().unwrap().identity.clone_identity()
    }

    pub fn hash(&self) -> Option<String> {
        self.current.lock().unwrap().hash.clone()
    }

    /// How long until a self-signed certificate must be renewed; None for one from files.
    pub fn renew_in(&self) -> Option<Duration> {
        self.is_self_signed()
            .then(|| Duration::try_from(SELF_SIGNED_VALIDITY).unwrap() - RENEW_BEFORE)
    }

    /// Generates a new self-signed certificate; the servers pick it up (HTTPS at once, through
    /// `resolver()`; WebTransport when it reloads its configuration).
    pub fn renew(&self) -> Result<(), CertificateError> {
        let next = Current::new(&self.source)?;
        *self.current.lock().unwrap() = next;
        Ok(())
    }

    /// The rustls server configuration for HTTPS (HTTP/1.1 only: WebSocket upgrades).
    pub fn rustls_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Current {
    fn new(source: &Source) -> Result<Current, CertificateError> {
        let (identity, hash) = match source {
            Source::Files { cert, key } => {
                let identity =
                    crate::runtime::block_on(Identity::load_pemfiles(cert.clone(), key.clone()))
                        .map_err(|source| CertificateError::Load {
                            cert: cert.clone(),
                            key: key.clone(),
                            source,
                        })?;
                (identity, None)
            }
            Source::SelfSigned { names } => {
                let identity = self_signed(names)?;
                let hash = hash_hex(&identity);
                (identity, Some(hash))
            }
        };
        let certified = certified_key(&identity)?;
        Ok(Current {
            identity,
            certified,
            hash,
        })
    }
}

fn self_signed(names: &[String]) -> Result<Identity, CertificateError> {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks, inside the 14 days.
    let not_before = now - time::Duration::minutes(10);
    let mut all: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for n in names {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    Identity::self_signed_builder()
        .subject_alt_names(all)
        .not_before(not_before)
        .not_after(not_before + SELF_SIGNED_VALIDITY)
        .build()
        .map_err(CertificateError::Generate)
}

/// SHA-256 of the certificate's DER, lowercase hex (what serverCertificateHashes takes).
fn hash_hex(identity: &Identity) -> String {
    let digest = identity.certificate_chain().as_slice()[0].hash();
    let bytes: &[u8; 32] = digest.as_ref();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn certified_key(identity: &Identity) -> Result<Arc<CertifiedKey>, CertificateError> {
    let chain: Vec<CertificateDer<'static>> = identity
        .certificate_chain()
        .as_slice()
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        identity.private_key().secret_der().to_vec(),
    ));
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertificateError::Key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.lock().unwrap().certified.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_gives_a_hash_and_renews() {
        let certs = Certificates::new(Source::SelfSigned {
            names: vec!["192.0.2.1".into()],
        })
        .unwrap();
        let first = certs.hash().unwrap();
        assert_eq!(first.len(), 64);
        assert!(certs.renew_in().unwrap() < Duration::from_secs(14 * 24 * 3600));
        certs.renew().unwrap();
        assert_ne!(certs.hash().unwrap(), first);
        let _ = certs.rustls_config();
    }
}
