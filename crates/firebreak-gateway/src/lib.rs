//! etcd's HTTP/JSON gateway: JSON ⇄ protobuf, calling the gRPC services in
//! process.
//!
//! etcd serves its API as JSON over HTTP beside gRPC on the client port
//! (grpc-gateway v1, `api/etcdserverpb/gw`): `POST /v3/kv/range` with
//! `{"key":"Zm9v"}` is the `Range` call. This crate is that gateway for
//! Firebreak, and it stays thin: a request's JSON becomes the gRPC request
//! ([`json`]), which goes through the member's own gRPC service stack, the
//! one that serves the network, layers and all, so auth, limits, metrics
//! and the caller's identity apply exactly as to a gRPC client ([`call`]);
//! the answer comes back as etcd's JSON.
//!
//! - Routes: the `google.api.http` annotations of etcd's protos
//!   ([`routes`]), `/v3/…`; `/v3beta/…` is rewritten to `/v3/…` as etcd
//!   does. Another method on a route is 405, an unknown path 404, in Go's
//!   plain text.
//! - Unary calls answer the response message, or
//!   `{"error":…,"code":…,"message":…}` with the HTTP status grpc-gateway
//!   gives the gRPC code. A body that is not JSON is `InvalidArgument`
//!   (400).
//! - Streams (`/v3/watch`, `/v3/lease/keepalive`, `/v3/election/observe`,
//!   `/v3/maintenance/snapshot`) answer one `{"result":…}` line per
//!   message, chunked, and `{"error":{…}}` if the call fails. Each JSON
//!   value in the request body is one request message; for
//!   `/v3/lease/keepalive` the end of the body ends the stream of requests
//!   (so one keep-alive answers once and ends); a watch lasts until the
//!   client goes away, as etcd's does.
//! - `Authorization: <token>` is the token, and `Grpc-Metadata-<name>`
//!   headers are metadata, as grpc-gateway forwards them.

pub mod call;
pub mod json;
pub mod routes;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

pub use call::BoxError;
use call::{Answer, Event, Grpc};
use routes::Rpc;

/// The largest request body read: far more than any request the gRPC
/// services accept (their own limit then answers, in etcd's words).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Copies what the gRPC services need to know of the connection (the peer
/// address, a verified client certificate's name) from an HTTP request's
/// extensions to its in-process gRPC call's.
pub type Carry = fn(&Extensions, &mut Extensions);

/// The gRPC method whose request stream stays open until the client goes
/// away: etcd's watch stream ignores the end of its requests, Firebreak's
/// ends with it.
const WATCH: &str = "/etcdserverpb.Watch/Watch";

struct Gateway {
    grpc: Grpc,
    routes: HashMap<String, Rpc>,
    carry: Carry,
}

/// The gateway's routes (`/v3/*`, `/v3beta/*`), calling `grpc`, the gRPC
/// services as they serve the network.
pub fn router<S, B>(grpc: S, carry: Carry) -> axum::Router
where
    S: tower_service::Service<axum::http::Request<tonic::body::Body>, Response = axum::http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let gateway = Arc::new(Gateway {
        grpc: call::grpc(grpc),
        routes: routes::routes(),
        carry,
    });
    axum::Router::new()
        .route("/v3/{*rest}", axum::routing::any(serve))
        .route("/v3beta/{*rest}", axum::routing::any(serve))
        .with_state(gateway)
}

