//! TLS settings of a member: the `[tls]` table, with etcd's names.
//!
//! Client traffic and peer traffic are secured apart, as in etcd: the
//! client listener with `cert_file`, `key_file` and, for
//! `client_cert_auth`, `trusted_ca_file`; the peer listener and the
//! connections to the other members with `peer_cert_file`,
//! `peer_key_file` and `peer_trusted_ca_file`, always as mutual TLS.
//! [`RawTls::validate`] refuses a half-given set rather than running
//! without TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError};

/// The `[tls]` table as written. Each field may also be set by a flag or
/// an environment variable of `firebreak serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Certificate (PEM, leaf first) of the client listener; with
    /// `key_file`, clients must use TLS.
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// CA (PEM) that client certificates must be signed by; needs
    /// `client_cert_auth`.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `trusted_ca_file`; its common
    /// name is the user of a request without a token, as in etcd.
    pub client_cert_auth: Option<bool>,
    /// Certificate (PEM, leaf first) this member presents on its peer
    /// listener and when it connects to its peers.
    pub peer_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `peer_cert_file`.
    pub peer_key_file: Option<PathBuf>,
    /// The cluster's CA (PEM): peers' certificates, on both sides of a
    /// connection, must be signed by it.
    pub peer_trusted_ca_file: Option<PathBuf>,
}

/// TLS on the client listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// `Some` with `client_cert_auth`: clients must present a certificate
    /// signed by this CA.
    pub client_ca_file: Option<PathBuf>,
}

/// Mutual TLS between members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub trusted_ca_file: PathBuf,
}

/// Validated TLS settings: each side is on or off as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub client: Option<ClientTls>,
    pub peer: Option<PeerTls>,
}

/// The scheme a URL must have: `https` with TLS, `http` without (a bare
/// `host:port` passes either way).
pub(crate) fn check_scheme(field: &'static str, url: &str, tls: bool) -> Result<(), ConfigError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match (scheme, tls) {
        (None, _) | (Some("https"), true) | (Some("http"), false) => Ok(()),
        (Some(_), true) => Err(invalid(field, url, "must be an https:// URL: TLS is on")),
        (Some(_), false) => Err(invalid(field, url, "must be an http:// URL: TLS is off")),
    }
}

impl RawTls {
    /// Validates into a [`TlsConfig`]. The files are read when the member
    /// starts, not here.
    pub fn validate(self) -> Result<TlsConfig, ConfigError> {
        let client_cert_auth = self.client_cert_auth.unwrap_or(false);
        let client = match (self.cert_file, self.key_file) {
            (Some(cert_file), Some(key_file)) => Some(ClientTls {
                cert_file,
                key_file,
                client_ca_file: match (client_cert_auth, self.trusted_ca_file) {
                    (true, Some(ca)) => Some(ca),
                    (true, None) => return Err(ConfigError::Missing("tls.trusted_ca_file (for client_cert_auth)")),
                    (false, Some(ca)) => {
                        return Err(invalid(
                            "tls.trusted_ca_file",
                            ca.display().to_string(),
                            "is used only with client_cert_auth = true",
                        ))
                    }
                    (false, None) => None,
                },
            }),
            (Some(_), None) => return Err(ConfigError::Missing("tls.key_file (for tls.cert_file)")),
            (None, Some(_)) => return Err(ConfigError::Missing("tls.cert_file (for tls.key_file)")),
            (None, None) if client_cert_auth || self.trusted_ca_file.is_some() => {
                return Err(ConfigError::Missing(
                    "tls.cert_file and tls.key_file (client_cert_auth and trusted_ca_file need client TLS)",
                ))
            }
            (None, None) => None,
        };
        let peer = match (self.peer_cert_file, self.peer_key_file, self.peer_trusted_ca_file) {
            (Some(cert_file), Some(key_file), Some(trusted_ca_file)) => Some(PeerTls {
                cert_file,
                key_file,
                trusted_ca_file,
            }),
            (None, None, None) => None,
            (cert, key, _) => {
                return Err(ConfigError::Missing(match (cert, key) {
                    (None, _) => "tls.peer_cert_file (peer TLS needs a certificate, its key and the cluster's CA)",
                    (_, None) => "tls.peer_key_file (peer TLS needs a certificate, its key and the cluster's CA)",
                    _ => "tls.peer_trusted_ca_file (peer TLS needs a certificate, its key and the cluster's CA)",
                }))
            }
        };
        Ok(TlsConfig { client, peer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawTls {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn each_side_is_on_or_off_as_a_whole() {
        assert_eq!(RawTls::default().validate().unwrap(), TlsConfig::default());
        let c = raw(r#"
            cert_file = "s.crt"
            key_file = "s.key"
            trusted_ca_file = "ca.crt"
            client_cert_auth = true
            peer_cert_file = "p.crt"
            peer_key_file = "p.key"
            peer_trusted_ca_file = "ca.crt"
        "#)
        .validate()
        .unwrap();
        assert_eq!(c.client.unwrap().client_ca_file, Some(PathBuf::from("ca.crt")));
        assert_eq!(c.peer.unwrap().key_file, PathBuf::from("p.key"));
        let c = raw("cert_file = \"s.crt\"\nkey_file = \"s.key\"").validate().unwrap();
        assert_eq!(c.client.unwrap().client_ca_file, None);
        assert!(c.peer.is_none());
    }

    #[test]
    fn half_given_settings_are_refused_by_name() {
        let err = |text: &str| raw(text).validate().unwrap_err().to_string();
        assert!(err("cert_file = \"s.crt\"").contains("tls.key_file"));
        assert!(err("key_file = \"s.key\"").contains("tls.cert_file"));
        assert!(err("cert_file = \"a\"\nkey_file = \"b\"\nclient_cert_auth = true").contains("trusted_ca_file"));
        assert!(err("cert_file = \"a\"\nkey_file = \"b\"\ntrusted_ca_file = \"c\"").contains("client_cert_auth"));
        assert!(err("client_cert_auth = true").contains("need client TLS"));
        assert!(err("peer_cert_file = \"a\"\npeer_key_file = \"b\"").contains("peer_trusted_ca_file"));
        assert!(err("peer_trusted_ca_file = \"c\"").contains("peer_cert_file"));
        assert!(err("peer_cert_file = \"a\"\npeer_trusted_ca_file = \"c\"").contains("peer_key_file"));
        assert!(toml::from_str::<RawTls>("cert-file = \"a\"").is_err());
    }

    #[test]
    fn urls_must_say_whether_tls_is_on() {
        assert!(check_scheme("f", "https://h:1", true).is_ok());
        assert!(check_scheme("f", "http://h:1", false).is_ok());
        assert!(check_scheme("f", "h:1", true).is_ok());
        assert!(check_scheme("f", "http://h:1", true).is_err());
        assert!(check_scheme("f", "https://h:1", false).is_err());
        assert!(check_scheme("f", "unix://h:1", true).is_err());
    }
}
