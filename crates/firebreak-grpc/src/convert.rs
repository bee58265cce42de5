//! Conversions between etcd's protobuf messages and the plain types of
//! `firebreak-mvcc`. Nothing here decides anything: it only renames.

use bytes::Bytes;
use etcd_client::proto::{
    PbCompactionRequest, PbCompare, PbCompareTarget, PbDeleteRequest, PbDeleteResponse, PbKeyValue, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnResponse,
};
use firebreak_mvcc::*;
use firebreak_raft::Header;

pub fn header(h: Header) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
}

/// The header of a response nested in a txn: etcd sets only the revision.
fn nested_header(revision: i64) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        revision,
        ..Default::default()
    })
}

pub fn range_request(r: PbRangeRequest) -> RangeRequest {
    RangeRequest {
        key: r.key.into(),
        range_end: r.range_end.into(),
        limit: r.limit,
        revision: r.revision,
        sort_order: match r.sort_order {
            1 => SortOrder::Ascend,
            2 => SortOrder::Descend,
            _ => SortOrder::None,
        },
        sort_target: match r.sort_target {
            1 => SortTarget::Version,
            2 => SortTarget::Create,
            3 => SortTarget::Mod,
            4 => SortTarget::Value,
            _ => SortTarget::Key,
        },
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn put_request(r: PbPutRequest) -> PutRequest {
    PutRequest {
        key: r.key.into(),
        value: r.value.into(),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn delete_request(r: PbDeleteRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: r.key.into(),
        range_end: r.range_end.into(),
        prev_kv: r.prev_kv,
    }
}

pub fn compact_request(r: PbCompactionRequest) -> CompactRequest {
    CompactRequest {
        revision: r.revision,
        physical: r.physical,
    }
}

fn compare(c: PbCompare) -> Compare {
    // etcd reads the operand only from the union member that matches the
    // target; any other member counts as zero (or an empty value).
    let int = |want: fn(&PbTargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let target = match PbCompareTarget::try_from(c.target).unwrap_or(PbCompareTarget::Version) {
        PbCompareTarget::Version => CompareTarget::Version(int(|u| match u {
            PbTargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        PbCompareTarget::Create => CompareTarget::Create(int(|u| match u {
            PbTargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        PbCompareTarget::Mod => CompareTarget::Mod(int(|u| match u {
            PbTargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        PbCompareTarget::Lease => CompareTarget::Lease(int(|u| match u {
            PbTargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        PbCompareTarget::Value => CompareTarget::Value(match &c.target_union {
            Some(PbTargetUnion::Value(v)) => Bytes::copy_from_slice(v),
            _ => Bytes::new(),
        }),
    };
    Compare {
        key: c.key.into(),
        range_end: c.range_end.into(),
        result: match c.result {
            1 => CompareResult::Greater,
            2 => CompareResult::Less,
            3 => CompareResult::NotEqual,
            _ => CompareResult::Equal,
        },
        target,
    }
}

fn request_op(op: Option<PbTxnOpRequest>) -> RequestOp {
    match op {
        Some(PbTxnOpRequest::RequestRange(r)) => RequestOp::Range(range_request(r)),
        Some(PbTxnOpRequest::RequestPut(r)) => RequestOp::Put(put_request(r)),
        Some(PbTxnOpRequest::RequestDeleteRange(r)) => RequestOp::DeleteRange(delete_request(r)),
        Some(PbTxnOpRequest::RequestTxn(r)) => RequestOp::Txn(txn_request(r)),
        None => RequestOp::Empty,
    }
}

pub fn txn_request(r: PbTxnRequest) -> TxnRequest {
    TxnRequest {
        compare: r.compare.into_iter().map(compare).collect(),
        success: r.success.into_iter().map(|op| request_op(op.request)).collect(),
        failure: r.failure.into_iter().map(|op| request_op(op.request)).collect(),
    }
}

pub fn key_value(kv: KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key.into(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.into(),
        lease: kv.lease,
    }
}

/// A range response; `header` is the full header at top level, or `None`
/// inside a txn (where etcd sets only the revision).
pub fn range_response(r: RangeResponse, header: Option<Header>) -> PbRangeResponse {
    PbRangeResponse {
        header: header.map_or_else(|| nested_header(r.revision), self::header),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_response(r: PutResponse, header: Option<Header>) -> PbPutResponse {
    PbPutResponse {
        header: header.map_or_else(|| nested_header(r.revision), self::header),
        prev_kv: r.prev_kv.map(key_value),
    }
}

pub fn delete_response(r: DeleteRangeResponse, header: Option<Header>) -> PbDeleteResponse {
    PbDeleteResponse {
        header: header.map_or_else(|| nested_header(r.revision), self::header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

pub fn txn_response(r: TxnResponse, header: Option<Header>) -> PbTxnResponse {
    PbTxnResponse {
        header: header.map_or_else(|| nested_header(r.revision), self::header),
        succeeded: r.succeeded,
        responses: r
            .responses
            .into_iter()
            .map(|op| PbResponseOp {
                response: Some(match op {
                    ResponseOp::Range(r) => PbTxnOpResponse::ResponseRange(range_response(r, None)),
                    ResponseOp::Put(r) => PbTxnOpResponse::ResponsePut(put_response(r, None)),
                    ResponseOp::DeleteRange(r) => PbTxnOpResponse::ResponseDeleteRange(delete_response(r, None)),
                    ResponseOp::Txn(r) => PbTxnOpResponse::ResponseTxn(txn_response(r, None)),
                }),
            })
            .collect(),
    }
}
