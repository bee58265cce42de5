//! gRPC server metrics as go-grpc-prometheus names them (etcd exports
//! these): `grpc_server_started_total`, `grpc_server_handled_total` with
//! the status code, and `grpc_server_handling_seconds`.
//!
//! A call is handled when its status is known: from the headers of an
//! answer that failed before it began, or from the trailers at the end of
//! the body. A stream the client drops before its status is counted as
//! `Canceled`, as grpc-go reports a handler that returns on a cancelled
//! context. Requests that are not gRPC (the HTTP endpoints beside it) are
//! not counted.
//!
//! The bytes of gRPC bodies in both directions are etcd's
//! `etcd_network_client_grpc_{received,sent}_bytes_total`: the messages
//! with their 5-byte gRPC length prefixes (etcd counts the messages alone).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http;
use tower_layer::Layer;
use tower_service::Service;

/// Wraps every service in [`GrpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

/// Counts and times gRPC calls.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// etcd's streaming methods; every other method is unary.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => "server_stream",
        _ => "unary",
    }
}

/// grpc-go's names of the status codes, as the `grpc_code` label has them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

fn status_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?;
    let n: i32 = std::str::from_utf8(value.as_bytes()).ok()?.trim().parse().ok()?;
    Some(tonic::Code::from_i32(n))
}

/// One call being counted.
struct Call {
    labels: [String; 3],
    started: Instant,
    done: bool,
}

impl Call {
    fn start(path: &str) -> Option<Call> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        if service.is_empty() || method.is_empty() || method.contains('/') {
            return None;
        }
        let labels = [
            grpc_type(service, method).to_string(),
            service.to_string(),
            method.to_string(),
        ];
        let metrics = firebreak_metrics::metrics();
        metrics.grpc_started.with_label_values(&labels).inc();
        Some(Call {
            labels,
            started: Instant::now(),
            done: false,
        })
    }

    fn finish(&mut self, code: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        let metrics = firebreak_metrics::metrics();
        let [t, s, m] = &self.labels;
        metrics
            .grpc_handled
            .with_label_values(&[t.as_str(), s, m, code_name(code)])
            .inc();
        metrics
            .grpc_handling_seconds
            .with_label_values(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// A response body that finishes its call when the trailers pass.
struct MeteredBody {
    inner: tonic::body::Body,
    call: Option<Call>,
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    firebreak_metrics::metrics()
                        .client_grpc_sent_bytes
                        .inc_by(data.len() as u64);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(mut call) = this.call.take() {
                        call.finish(status_code(trailers).unwrap_or(tonic::Code::Unknown));
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut call) = this.call.take() {
                    call.finish(tonic::Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(mut call) = this.call.take() {
                    call.finish(tonic::Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts the bytes the client sends.
struct CountedBody {
    inner: tonic::body::Body,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                firebreak_metrics::metrics()
                    .client_grpc_received_bytes
                    .inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S> Service<http::Request<tonic::body::Body>> for GrpcMetrics<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let is_grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let call = if is_grpc {
            Call::start(request.uri().path())
        } else {
            None
        };
        let request = if call.is_some() {
            request.map(|inner| tonic::body::Body::new(CountedBody { inner }))
        } else {
            request
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let Some(mut call) = call else { return Ok(response) };
            // A status in the headers: the call ended before it began.
            if let Some(code) = status_code(response.headers()) {
                call.finish(code);
                return Ok(response);
            }
            let (parts, inner) = response.into_parts();
            let body = MeteredBody {
                inner,
                call: Some(call),
            };
            Ok(http::Response::from_parts(parts, tonic::body::Body::new(body)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_etcds_labels() {
        let mut call = Call::start("/etcdserverpb.Watch/Watch").unwrap();
        assert_eq!(
            call.labels,
            ["bidi_stream", "etcdserverpb.Watch", "Watch"].map(String::from)
        );
        call.finish(tonic::Code::Ok);
        let call = Call::start("/etcdserverpb.KV/Range").unwrap();
        assert_eq!(call.labels[0], "unary");
        drop(call);
        assert!(Call::start("/metrics").is_none());
        assert!(Call::start("/a/b/c").is_none());
        let text = firebreak_metrics::metrics().gather();
        assert!(
            text.contains(
                "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "grpc_server_handled_total{grpc_code=\"Canceled\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1"
            ),
            "{text}"
        );
    }
}
