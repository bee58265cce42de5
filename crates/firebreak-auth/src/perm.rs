//! Key permissions and the range check etcd makes with them.
//!
//! A permission covers one key (`range_end` empty), the keys
//! `[key, range_end)`, or every key from `key` on (`range_end` = `"\0"`),
//! as in a range request; a prefix grant is `[prefix, prefix + 1)`, as
//! etcdctl sends it.
//!
//! # Correctness
//! The check is etcd's (`range_perm_cache.go` and its interval tree,
//! `pkg/adt`):
//! - a permission is the interval `[key, key + "\0")` for one key,
//!   `[key, +inf)` for `"\0"`, else `[key, range_end)`; the empty byte
//!   string as an end means +inf ([`Bound`]);
//! - one key is permitted when some permission's interval holds it;
//! - a range is permitted when the permissions that etcd's interval tree
//!   visits for it, in order of their start, are contiguous and reach from
//!   at or below its start to at or past its end ([`Tree::contains`]). For
//!   a range whose end is above its key the tree visits exactly the
//!   permissions that intersect it (as etcd's `Interval.Compare` defines
//!   intersecting); for a range whose end is below its key its search
//!   skips subtrees by their shape, so the check builds the same
//!   red-black tree etcd builds (the same insertions in the same order:
//!   the user's roles in order, each role's permissions in order) and
//!   searches it the same way.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// What a permission allows, numbered as etcd's `authpb.Permission.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PermissionType {
    Read,
    Write,
    ReadWrite,
    /// A number etcd does not know: kept as given, it allows nothing.
    Other(i32),
}

impl PermissionType {
    /// etcd's number for it.
    pub fn code(self) -> i32 {
        match self {
            PermissionType::Read => 0,
            PermissionType::Write => 1,
            PermissionType::ReadWrite => 2,
            PermissionType::Other(code) => code,
        }
    }

    /// The type of etcd's number.
    pub fn from_code(code: i32) -> PermissionType {
        match code {
            0 => PermissionType::Read,
            1 => PermissionType::Write,
            2 => PermissionType::ReadWrite,
            other => PermissionType::Other(other),
        }
    }

    fn allows(self, op: Operation) -> bool {
        matches!(
            (self, op),
            (PermissionType::ReadWrite, _)
                | (PermissionType::Read, Operation::Read)
                | (PermissionType::Write, Operation::Write)
        )
    }
}

/// What a request does to a key or a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

/// One permission of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPermission {
    pub perm: PermissionType,
    pub key: Vec<u8>,
    /// Empty: `key` alone. `"\0"`: every key from `key` on. Else the
    /// exclusive end.
    pub range_end: Vec<u8>,
}

/// etcd's rule for a permission's range: a key, and an end that is empty,
/// above the key, or `"\0"`.
pub(crate) fn is_valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || Bound(key) < Bound(range_end) || range_end == b"\0")
}

/// A key as an interval end: the empty string is above every key (etcd's
/// `BytesAffineComparable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound<'a>(&'a [u8]);

impl Ord for Bound<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0.is_empty(), other.0.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.0.cmp(other.0),
        }
    }
}

impl PartialOrd for Bound<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A half-open interval `[begin, end)` of keys; an empty `end` is +inf.
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    /// etcd's interval of a permission (`getMergedPerms`).
    fn of(p: &KeyPermission) -> Interval {
        if p.range_end.is_empty() {
            let mut end = p.key.clone();
            end.push(0);
            Interval {
                begin: p.key.clone(),
                end,
            }
        } else if p.range_end == b"\0" {
            Interval {
                begin: p.key.clone(),
                end: Vec::new(),
            }
        } else {
            Interval {
                begin: p.key.clone(),
                end: p.range_end.clone(),
            }
        }
    }

    fn holds(&self, key: &[u8]) -> bool {
        Bound(&self.begin) <= Bound(key) && Bound(key) < Bound(&self.end)
    }
}

