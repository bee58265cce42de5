//! A certificate authority and the certificates it signs, for a local
//! cluster (`firebreak up --tls`) and for tests. Keys are ECDSA P-256.
//!
//! A CA made here can be loaded back from its certificate and key
//! ([`Ca::from_pem`]), so that adding certificates later keeps one CA: the
//! issuer is rebuilt from the same name, and a certificate it signs is
//! checked against the stored CA certificate before the CA is used.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::UnixTime;

use crate::{pem, provider, TlsError};

/// What a certificate may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (a listener).
    Server,
    /// A TLS client (etcdctl, an application).
    Client,
    /// Both: a member's certificate, presented on its listeners and when it
    /// connects to its peers.
    ServerAndClient,
}

/// A certificate and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

fn refused(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Refused {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Ca {
    /// A new self-signed CA whose subject common name is `name`.
    pub fn new(name: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::generate().map_err(|e| refused("CA key", e))?;
        let params = ca_params(name);
        let cert_pem = params
            .self_signed(&key)
            .map_err(|e| refused("CA certificate", e))?
            .pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// A CA made by [`Ca::new`] with the same `name`, from its certificate
    /// and key. Refused unless what it signs verifies against `cert_pem`.
    pub fn from_pem(name: &str, cert_pem: &str, key_pem: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| refused("CA key", e))?;
        let ca = Ca {
            issuer: Issuer::new(ca_params(name), key),
            cert_pem: cert_pem.to_string(),
        };
        let probe = ca.issue("probe", &[], Usage::Client)?;
        let path = std::path::Path::new("CA certificate");
        let roots = pem::roots(path, cert_pem.as_bytes())?;
        let leaf = pem::certs(path, probe.cert_pem.as_bytes())?.remove(0);
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| refused("CA certificate", e))?
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .map_err(|e| refused("CA certificate and key", format!("do not belong together: {e}")))?;
        Ok(ca)
    }

    /// The CA certificate (PEM): the trusted CA file of members and clients.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (PEM).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A new key and a certificate for it signed by this CA, with subject
    /// common name `common_name` and `sans` (IP addresses or DNS names) as
    /// subject alternative names.
    pub fn issue(&self, common_name: &str, sans: &[&str], usage: Usage) -> Result<Issued, TlsError> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).map_err(|e| refused("subject alternative names", e))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        };
        let key = KeyPair::generate().map_err(|e| refused("key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| refused("certificate", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reloaded_ca_signs_for_the_same_trust_and_a_foreign_one_is_refused() {
        let ca = Ca::new("test CA").unwrap();
        let again = Ca::from_pem("test CA", ca.cert_pem(), &ca.key_pem()).unwrap();
        let leaf = again.issue("m1", &["127.0.0.1"], Usage::ServerAndClient).unwrap();
        assert_eq!(
            crate::common_name(&pem::certs(std::path::Path::new("x"), leaf.cert_pem.as_bytes()).unwrap()[0]).as_deref(),
            Some("m1")
        );
        let other = Ca::new("test CA").unwrap();
        assert!(Ca::from_pem("test CA", ca.cert_pem(), &other.key_pem()).is_err());
        assert!(Ca::from_pem("another name", ca.cert_pem(), &ca.key_pem()).is_err());
    }
}
