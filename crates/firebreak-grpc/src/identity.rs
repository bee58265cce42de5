//! Who is calling, as the transport saw it.
//!
//! With client certificate authentication on (`client_cert_auth`), the TLS
//! layer puts the verified client certificate's common name into each
//! request's extensions as a [`ClientCommonName`]; the auth layer takes it
//! as the user name of a request that carries no token, as etcd does.

/// The common name (CN) of the verified client certificate of the
/// connection a request came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCommonName(pub String);
