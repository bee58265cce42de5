//! etcd's JSON: what grpc-gateway v1's `JSONPb{OrigName: true}` marshaler
//! writes and reads.
//!
//! - Out: proto field names (`create_revision`, `TTL`), fields at their
//!   default left out, 64-bit integers as strings, bytes in standard
//!   base64, enums by name.
//! - In: proto or JSON (lowerCamel) field names, unknown fields ignored,
//!   64-bit integers as strings or numbers, enums by name or number, bytes
//!   in standard or URL-safe base64; only the first JSON value of a body
//!   counts, and an empty body is the default request.

use axum::http::StatusCode;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde::Serialize;
use tonic::{Code, Status};

const OUT: SerializeOptions = SerializeOptions::new()
    .use_proto_field_name(true)
    .skip_default_fields(true)
    .stringify_64_bit_integers(true);

const IN: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(false);

/// `message` as etcd's gateway writes it.
pub fn to_json(message: &DynamicMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &OUT)
        .expect("a decoded message serializes");
    out
}

/// One streamed answer: `{"result":…}` and a newline.
pub fn result_line(message: &DynamicMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"{\"result\":");
    out.extend_from_slice(&to_json(message));
    out.extend_from_slice(b"}\n");
    out
}

/// The message of type `desc` that `value` spells.
pub fn from_value(desc: &MessageDescriptor, value: serde_json::Value) -> Result<DynamicMessage, String> {
    if value.is_null() {
        return Ok(DynamicMessage::new(desc.clone()));
    }
    DynamicMessage::deserialize_with_options(desc.clone(), value, &IN).map_err(|e| e.to_string())
}

/// The first JSON value of `body`, `None` for a body of white space only.
pub fn first_value(body: &[u8]) -> Result<Option<serde_json::Value>, String> {
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .next()
    {
        None => Ok(None),
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(e)) => Err(e.to_string()),
    }
}

/// The JSON values of a body that arrives in pieces, as they complete.
#[derive(Default)]
pub struct Values {
    buf: Vec<u8>,
}

/// What [`Values::next`] finds in what has arrived so far.
#[derive(Debug)]
pub enum Next {
    Value(serde_json::Value),
    /// More of the body is needed (or, at its end, there is nothing more).
    NeedMore,
    Invalid(String),
}

impl Values {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole value.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole value; `ended` says the body has no more bytes.
    pub fn next(&mut self, ended: bool) -> Next {
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        match values.next() {
            None => {
                self.buf.clear();
                Next::NeedMore
            }
            Some(Ok(value)) => {
                let used = values.byte_offset();
                self.buf.drain(..used);
                Next::Value(value)
            }
            Some(Err(e)) if e.is_eof() && !ended => Next::NeedMore,
            Some(Err(e)) => Next::Invalid(e.to_string()),
        }
    }
}

/// grpc-gateway's `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn is_empty(s: &&str) -> bool {
    s.is_empty()
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The body of a failed call: `{"error":…,"code":…,"message":…}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "is_empty")]
    error: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
    #[serde(skip_serializing_if = "is_empty")]
    message: &'a str,
}

/// A stream's failure: `{"error":{"grpc_code":…,"http_code":…,…}}`.
#[derive(Serialize)]
struct StreamError<'a> {
    #[serde(skip_serializing_if = "is_zero")]
    grpc_code: i32,
    #[serde(skip_serializing_if = "is_zero")]
    http_code: i32,
    #[serde(skip_serializing_if = "is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    http_status: &'a str,
}

#[derive(Serialize)]
struct StreamErrorChunk<'a> {
    error: StreamError<'a>,
}

/// The body that tells a unary call's failure.
pub fn error_body(status: &Status) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: status.message(),
        code: status.code() as i32,
        message: status.message(),
    })
    .expect("plain JSON")
}

/// The chunk that tells a stream's failure (no newline follows, as in
/// grpc-gateway).
pub fn stream_error(status: &Status) -> Vec<u8> {
    let http = http_status(status.code());
    serde_json::to_vec(&StreamErrorChunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16() as i32,
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or(""),
        },
    })
    .expect("plain JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::message;

    fn parse(name: &str, json: &str) -> DynamicMessage {
        let value = first_value(json.as_bytes()).unwrap().unwrap();
        from_value(&message(name).unwrap(), value).unwrap()
    }

    #[test]
    fn etcds_conventions_both_ways() {
        // Proto names, base64 bytes, 64-bit integers as strings or numbers,
        // enums by name or number, unknown fields ignored.
        let range = parse(
            "etcdserverpb.RangeRequest",
            r#"{"key":"Zm9v","range_end":"Zm9w","limit":"5","revision":7,"sort_order":2,
                "sort_target":"MOD","no_such_field":{"a":[1]},"keysOnly":true}"#,
        );
        let json: serde_json::Value = serde_json::from_slice(&to_json(&range)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key":"Zm9v","range_end":"Zm9w","limit":"5","revision":"7",
                "sort_order":"DESCEND","sort_target":"MOD","keys_only":true})
        );
        // Defaults are left out; a oneof member at its default is not.
        let txn = parse(
            "etcdserverpb.TxnRequest",
            r#"{"compare":[{"key":"YQ==","result":"EQUAL","target":"CREATE","create_revision":0}],
                "success":[{"request_put":{"key":"YQ==","value":"","lease":"0"}}],"failure":[]}"#,
        );
        assert_eq!(
            String::from_utf8(to_json(&txn)).unwrap(),
            r#"{"compare":[{"target":"CREATE","key":"YQ==","create_revision":"0"}],"success":[{"request_put":{"key":"YQ=="}}]}"#
        );
        // Names as etcd spells them (`TTL`, `ID`), a 64-bit ID beyond
        // what a double holds.
        let grant = parse(
            "etcdserverpb.LeaseGrantRequest",
            r#"{"TTL":60,"ID":7587899298177389832}"#,
        );
        assert_eq!(
            String::from_utf8(to_json(&grant)).unwrap(),
            r#"{"TTL":"60","ID":"7587899298177389832"}"#
        );
    }

    #[test]
    fn bodies_that_are_empty_or_several_values() {
        assert!(first_value(b"  \n").unwrap().is_none());
        assert!(first_value(b"{\"key\":").is_err());
        assert_eq!(first_value(b"{} {\"a\":1}").unwrap(), Some(serde_json::json!({})));
        let mut values = Values::default();
        values.push(br#"{"create_request":{"key":"YQ=="}}{"progress_re"#);
        assert!(matches!(values.next(false), Next::Value(_)));
        assert!(matches!(values.next(false), Next::NeedMore));
        values.push(br#"quest":{}}  "#);
        assert!(matches!(values.next(false), Next::Value(_)));
        assert!(matches!(values.next(true), Next::NeedMore));
        assert_eq!(values.pending(), 0);
        values.push(b"{\"a\"");
        assert!(matches!(values.next(true), Next::Invalid(_)));
    }

    #[test]
    fn errors_as_grpc_gateway_writes_them() {
        let status = Status::not_found("etcdserver: requested lease not found");
        assert_eq!(
            String::from_utf8(error_body(&status)).unwrap(),
            r#"{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}"#
        );
        assert_eq!(
            String::from_utf8(stream_error(&Status::unauthenticated("etcdserver: invalid auth token"))).unwrap(),
            r#"{"error":{"grpc_code":16,"http_code":401,"message":"etcdserver: invalid auth token","http_status":"Unauthorized"}}"#
        );
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::ResourceExhausted), StatusCode::TOO_MANY_REQUESTS);
    }
}
