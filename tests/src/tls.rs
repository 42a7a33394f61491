//! Certificates made at test time (rcgen) and the TLS settings of a `redis-server`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Installs rustls' `ring` provider as the process default (idempotent). rustls 0.23 needs
/// one before any TLS client is built; [`TlsFiles::generate`] calls this.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// PEM files in a fresh temp dir, removed on drop: a CA with a server certificate (SANs
/// `127.0.0.1` and `localhost`) and a client certificate, and an unrelated "other" CA with a
/// client certificate of its own (for rejection tests).
pub struct TlsFiles {
    /// The directory holding every file below.
    pub dir: PathBuf,
    /// The CA that signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// Server certificate (also usable as a client certificate: replication, sentinel links).
    pub server_cert: PathBuf,
    /// The server certificate's key (PKCS#8).
    pub server_key: PathBuf,
    /// Client certificate signed by `ca_cert`.
    pub client_cert: PathBuf,
    /// The client certificate's key (PKCS#8).
    pub client_key: PathBuf,
    /// A second, unrelated CA.
    pub other_ca_cert: PathBuf,
    /// A client certificate signed by `other_ca_cert`.
    pub other_client_cert: PathBuf,
    /// That certificate's key.
    pub other_client_key: PathBuf,
}

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("generate CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca, name: &str, sans: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages.to_vec();
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("generate leaf key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Reads a PEM file.
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

impl TlsFiles {
    /// Generates every certificate (ECDSA P-256) into a fresh temp dir.
    pub fn generate() -> TlsFiles {
        install_crypto_provider();
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = crate::fresh_dir("cache-test-tls");
        let main = ca("cache-test CA");
        let other = ca("unrelated CA");
        let (server_cert, server_key) = leaf(
            &main,
            "cache-test server",
            &["127.0.0.1", "localhost"],
            &[ServerAuth, ClientAuth],
        );
        let (client_cert, client_key) = leaf(&main, "cache-test client", &["client.invalid"], &[ClientAuth]);
        let (other_cert, other_key) = leaf(&other, "other client", &["other.invalid"], &[ClientAuth]);
        TlsFiles {
            ca_cert: write(&dir, "ca.crt", &main.cert_pem),
            server_cert: write(&dir, "server.crt", &server_cert),
            server_key: write(&dir, "server.key", &server_key),
            client_cert: write(&dir, "client.crt", &client_cert),
            client_key: write(&dir, "client.key", &client_key),
            other_ca_cert: write(&dir, "other-ca.crt", &other.cert_pem),
            other_client_cert: write(&dir, "other-client.crt", &other_cert),
            other_client_key: write(&dir, "other-client.key", &other_key),
            dir,
        }
    }

    /// `redis::TlsCertificates` trusting `ca_cert`, with the client certificate when
    /// `with_client_cert` (mutual TLS).
    pub fn certificates(&self, with_client_cert: bool) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: with_client_cert.then(|| redis::ClientTlsConfig {
                client_cert: read(&self.client_cert),
                client_key: read(&self.client_key),
            }),
            root_cert: Some(read(&self.ca_cert)),
        }
    }

    /// Server-side TLS settings from these files (see [`ServerTls`]).
    pub fn server_tls(&self, require_client_cert: bool) -> ServerTls {
        ServerTls {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            ca: self.ca_cert.clone(),
            require_client_cert,
            replication: false,
        }
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// TLS settings of a `redis-server`: `--tls-port` plus these files.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// `--tls-cert-file` (also the client certificate of its outgoing links).
    pub cert: PathBuf,
    /// `--tls-key-file`.
    pub key: PathBuf,
    /// `--tls-ca-cert-file`.
    pub ca: PathBuf,
    /// `--tls-auth-clients yes` (else `no`).
    pub require_client_cert: bool,
    /// `--tls-replication yes`: replicas link, and sentinels connect, over TLS, and a replica
    /// and a sentinel announce their TLS port.
    pub replication: bool,
}

impl ServerTls {
    pub(crate) fn args(&self, tls_port: u16) -> Vec<String> {
        let mut args = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            self.cert.display().to_string(),
            "--tls-key-file".to_owned(),
            self.key.display().to_string(),
            "--tls-ca-cert-file".to_owned(),
            self.ca.display().to_string(),
            "--tls-auth-clients".to_owned(),
            if self.require_client_cert { "yes" } else { "no" }.to_owned(),
        ];
        if self.replication {
            args.extend(["--tls-replication".to_owned(), "yes".to_owned()]);
        }
        args
    }
}
