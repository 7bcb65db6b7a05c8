//! The controller CA and server certificate, kept in the state directory so a restarted
//! emulator stays trusted by its clients.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::EmulatorError;
use super::state::write_private_atomically;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";

/// The PEM material the server runs with.
pub struct TlsMaterial {
    /// CA certificate (what clients trust).
    pub ca_pem: String,
    /// Server certificate chain: leaf, then CA.
    pub server_pem: String,
    /// Server private key.
    pub server_key_pem: String,
}

fn tls_err(e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Tls(e.to_string())
}

fn read(path: &Path) -> Result<Option<String>, EmulatorError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EmulatorError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads the CA and server certificate from `dir`, generating and storing them when absent.
pub fn load_or_create(dir: &Path) -> Result<TlsMaterial, EmulatorError> {
    let files = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY].map(|f| dir.join(f));
    if let (Some(ca_pem), Some(_), Some(server_pem), Some(server_key_pem)) = (
        read(&files[0])?,
        read(&files[1])?,
        read(&files[2])?,
        read(&files[3])?,
    ) {
        return Ok(TlsMaterial {
            ca_pem,
            server_pem,
            server_key_pem,
        });
    }

    let ca_key = KeyPair::generate().map_err(tls_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(
        DnType::CommonName,
        "juju-generated CA for model \"juju-ca\"",
    );
    ca_dn.push(DnType::OrganizationName, "juju");
    ca_params.distinguished_name = ca_dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(tls_err)?;
    let mut params = CertificateParams::new(vec![
        "juju-apiserver".to_owned(),
        "localhost".to_owned(),
        "juju-mongodb".to_owned(),
        "anything".to_owned(),
    ])
    .map_err(tls_err)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "*");
    dn.push(DnType::OrganizationName, "juju");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let server_cert = params.signed_by(&server_key, &issuer).map_err(tls_err)?;

    let material = TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_pem: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        server_key_pem: server_key.serialize_pem(),
    };
    write_private_atomically(&files[1], issuer_key_pem(&issuer).as_bytes())?;
    write_private_atomically(&files[3], material.server_key_pem.as_bytes())?;
    write_private_atomically(&files[2], material.server_pem.as_bytes())?;
    write_private_atomically(&files[0], material.ca_pem.as_bytes())?;
    Ok(material)
}

fn issuer_key_pem(issuer: &Issuer<'_, KeyPair>) -> String {
    issuer.key().serialize_pem()
}

/// Builds the rustls server configuration (ring provider, explicitly).
pub fn server_config(material: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, EmulatorError> {
    let certs = CertificateDer::pem_slice_iter(material.server_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(tls_err)?;
    let key = PrivateKeyDer::from_pem_slice(material.server_key_pem.as_bytes()).map_err(tls_err)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_err)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(tls_err)?;
    Ok(Arc::new(config))
}
