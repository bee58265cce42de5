#!/usr/bin/env bash
# Cold `cargo build --release` of a tiny binary that uses only one engine
# crate, for each candidate; prints a markdown table (wall time, CPU time,
# crates compiled, whether C is compiled). Dependency versions come from this
# project's Cargo.lock. Builds go under target/probes/ (ignored by git) and
# run at `nice -n 10` because the machine is shared.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
probes=$here/target/probes
mkdir -p "$probes"
(cd "$here" && CARGO_TARGET_DIR=$here/target cargo fetch --quiet)

probe_src() {
    case $1 in
    redb) cat <<'EOF'
fn main() {
    let dir = std::env::temp_dir().join(format!("probe-redb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
    let db = redb::Database::create(dir.join("db")).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.set_durability(redb::Durability::Immediate).unwrap();
    tx.open_table(T).unwrap().insert(1, b"x".as_slice()).unwrap();
    tx.commit().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
EOF
    ;;
    fjall) cat <<'EOF'
fn main() {
    let dir = std::env::temp_dir().join(format!("probe-fjall-{}", std::process::id()));
    let db = fjall::Database::builder(&dir).open().unwrap();
    let ks = db.keyspace("log", fjall::KeyspaceCreateOptions::default).unwrap();
    let mut b = db.batch().durability(Some(fjall::PersistMode::SyncData));
    b.insert(&ks, 1u64.to_be_bytes(), b"x");
    b.commit().unwrap();
    drop((ks, db));
    std::fs::remove_dir_all(dir).unwrap();
}
EOF
    ;;
    raft-engine) cat <<'EOF'
struct E;
impl raft_engine::MessageExt for E {
    type Entry = protobuf::well_known_types::BytesValue;
    fn index(e: &Self::Entry) -> u64 { e.value[0] as u64 }
}
fn main() {
    let dir = std::env::temp_dir().join(format!("probe-re-{}", std::process::id()));
    let cfg = raft_engine::Config { dir: dir.to_str().unwrap().into(), ..Default::default() };
    let engine = raft_engine::Engine::open(cfg).unwrap();
    let mut e = protobuf::well_known_types::BytesValue::new();
    e.value = vec![1];
    let mut lb = raft_engine::LogBatch::default();
    lb.add_entries::<E>(1, &[e]).unwrap();
    engine.write(&mut lb, true).unwrap();
    drop(engine);
    std::fs::remove_dir_all(dir).unwrap();
}
EOF
    ;;
    esac
}

probe_deps() {
    case $1 in
    redb) echo 'redb = "=4.6.0"' ;;
    fjall) echo 'fjall = "=3.1.13"' ;;
    raft-engine) printf '%s\n' 'raft-engine = { version = "=0.4.2", default-features = false }' 'protobuf = "=2.28.0"' ;;
    esac
}

echo "| crate | cold release build, wall s | CPU s (user+sys) | crates compiled | compiles C? |"
echo "|---|---:|---:|---:|---|"
for engine in "${@:-redb fjall raft-engine}"; do
  for e in $engine; do
    dir=$probes/$e
    rm -rf "$dir"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "probe-${e}"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
$(probe_deps "$e")
EOF
    probe_src "$e" >"$dir/src/main.rs"
    # Same versions as the benchmark; cargo drops the unused lock entries.
    cp "$here/Cargo.lock" "$dir/Cargo.lock"
    t=$( { cd "$dir" && CARGO_TARGET_DIR=$dir/target /usr/bin/time -f '%e %U %S' \
            nice -n 10 cargo build --release --offline --quiet 2>&1 >/dev/null; } | tail -1 )
    read -r wall user sys <<<"$t"
    crates=$(cd "$dir" && cargo tree --offline -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)$//' | sort -u | wc -l)
    crates=$((crates - 1)) # minus the probe itself
    c=$(cd "$dir" && cargo tree --offline -e normal,build -i cc --prefix none 2>/dev/null | grep -- '-sys ' | sed 's/ v.*//' | sort -u | paste -sd, - || true)
    (cd "$dir" && CARGO_TARGET_DIR=$dir/target cargo run --release --offline --quiet) || echo "probe $e failed to run" >&2
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
    if [ -n "$c" ]; then c="yes: $c (built with cc)"; else c=no; fi
    echo "| $e | $(printf '%.0f' "$wall") | $cpu | $crates | $c |"
  done
done
