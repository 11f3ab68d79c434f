//! TLS in front of the plain-HTTP doubles, so both providers reach "AWS" and "the API
//! server" as they do in a cluster: over TLS, by real host names, trusting a CA. The CA
//! and the serving certificate are made for the run (ECDSA P-256); the front terminates
//! TLS and relays the bytes to the double it points at (watches included), so the
//! doubles keep counting and answering as they do on the plain path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The run's CA (PEM, for `SSL_CERT_FILE` and the in-cluster `ca.crt`) and a server
/// configuration with a certificate for `names`.
pub struct Pki {
    pub ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

pub fn pki(names: &[String]) -> anyhow::Result<Pki> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "storm side-by-side run CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca, &ca_key);
    // `new` turns "127.0.0.1" into an IP address SAN and the rest into DNS names.
    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, names.first().map_or("localhost", |n| n));
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // No ALPN: both clients then speak HTTP/1.1, which is what the doubles serve.
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    })
}

/// A TLS front listening on one address; `point_at` changes the double behind it.
pub struct Front {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    pub async fn start(bind: SocketAddr, pki: &Pki) -> anyhow::Result<Front> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let target = upstream.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let Some(to) = *target.lock().unwrap_or_else(|p| p.into_inner()) else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(Front {
            addr,
            upstream,
            task,
        })
    }

    /// New connections go to `url`'s address (`http://127.0.0.1:port`) from now on.
    pub fn point_at(&self, url: &str) -> anyhow::Result<()> {
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
        Ok(())
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}
