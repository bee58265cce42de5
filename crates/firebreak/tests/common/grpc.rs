//! Calls straight over gRPC, for what etcd-client cannot send: a request
//! with a token of the test's choosing, a method etcd-client lacks.

use std::time::Duration;

use tonic::codec::Codec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;

/// The unary call `path` (such as `"/etcdserverpb.KV/Put"`) of `endpoint`
/// with `token`, if any, as its metadata, as a client carries a token. A
/// connection that fails is `Unavailable`.
pub async fn unary<Req, Resp>(
    endpoint: &str,
    path: &'static str,
    token: Option<&str>,
    message: Req,
) -> Result<Resp, tonic::Status>
where
    Req: Send + Sync + 'static,
    Resp: Send + Sync + 'static,
    ProstCodec<Req, Resp>: Codec<Encode = Req, Decode = Resp> + Default,
{
    let unavailable = |e: &dyn std::fmt::Display| tonic::Status::unavailable(e.to_string());
    let channel = tonic::transport::Channel::from_shared(endpoint.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| unavailable(&e))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| unavailable(&e))?;
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("token", token.parse().unwrap());
    }
    let codec = ProstCodec::<Req, Resp>::default();
    grpc.unary(request, PathAndQuery::from_static(path), codec)
        .await
        .map(|r| r.into_inner())
}