/// etcd's `Interval.Compare` of `[begin, end)` with `[other_begin,
/// other_end)`: `Less` if it lies left of the other, `Greater` if right of
/// it, `Equal` if they intersect (also for an interval whose end is below
/// its start).
fn compare(begin: Bound, end: Bound, other_begin: Bound, other_end: Bound) -> Ordering {
    if begin < other_begin && end <= other_begin {
        Ordering::Less
    } else if begin >= other_end {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// A node of a [`Tree`]; links are indices into the tree's nodes (`None`
/// is etcd's sentinel).
struct Node {
    iv: Interval,
    /// The largest end in the subtree (empty: +inf).
    max: Vec<u8>,
    left: Option<usize>,
    right: Option<usize>,
    parent: Option<usize>,
    red: bool,
}

/// etcd's interval tree (`pkg/adt`, a red-black tree ordered by interval
/// start whose nodes know the largest end below them), with its insertion,
/// rotations, maximum upkeep and search step for step, so that it has the
/// same shape and its search visits the same nodes as etcd's.
#[derive(Default)]
struct Tree {
    nodes: Vec<Node>,
    root: Option<usize>,
}

impl Tree {
    fn is_red(&self, x: Option<usize>) -> bool {
        x.is_some_and(|x| self.nodes[x].red)
    }

    fn parent(&self, x: usize) -> usize {
        self.nodes[x].parent.expect("a red node has a parent")
    }

    /// etcd's `updateMax`: recomputes the maximum of `x` and its
    /// ancestors, up to the first that does not change.
    fn update_max(&mut self, mut x: Option<usize>) {
        while let Some(i) = x {
            let n = &self.nodes[i];
            let mut max = &n.iv.end;
            for child in [n.left, n.right].into_iter().flatten() {
                if Bound(&self.nodes[child].max) > Bound(max) {
                    max = &self.nodes[child].max;
                }
            }
            if Bound(&n.max) == Bound(max) {
                break;
            }
            let max = max.clone();
            self.nodes[i].max = max;
            x = self.nodes[i].parent;
        }
    }

    /// etcd's `replaceParent`: `y` takes `x`'s place under its parent.
    fn replace_parent(&mut self, x: usize, y: usize) {
        let parent = self.nodes[x].parent;
        self.nodes[y].parent = parent;
        match parent {
            None => self.root = Some(y),
            Some(p) => {
                if self.nodes[p].left == Some(x) {
                    self.nodes[p].left = Some(y);
                } else {
                    self.nodes[p].right = Some(y);
                }
                self.update_max(Some(p));
            }
        }
        self.nodes[x].parent = Some(y);
    }

    fn rotate_left(&mut self, x: usize) {
        let Some(y) = self.nodes[x].right else {
            return;
        };
        let moved = self.nodes[y].left;
        self.nodes[x].right = moved;
        if let Some(m) = moved {
            self.nodes[m].parent = Some(x);
        }
        self.update_max(Some(x));
        self.replace_parent(x, y);
        self.nodes[y].left = Some(x);
        self.update_max(Some(y));
    }

    fn rotate_right(&mut self, x: usize) {
        let Some(y) = self.nodes[x].left else {
            return;
        };
        let moved = self.nodes[y].right;
        self.nodes[x].left = moved;
        if let Some(m) = moved {
            self.nodes[m].parent = Some(x);
        }
        self.update_max(Some(x));
        self.replace_parent(x, y);
        self.nodes[y].right = Some(x);
        self.update_max(Some(y));
    }

    /// etcd's `Insert`: a new node goes to the right of nodes with the
    /// same start.
    fn insert(&mut self, iv: Interval) {
        let z = self.nodes.len();
        let begin = iv.begin.clone();
        self.nodes.push(Node {
            max: iv.end.clone(),
            iv,
            left: None,
            right: None,
            parent: None,
            red: true,
        });
        let (mut y, mut x) = (None, self.root);
        while let Some(i) = x {
            y = Some(i);
            x = if Bound(&begin) < Bound(&self.nodes[i].iv.begin) {
                self.nodes[i].left
            } else {
                self.nodes[i].right
            };
        }
        self.nodes[z].parent = y;
        match y {
            None => self.root = Some(z),
            Some(y) => {
                if Bound(&begin) < Bound(&self.nodes[y].iv.begin) {
                    self.nodes[y].left = Some(z);
                } else {
                    self.nodes[y].right = Some(z);
                }
                self.update_max(Some(y));
            }
        }
        self.insert_fixup(z);
    }

    /// etcd's `insertFixup` (CLRS's RB-INSERT-FIXUP).
    fn insert_fixup(&mut self, mut z: usize) {
        while self.is_red(self.nodes[z].parent) {
            let p = self.parent(z);
            let g = self.parent(p);
            if self.nodes[g].left == Some(p) {
                let uncle = self.nodes[g].right;
                if let Some(u) = uncle.filter(|&u| self.nodes[u].red) {
                    self.nodes[u].red = false;
                    self.nodes[p].red = false;
                    self.nodes[g].red = true;
                    z = g;
                } else {
                    if self.nodes[p].right == Some(z) {
                        z = p;
                        self.rotate_left(z);
                    }
                    let p = self.parent(z);
                    let g = self.parent(p);
                    self.nodes[p].red = false;
                    self.nodes[g].red = true;
                    self.rotate_right(g);
                }
            } else {
                let uncle = self.nodes[g].left;
                if let Some(u) = uncle.filter(|&u| self.nodes[u].red) {
                    self.nodes[u].red = false;
                    self.nodes[p].red = false;
                    self.nodes[g].red = true;
                    z = g;
                } else {
                    if self.nodes[p].left == Some(z) {
                        z = p;
                        self.rotate_right(z);
                    }
                    let p = self.parent(z);
                    let g = self.parent(p);
                    self.nodes[p].red = false;
                    self.nodes[g].red = true;
                    self.rotate_left(g);
                }
            }
        }
        if let Some(root) = self.root {
            self.nodes[root].red = false;
        }
    }

    /// etcd's `visit`: calls `f` on the nodes below `x` that its search
    /// for `[begin, end)` reaches and finds intersecting, in order of
    /// their start, until `f` answers false.
    fn visit(&self, x: Option<usize>, begin: Bound, end: Bound, f: &mut dyn FnMut(&Interval) -> bool) -> bool {
        let Some(i) = x else {
            return true;
        };
        let n = &self.nodes[i];
        match compare(begin, end, Bound(&n.iv.begin), Bound(&n.iv.end)) {
            Ordering::Less => self.visit(n.left, begin, end, f),
            Ordering::Greater => {
                // The subtree is searched when [start, largest end below)
                // intersects the interval: for an interval whose end is
                // below its start this skips nodes that intersect it.
                compare(Bound(&n.iv.begin), Bound(&n.max), begin, end) != Ordering::Equal
                    || (self.visit(n.left, begin, end, f) && self.visit(n.right, begin, end, f))
            }
            Ordering::Equal => self.visit(n.left, begin, end, f) && f(&n.iv) && self.visit(n.right, begin, end, f),
        }
    }

    /// etcd's `Contains`: whether the intervals its search visits for
    /// `[begin, end)` cover it without a gap.
    fn contains(&self, begin: Bound, end: Bound) -> bool {
        let mut min_begin: Option<Vec<u8>> = None;
        let mut max_end: Vec<u8> = Vec::new();
        let mut contiguous = true;
        self.visit(self.root, begin, end, &mut |iv| {
            if min_begin.is_none() {
                min_begin = Some(iv.begin.clone());
                max_end = iv.end.clone();
                return true;
            }
            if Bound(&max_end) < Bound(&iv.begin) {
                contiguous = false;
                return false;
            }
            if Bound(&iv.end) > Bound(&max_end) {
                max_end = iv.end.clone();
            }
            true
        });
        match min_begin {
            Some(min_begin) => contiguous && Bound(&max_end) >= end && Bound(&min_begin) <= begin,
            None => false,
        }
    }
}

/// Whether `perms` allow `op` on `key` (with `range_end` as in a range
/// request). The permissions come in etcd's order: the user's roles in
/// order, each role's permissions in order.
pub(crate) fn is_permitted<'a>(
    perms: impl Iterator<Item = &'a KeyPermission>,
    key: &[u8],
    range_end: &[u8],
    op: Operation,
) -> bool {
    let mut intervals = perms.filter(|p| p.perm.allows(op)).map(Interval::of);
    if range_end.is_empty() {
        // etcd's `Intersects` with the point `[key, key + "\0")`, whose
        // search finds an intersecting node whenever there is one.
        return intervals.any(|i| i.holds(key));
    }
    let end: &[u8] = if range_end == b"\0" { &[] } else { range_end };
    let mut tree = Tree::default();
    for iv in intervals {
        tree.insert(iv);
    }
    tree.contains(Bound(key), Bound(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(perm: PermissionType, key: &str, range_end: &str) -> KeyPermission {
        KeyPermission {
            perm,
            key: key.as_bytes().to_vec(),
            range_end: range_end.as_bytes().to_vec(),
        }
    }

    fn allowed(perms: &[KeyPermission], key: &str, range_end: &str, op: Operation) -> bool {
        is_permitted(perms.iter(), key.as_bytes(), range_end.as_bytes(), op)
    }

    #[test]
    fn a_single_key_permission_covers_that_key_only() {
        let perms = [perm(PermissionType::Read, "foo", "")];
        assert!(allowed(&perms, "foo", "", Operation::Read));
        assert!(!allowed(&perms, "foo", "", Operation::Write));
        assert!(!allowed(&perms, "foo0", "", Operation::Read));
        assert!(!allowed(&perms, "fo", "", Operation::Read));
        // The range of exactly that key.
        assert!(allowed(&perms, "foo", "foo\0", Operation::Read));
        assert!(!allowed(&perms, "foo", "fop", Operation::Read));
    }

    #[test]
    fn a_prefix_permission_covers_its_keys_and_its_subranges() {
        let perms = [perm(PermissionType::ReadWrite, "app/", "app0")];
        for op in [Operation::Read, Operation::Write] {
            assert!(allowed(&perms, "app/x", "", op));
            assert!(allowed(&perms, "app/", "app0", op));
            assert!(allowed(&perms, "app/a", "app/b", op));
            assert!(!allowed(&perms, "app0", "", op));
            assert!(!allowed(&perms, "app", "", op));
            assert!(!allowed(&perms, "app/", "\0", op), "from-key reaches past the prefix");
            assert!(!allowed(&perms, "ap", "app0", op));
        }
    }

    #[test]
    fn ranges_are_covered_by_the_union_of_touching_permissions_only() {
        let perms = [
            perm(PermissionType::Read, "a", "c"),
            perm(PermissionType::ReadWrite, "c", "e"),
            perm(PermissionType::Read, "f", "\0"),
        ];
        assert!(allowed(&perms, "a", "e", Operation::Read));
        assert!(!allowed(&perms, "a", "e", Operation::Write));
        assert!(allowed(&perms, "c", "e", Operation::Write));
        assert!(!allowed(&perms, "a", "g", Operation::Read), "the gap [e, f)");
        assert!(allowed(&perms, "f", "\0", Operation::Read));
        assert!(allowed(&perms, "zzz", "", Operation::Read));
        assert!(allowed(&perms, "g", "\0", Operation::Read));
    }

    #[test]
    fn everything_from_nul_on_covers_every_key() {
        let perms = [perm(PermissionType::Write, "\0", "\0")];
        assert!(allowed(&perms, "\0", "\0", Operation::Write));
        assert!(allowed(&perms, "any", "", Operation::Write));
        assert!(!allowed(&perms, "any", "", Operation::Read));
    }

    #[test]
    fn no_permission_allows_nothing() {
        assert!(!allowed(&[], "a", "", Operation::Read));
        assert!(!allowed(&[], "a", "b", Operation::Read));
    }

    #[test]
    fn a_range_whose_end_is_below_its_key_is_searched_as_etcds_tree_searches_it() {
        // etcd's READ tree of these is rooted at [b/, b0): its search for
        // ["d", "a") stops there, though [\0, +inf) below intersects it.
        let perms = [
            perm(PermissionType::ReadWrite, "\0", "\0"),
            perm(PermissionType::Read, "b/", "b0"),
            perm(PermissionType::Read, "d", ""),
        ];
        assert!(!allowed(&perms, "d", "a", Operation::Read));
        // The WRITE tree holds [\0, +inf) alone, which the search finds.
        assert!(allowed(&perms, "d", "a", Operation::Write));
        assert!(allowed(&perms[..1], "d", "a", Operation::Read));
        // Ranges whose end is above their key are unaffected.
        assert!(allowed(&perms, "a", "d", Operation::Read));
    }

    /// The union of the permissions that intersect `[key, end)` covers it:
    /// what etcd's search decides for a range whose end is above its key.
    fn covered(perms: &[KeyPermission], key: &[u8], end: &[u8], op: Operation) -> bool {
        let end = if end == b"\0" { &b""[..] } else { end };
        let (begin, end) = (Bound(key), Bound(end));
        let mut ivs: Vec<Interval> = perms
            .iter()
            .filter(|p| p.perm.allows(op))
            .map(Interval::of)
            .filter(|i| compare(begin, end, Bound(&i.begin), Bound(&i.end)) == Ordering::Equal)
            .collect();
        ivs.sort_by(|a, b| Bound(&a.begin).cmp(&Bound(&b.begin)));
        let Some(first) = ivs.first() else {
            return false;
        };
        let mut max_end = Bound(&first.end);
        for i in &ivs[1..] {
            if max_end < Bound(&i.begin) {
                return false;
            }
            max_end = max_end.max(Bound(&i.end));
        }
        max_end >= end && Bound(&first.begin) <= begin
    }

    #[test]
    fn the_tree_finds_every_permission_that_intersects_a_range_above_its_key() {
        const KEYS: &[&str] = &["a", "a\0", "b", "b/", "b0", "c", "d", "e", "z"];
        const ENDS: &[&str] = &["", "\0", "a", "b", "b0", "c", "d", "e", "z"];
        const TYPES: &[PermissionType] = &[PermissionType::Read, PermissionType::Write, PermissionType::ReadWrite];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..3000 {
            let perms: Vec<KeyPermission> = (0..next(14))
                .map(|_| {
                    let key = KEYS[next(KEYS.len())];
                    let end = ENDS[next(ENDS.len())];
                    let end = if end.is_empty() || end == "\0" || key < end {
                        end
                    } else {
                        ""
                    };
                    perm(TYPES[next(TYPES.len())], key, end)
                })
                .collect();
            for _ in 0..8 {
                let key = KEYS[next(KEYS.len())].as_bytes();
                let end = ENDS[next(ENDS.len())].as_bytes();
                if end.is_empty() || (end != b"\0" && end <= key) {
                    continue;
                }
                for op in [Operation::Read, Operation::Write] {
                    assert_eq!(
                        is_permitted(perms.iter(), key, end, op),
                        covered(&perms, key, end, op),
                        "{perms:?} {key:?}..{end:?} {op:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_valid_permission_ranges_are_etcds() {
        assert!(is_valid_permission_range(b"a", b""));
        assert!(is_valid_permission_range(b"a", b"b"));
        assert!(is_valid_permission_range(b"a", b"\0"));
        assert!(!is_valid_permission_range(b"", b""));
        assert!(!is_valid_permission_range(b"b", b"a"));
        assert!(!is_valid_permission_range(b"a", b"a"));
    }
}
