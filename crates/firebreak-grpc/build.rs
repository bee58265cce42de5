//! Nothing to generate: the etcd protobuf code comes from `etcd-client`.
//! The build dependency on `protoc-bin-vendored` exists for `tools/protoc`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
