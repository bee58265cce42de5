//! The TLS flags of `firebreak serve`, with etcd's names, over the `[tls]`
//! table of the configuration file (docs/configuration.md).

use std::path::PathBuf;

use clap::Args;
use firebreak_config::RawTls;

#[derive(Args, Debug, Default)]
pub struct TlsArgs {
    /// Certificate (PEM) of the client listener; with --key-file, clients must use TLS.
    #[arg(long, env = "FIREBREAK_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file.
    #[arg(long, env = "FIREBREAK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// CA (PEM) that client certificates must be signed by (with --client-cert-auth).
    #[arg(long, env = "FIREBREAK_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by --trusted-ca-file; its common name is the user.
    #[arg(long, env = "FIREBREAK_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,
    /// Certificate (PEM) of this member towards its peers, on both sides of a connection.
    #[arg(long, env = "FIREBREAK_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --peer-cert-file.
    #[arg(long, env = "FIREBREAK_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// The cluster's CA (PEM): every peer certificate must be signed by it.
    #[arg(long, env = "FIREBREAK_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
}

impl TlsArgs {
    /// Applies every given flag over the file's `[tls]` table.
    pub fn apply(&self, raw: &mut RawTls) {
        let set = |field: &mut Option<PathBuf>, flag: &Option<PathBuf>| {
            if flag.is_some() {
                field.clone_from(flag);
            }
        };
        set(&mut raw.cert_file, &self.cert_file);
        set(&mut raw.key_file, &self.key_file);
        set(&mut raw.trusted_ca_file, &self.trusted_ca_file);
        set(&mut raw.peer_cert_file, &self.peer_cert_file);
        set(&mut raw.peer_key_file, &self.peer_key_file);
        set(&mut raw.peer_trusted_ca_file, &self.peer_trusted_ca_file);
        if self.client_cert_auth {
            raw.client_cert_auth = Some(true);
        }
    }
}
