//! etcd's limit on the size of a gRPC request, with etcd's words.
//!
//! Every service decodes at most [`GRPC_MAX_RECV_BYTES`](crate::GRPC_MAX_RECV_BYTES)
//! (etcd's `--max-request-bytes` plus 512 KiB, grpc-go's
//! `MaxRecvMsgSize`): tonic refuses a larger message from its length
//! prefix, before reading or buffering its body. tonic words that refusal
//! its own way (`OutOfRange`, "decoded message length too large"); etcd's
//! clients see grpc-go's (`ResourceExhausted`, "grpc: received message
//! larger than max (N vs. M)"), so [`EtcdLimits`] rewrites it on the way
//! out. It sees the answers that carry their status in the headers, which
//! is how tonic answers a unary request it could not decode; a streaming
//! call whose message is too large simply ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

/// Wraps every service in [`EtcdLimits`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdLimitsLayer;

impl<S> Layer<S> for EtcdLimitsLayer {
    type Service = EtcdLimits<S>;

    fn layer(&self, inner: S) -> EtcdLimits<S> {
        EtcdLimits { inner }
    }
}

/// Rewrites tonic's "message too large" status into grpc-go's.
#[derive(Debug, Clone)]
pub struct EtcdLimits<S> {
    inner: S,
}

/// The length tonic reported in its refusal of a too-large message.
fn refused_length(status: &Status) -> Option<usize> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let rest = status
        .message()
        .strip_prefix("Error, decoded message length too large: found ")?;
    rest.split(' ').next()?.parse().ok()
}

fn rewrite(headers: &mut http::HeaderMap) {
    // Cheap for every other answer: the status is only in the headers of
    // an answer that failed before it began.
    if headers.get(Status::GRPC_STATUS).map(|v| v.as_bytes()) != Some(b"11") {
        return;
    }
    let Some(len) = Status::from_header_map(headers).as_ref().and_then(refused_length) else {
        return;
    };
    let _ = crate::status::too_large_for_grpc(len).add_header(headers);
}

impl<S, B, ResBody> Service<http::Request<B>> for EtcdLimits<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            rewrite(response.headers_mut());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_refusal_becomes_grpc_gos() {
        let tonic_says = Status::out_of_range(
            "Error, decoded message length too large: found 2200012 bytes, the limit is: 2097152 bytes",
        );
        let mut headers = http::HeaderMap::new();
        tonic_says.add_header(&mut headers).unwrap();
        rewrite(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            format!(
                "grpc: received message larger than max (2200012 vs. {})",
                crate::GRPC_MAX_RECV_BYTES
            )
        );
        // Any other OutOfRange (etcd's own "required revision is a future
        // revision") is left alone.
        let mut headers = http::HeaderMap::new();
        Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
            .add_header(&mut headers)
            .unwrap();
        rewrite(&mut headers);
        assert_eq!(Status::from_header_map(&headers).unwrap().code(), Code::OutOfRange);
    }
}
