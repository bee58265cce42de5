//! Serde for the store's persistent maps ([`imbl::OrdMap`]), in the format
//! of a `BTreeMap`: a length, then the entries in key order.
//!
//! Hand-written rather than imbl's own `serde` support, which allocates
//! for as many entries as the length prefix claims before reading any:
//! a damaged or hostile snapshot file then aborts the process instead of
//! being refused. Here memory grows only with the entries actually read.

use std::fmt;
use std::marker::PhantomData;

use imbl::OrdMap;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, Serializer};

pub(crate) fn serialize<S, K, V>(map: &OrdMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    K: Serialize + Ord + Clone,
    V: Serialize + Clone,
{
    serializer.collect_map(map.iter())
}

pub(crate) fn deserialize<'de, D, K, V>(deserializer: D) -> Result<OrdMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
{
    struct Entries<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Ord + Clone,
        V: Deserialize<'de> + Clone,
    {
        type Value = OrdMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = OrdMap::new();
            while let Some((k, v)) = access.next_entry()? {
                map.insert(k, v);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(Entries(PhantomData))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Persistent(#[serde(with = "super")] OrdMap<String, u32>);

    #[test]
    fn the_format_is_a_btreemaps() {
        let std: BTreeMap<String, u32> = [("b".into(), 2), ("a".into(), 1), ("c".into(), 3)].into();
        let ours = Persistent(std.iter().map(|(k, v)| (k.clone(), *v)).collect());
        let json = serde_json::to_string(&ours).unwrap();
        assert_eq!(json, serde_json::to_string(&std).unwrap());
        let back: Persistent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ours);
    }
}
