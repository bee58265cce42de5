//! A gRPC call made in process: the request framed as gRPC frames it, sent
//! through the member's own service stack (a clone of what serves the
//! network, with its layers), and the answer's frames and status read back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{self, HeaderMap, HeaderName, HeaderValue};
use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::{Code, Status};
use tower_service::Service;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type CallFuture = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, BoxError>> + Send>>;

/// The gRPC services, type-erased.
pub type Grpc = Arc<dyn Fn(http::Request<tonic::body::Body>) -> CallFuture + Send + Sync>;

/// `service`, type-erased: each call uses a clone of it.
pub fn grpc<S, B>(service: S) -> Grpc
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(request).await.map_err(Into::into)?;
            Ok(response.map(tonic::body::Body::new))
        })
    })
}

/// `message` with gRPC's 5-byte prefix: not compressed, and its length.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// The gRPC request for `path` with `body`, carrying `metadata`.
pub fn request(path: &str, metadata: HeaderMap, body: tonic::body::Body) -> http::Request<tonic::body::Body> {
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = path.parse().expect("a gRPC path is a URI");
    let headers = request.headers_mut();
    *headers = metadata;
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    request
}

/// What grpc-gateway passes on of an HTTP request's headers as gRPC
/// metadata: `Authorization` as `authorization`, and each
/// `Grpc-Metadata-<name>` as `<name>`.
pub fn metadata(headers: &HeaderMap) -> HeaderMap {
    let mut md = HeaderMap::new();
    for (name, value) in headers {
        if name == http::header::AUTHORIZATION {
            md.append(http::header::AUTHORIZATION, value.clone());
            continue;
        }
        let Some(key) = name.as_str().strip_prefix("grpc-metadata-") else {
            continue;
        };
        // Not the headers that gRPC itself is made of.
        if key.is_empty()
            || key.starts_with("grpc-")
            || matches!(key, "content-type" | "te" | "user-agent" | "connection" | "host")
        {
            continue;
        }
        if let Ok(key) = HeaderName::from_bytes(key.as_bytes()) {
            md.append(key, value.clone());
        }
    }
    md
}

/// The gRPC answer's headers as grpc-gateway passes them to the HTTP client:
/// `Grpc-Metadata-<name>`.
pub fn answer_headers(grpc: &HeaderMap, out: &mut HeaderMap) {
    for (name, value) in grpc {
        let name = name.as_str();
        if name.starts_with("grpc-") || matches!(name, "content-length" | "transfer-encoding" | "trailer") {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(format!("grpc-metadata-{name}").as_bytes()) {
            out.append(name, value.clone());
        }
    }
}

/// What comes next on an answer.
#[derive(Debug)]
pub enum Event {
    Message(Bytes),
    /// The call ended with this status (`Ok` too).
    End(Status),
}

/// The messages and final status of a gRPC answer's body.
pub struct Answer {
    body: tonic::body::Body,
    buf: BytesMut,
    /// The status, when the answer carried it in its headers.
    status: Option<Status>,
}

impl Answer {
    pub fn new(response: http::Response<tonic::body::Body>) -> Answer {
        let (parts, body) = response.into_parts();
        // A call that failed before it began answers with its status in
        // the headers ("trailers-only").
        let status = Status::from_header_map(&parts.headers);
        let status = match (parts.status, status) {
            (_, Some(status)) => Some(status),
            (http::StatusCode::OK, None) => None,
            (other, None) => Some(Status::new(Code::Unknown, format!("HTTP status {other}"))),
        };
        Answer {
            body,
            buf: BytesMut::new(),
            status,
        }
    }

    pub async fn next(&mut self) -> Event {
        if let Some(status) = self.status.take() {
            self.status = Some(Status::new(Code::Internal, "the call has ended"));
            return Event::End(status);
        }
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                if self.buf[0] != 0 {
                    return self.end(Status::internal("a compressed gRPC message"));
                }
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    return Event::Message(self.buf.split_to(len).freeze());
                }
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        let status = trailers_status(frame);
                        return self.end(status);
                    }
                },
                Some(Err(status)) => return self.end(status),
                None => {
                    return self.end(Status::internal("the gRPC answer ended without a status"));
                }
            }
        }
    }

    fn end(&mut self, status: Status) -> Event {
        let status = if status.code() == Code::Ok && !self.buf.is_empty() {
            Status::internal("the gRPC answer ended within a message")
        } else {
            status
        };
        self.status = Some(Status::new(Code::Internal, "the call has ended"));
        Event::End(status)
    }
}

fn trailers_status(frame: Frame<Bytes>) -> Status {
    match frame.into_trailers() {
        Ok(trailers) => Status::from_header_map(&trailers)
            .unwrap_or_else(|| Status::new(Code::Unknown, "the gRPC answer's trailers have no status")),
        Err(_) => Status::internal("an unknown kind of frame"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_authorization_and_grpc_metadata_pass() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("tok"));
        headers.insert("grpc-metadata-token", HeaderValue::from_static("tok2"));
        headers.insert("grpc-metadata-content-type", HeaderValue::from_static("text/plain"));
        headers.insert("grpc-metadata-grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-other", HeaderValue::from_static("x"));
        let md = metadata(&headers);
        assert_eq!(md.len(), 2, "{md:?}");
        assert_eq!(md["authorization"], "tok");
        assert_eq!(md["token"], "tok2");
        let request = request("/etcdserverpb.KV/Range", md, tonic::body::Body::empty());
        assert_eq!(request.headers()["content-type"], "application/grpc");
        assert_eq!(request.uri().path(), "/etcdserverpb.KV/Range");
    }

    #[tokio::test]
    async fn messages_then_status_from_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("5"));
        trailers.insert("grpc-message", HeaderValue::from_static("not%20here"));
        let mut bytes = frame(b"abc").to_vec();
        bytes.extend_from_slice(&frame(b""));
        // Split mid-prefix, as the network may.
        let frames = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::copy_from_slice(&bytes[..3]))),
            Ok(Frame::data(Bytes::copy_from_slice(&bytes[3..]))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let mut answer = Answer::new(http::Response::new(tonic::body::Body::new(body)));
        assert!(matches!(answer.next().await, Event::Message(m) if &m[..] == b"abc"));
        assert!(matches!(answer.next().await, Event::Message(m) if m.is_empty()));
        match answer.next().await {
            Event::End(status) => {
                assert_eq!(status.code(), Code::NotFound);
                assert_eq!(status.message(), "not here");
            }
            other => panic!("{other:?}"),
        }
        // Trailers-only.
        let mut response = http::Response::new(tonic::body::Body::empty());
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("16"));
        let mut answer = Answer::new(response);
        assert!(matches!(answer.next().await, Event::End(s) if s.code() == Code::Unauthenticated));
    }
}
