//! etcd's HTTP/JSON gateway on the client port ([`firebreak_gateway`]): its
//! requests become calls of this crate's services, in process and through
//! the same layers as a gRPC client's ([`crate::serve`]).

use tonic::codegen::http::Extensions;
use tonic::transport::server::TcpConnectInfo;

use crate::identity::ClientCommonName;

/// What a gateway request's gRPC call learns of the HTTP request's
/// connection: its addresses, and the name of its verified client
/// certificate. Both were put there by [`crate::listener::identify`] from
/// that connection, as for any request; nothing a client sends can set
/// them.
pub fn carry(from: &Extensions, to: &mut Extensions) {
    if let Some(tcp) = from.get::<TcpConnectInfo>() {
        to.insert(tcp.clone());
    }
    if let Some(name) = from.get::<ClientCommonName>() {
        to.insert(name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connections_identity_is_carried_and_nothing_else() {
        let mut from = Extensions::new();
        from.insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some("127.0.0.1:5".parse().unwrap()),
        });
        from.insert(ClientCommonName("alice".into()));
        from.insert(7u32);
        let mut to = Extensions::new();
        carry(&from, &mut to);
        assert_eq!(to.get::<ClientCommonName>(), Some(&ClientCommonName("alice".into())));
        assert!(to.get::<TcpConnectInfo>().unwrap().remote_addr.is_some());
        assert!(to.get::<u32>().is_none());
    }
}
