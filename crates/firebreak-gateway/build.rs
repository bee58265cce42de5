//! Compiles etcd's .proto files, as the `etcd-client` crate ships them, into
//! a `FileDescriptorSet` in `OUT_DIR`: the gateway reads messages, JSON
//! names and the `google.api.http` routes from it at run time. Nothing is
//! copied into the repository: `cargo metadata` says where etcd-client's
//! sources are.

use std::path::{Path, PathBuf};
use std::process::Command;

/// etcd's API, as etcd-client's own build script compiles it.
const PROTOS: &[&str] = &[
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let proto_root = etcd_client_dir().join("proto");
    for file in PROTOS {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => PathBuf::from(p),
        None => protoc_bin_vendored::protoc_bin_path().expect("no protoc: set PROTOC"),
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("etcd.fds");
    let mut cmd = Command::new(&protoc);
    cmd.arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg(format!("-I{}", proto_root.display()));
    // google/protobuf/descriptor.proto, imported by google/api/http.proto.
    if let Ok(include) = protoc_bin_vendored::include_path() {
        cmd.arg(format!("-I{}", include.display()));
    }
    cmd.args(PROTOS);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", protoc.display()));
    assert!(status.success(), "{} failed: {status}", protoc.display());
}

/// The source directory of the `etcd-client` package this build uses.
fn etcd_client_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    // Offline first: the packages are usually all there already. The
    // metadata lists the packages of every platform, which a build
    // downloads only for its own, so on a fresh machine it may need the
    // registry.
    let metadata = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("cannot run cargo metadata")
    };
    let mut output = metadata(true);
    if !output.status.success() {
        output = metadata(false);
    }
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "etcd-client")
        .filter_map(|p| p["manifest_path"].as_str())
        .map(|m| Path::new(m).parent().expect("a manifest's directory").to_path_buf())
        .next()
        .expect("etcd-client is not among the dependencies")
}