async fn serve(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let path = request.uri().path();
    let path = match path.strip_prefix("/v3beta/") {
        Some(rest) => format!("/v3/{rest}"),
        None => path.to_owned(),
    };
    let Some(rpc) = gateway.routes.get(&path) else {
        return go_http_error(StatusCode::NOT_FOUND);
    };
    if request.method() != Method::POST {
        return go_http_error(StatusCode::METHOD_NOT_ALLOWED);
    }
    let (parts, body) = request.into_parts();
    let metadata = call::metadata(&parts.headers);
    let mut extensions = Extensions::new();
    (gateway.carry)(&parts.extensions, &mut extensions);
    let call = Call {
        gateway: &gateway,
        rpc,
        metadata,
        extensions,
    };
    if rpc.client_streaming {
        call.client_stream(body).await
    } else {
        let message = match read_message(&rpc.input, body).await {
            Ok(message) => message,
            Err(e) => return error(&Status::invalid_argument(e)),
        };
        let body = tonic::body::Body::new(http_body_util::Full::new(call::frame(&message.encode_to_vec())));
        if rpc.server_streaming {
            call.stream(body, None).await
        } else {
            call.unary(body).await
        }
    }
}

/// Go's `http.Error` for the gateway's own refusals.
fn go_http_error(status: StatusCode) -> Response {
    let text = format!("{}\n", status.canonical_reason().unwrap_or(""));
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

fn json_response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A failed unary call, or a request refused before its call.
fn error(status: &Status) -> Response {
    json_response(
        json::http_status(status.code()),
        HeaderMap::new(),
        Body::from(json::error_body(status)),
    )
}

/// The one request message of a body, the default one for an empty body.
async fn read_message(desc: &MessageDescriptor, body: Body) -> Result<DynamicMessage, String> {
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    match json::first_value(&bytes)? {
        None => Ok(DynamicMessage::new(desc.clone())),
        Some(value) => json::from_value(desc, value),
    }
}

/// The next request message of a streamed body: `None` at its end.
async fn next_message(
    body: &mut Body,
    values: &mut json::Values,
    desc: &MessageDescriptor,
) -> Option<Result<DynamicMessage, String>> {
    let mut ended = false;
    loop {
        match values.next(ended) {
            json::Next::Value(value) => return Some(json::from_value(desc, value)),
            json::Next::Invalid(e) => return Some(Err(e)),
            json::Next::NeedMore if ended => return None,
            json::Next::NeedMore => {}
        }
        if values.pending() > MAX_BODY_BYTES {
            return Some(Err("the request is too large".into()));
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    values.push(&data);
                }
            }
            Some(Err(e)) => return Some(Err(e.to_string())),
            None => ended = true,
        }
    }
}

/// One HTTP request's gRPC call.
struct Call<'a> {
    gateway: &'a Gateway,
    rpc: &'a Rpc,
    metadata: HeaderMap,
    extensions: Extensions,
}

impl Call<'_> {
    async fn start(self, body: tonic::body::Body) -> Result<axum::http::Response<tonic::body::Body>, Status> {
        let mut request = call::request(&self.rpc.grpc_path, self.metadata, body);
        *request.extensions_mut() = self.extensions;
        (self.gateway.grpc)(request).await.map_err(Status::from_error)
    }

    async fn unary(self, body: tonic::body::Body) -> Response {
        let output = self.rpc.output.clone();
        let response = match self.start(body).await {
            Ok(response) => response,
            Err(status) => return error(&status),
        };
        let mut headers = HeaderMap::new();
        call::answer_headers(response.headers(), &mut headers);
        let mut answer = Answer::new(response);
        let mut reply = None;
        let status = loop {
            match answer.next().await {
                Event::Message(message) => {
                    reply.get_or_insert(message);
                }
                Event::End(status) => break status,
            }
        };
        if status.code() != Code::Ok {
            return error(&status);
        }
        let Some(reply) = reply else {
            return error(&Status::internal("the call answered no message"));
        };
        match decode(&output, reply) {
            Ok(message) => json_response(StatusCode::OK, headers, Body::from(json::to_json(&message))),
            Err(status) => error(&status),
        }
    }

    /// A call whose requests stream: each JSON value of the body is one.
    async fn client_stream(self, mut body: Body) -> Response {
        let desc = self.rpc.input.clone();
        let mut values = json::Values::default();
        // The first request is read before the call, and a body that does
        // not begin with one is refused, as etcd's gateway does (with
        // `Unknown`, 500).
        let first = match next_message(&mut body, &mut values, &desc).await {
            Some(Err(e)) => return error(&Status::unknown(e)),
            Some(Ok(first)) => Some(first),
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        if let Some(first) = first {
            tx.try_send(call::frame(&first.encode_to_vec()))
                .expect("room for the first");
        }
        let keep_open = self.rpc.grpc_path == WATCH;
        let (cancel, cancelled) = oneshot::channel::<()>();
        tokio::spawn(send_requests(body, values, desc, tx, keep_open, cancelled));
        let requests = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(http_body::Frame::data(b)));
        let body = tonic::body::Body::new(http_body_util::StreamBody::new(requests));
        self.stream(body, Some(cancel)).await
    }

    /// Answers a streaming call: a `{"result":…}` line per message.
    /// `cancel` is dropped with the answer, ending its requests.
    async fn stream(self, body: tonic::body::Body, cancel: Option<oneshot::Sender<()>>) -> Response {
        let output = self.rpc.output.clone();
        let response = match self.start(body).await {
            Ok(response) => response,
            Err(status) => return stream_failed(&status),
        };
        let mut headers = HeaderMap::new();
        call::answer_headers(response.headers(), &mut headers);
        let mut answer = Answer::new(response);
        // The HTTP status waits for the first message, as grpc-gateway's
        // does: a call that fails before one answers with its code.
        let first = match answer.next().await {
            Event::End(status) if status.code() == Code::Ok => {
                return json_response(StatusCode::OK, headers, Body::empty());
            }
            Event::End(status) => return stream_failed(&status),
            Event::Message(message) => match decode(&output, message) {
                Ok(message) => json::result_line(&message),
                Err(status) => return stream_failed(&status),
            },
        };
        struct Streaming {
            answer: Answer,
            output: MessageDescriptor,
            first: Option<Vec<u8>>,
            done: bool,
            _cancel: Option<oneshot::Sender<()>>,
        }
        let state = Streaming {
            answer,
            output,
            first: Some(first),
            done: false,
            _cancel: cancel,
        };
        let lines = futures::stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            if let Some(line) = s.first.take() {
                return Some((Ok::<_, Infallible>(Bytes::from(line)), s));
            }
            let line = match s.answer.next().await {
                Event::Message(message) => match decode(&s.output, message) {
                    Ok(message) => json::result_line(&message),
                    Err(status) => {
                        s.done = true;
                        json::stream_error(&status)
                    }
                },
                Event::End(status) if status.code() == Code::Ok => return None,
                Event::End(status) => {
                    s.done = true;
                    json::stream_error(&status)
                }
            };
            Some((Ok(Bytes::from(line)), s))
        });
        json_response(StatusCode::OK, headers, Body::from_stream(lines))
    }
}

fn decode(output: &MessageDescriptor, message: Bytes) -> Result<DynamicMessage, Status> {
    DynamicMessage::decode(output.clone(), message)
        .map_err(|e| Status::internal(format!("cannot decode the answer: {e}")))
}

/// A stream that failed before its first message.
fn stream_failed(status: &Status) -> Response {
    json_response(
        json::http_status(status.code()),
        HeaderMap::new(),
        Body::from(json::stream_error(status)),
    )
}

/// Sends the rest of a streamed body's requests. The requests end with the
/// body, or for a watch when the answer is dropped (the client went away).
async fn send_requests(
    mut body: Body,
    mut values: json::Values,
    desc: MessageDescriptor,
    tx: mpsc::Sender<Bytes>,
    keep_open: bool,
    cancelled: oneshot::Receiver<()>,
) {
    let sending = async {
        while let Some(Ok(message)) = next_message(&mut body, &mut values, &desc).await {
            if tx.send(call::frame(&message.encode_to_vec())).await.is_err() {
                return;
            }
        }
        if keep_open {
            tx.closed().await;
        }
    };
    tokio::select! {
        _ = sending => {}
        _ = cancelled => {}
    }
}
