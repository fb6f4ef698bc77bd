//! A series' key: its label set as one canonical string of bytes, by which
//! the head finds a series, and the key's hash, which places the series in
//! a head shard.
//!
//! The form is the one a remote-write sender gives `TimeSeries.labels` for
//! a label set sorted by name: per pair, a `Label` message (protobuf field
//! 1, length-delimited) holding the name (field 1) then the value (field 2),
//! lengths as minimal varints. A receiver can therefore look a series up
//! with the bytes as they arrived, without decoding them: bytes equal to a
//! stored key are a valid, sorted label set, since every stored key was
//! encoded here from a validated one. Bytes in any other form (unsorted
//! labels, an unusual encoder) only miss, and are then decoded, validated
//! and encoded here like labels from any other source.
//!
//! The hash decides the shard, and a series' ref records its shard, so it
//! must not change between versions: it is XXH3-64 (seed 0), a published
//! algorithm. Stores from before it (schema 4) are handled by the head's
//! relocated series.

use super::encoding::{put_uvarint, uvarint_len, Reader};
use super::labels::Labels;

/// Protobuf key of a field number with the length-delimited wire type.
const fn len_field(number: u8) -> u8 {
    number << 3 | 2
}

/// `TimeSeries.labels` (field 1).
const LABEL: u8 = len_field(1);
/// `Label.name` (field 1).
const NAME: u8 = len_field(1);
/// `Label.value` (field 2).
const VALUE: u8 = len_field(2);

/// Appends the key of `pairs`, which must be a validated label set sorted
/// by name (as [`super::labels::push_validated`] leaves it).
pub fn encode(pairs: &[(&str, &str)], out: &mut Vec<u8>) {
    for (name, value) in pairs {
        let (name, value) = (name.as_bytes(), value.as_bytes());
        let message = 2
            + uvarint_len(name.len() as u64)
            + name.len()
            + uvarint_len(value.len() as u64)
            + value.len();
        out.push(LABEL);
        put_uvarint(out, message as u64);
        out.push(NAME);
        put_uvarint(out, name.len() as u64);
        out.extend_from_slice(name);
        out.push(VALUE);
        put_uvarint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
}

/// The hash of a key.
pub fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The `(name, value)` byte strings of a key this module encoded; stops at
/// the first byte out of that form.
pub fn pairs(key: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut r = Reader::new(key);
    std::iter::from_fn(move || {
        field(&mut r, LABEL)?;
        r.uvarint().ok()?;
        field(&mut r, NAME)?;
        let name = delimited(&mut r)?;
        field(&mut r, VALUE)?;
        let value = delimited(&mut r)?;
        Some((name, value))
    })
}

/// Reads a field key, if it is `expected`.
fn field(r: &mut Reader<'_>, expected: u8) -> Option<()> {
    (r.byte().ok()? == expected).then_some(())
}

/// Reads a length-prefixed byte string.
fn delimited<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let len = usize::try_from(r.uvarint().ok()?).ok()?;
    r.bytes(len).ok()
}

/// The label set of a key this module encoded.
pub fn decode(key: &[u8]) -> Labels {
    Labels::from_sorted(
        pairs(key)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_differ_where_labels_do() {
        let long = "x".repeat(200);
        let sets: Vec<Vec<(&str, &str)>> = vec![
            vec![("__name__", "up")],
            vec![("__name__", "up"), ("job", "a")],
            vec![("__name__", "up"), ("job", "ab")],
            vec![("__name__", "up"), ("jo", "bab")],
            vec![("__name__", "up"), ("job", &long), ("zé", "ü")],
        ];
        let keys: Vec<Vec<u8>> = sets
            .iter()
            .map(|pairs| {
                let mut key = Vec::new();
                encode(pairs, &mut key);
                key
            })
            .collect();
        for (pairs, key) in sets.iter().zip(&keys) {
            let decoded = decode(key);
            assert_eq!(decoded.str_pairs(), *pairs);
        }
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
                assert_ne!(hash(a), hash(b));
            }
        }
    }

    #[test]
    fn the_key_is_the_protobuf_a_sender_writes() {
        // `TimeSeries.labels` for {__name__="up", job="a"}, as Prometheus's
        // encoder writes it (hand-assembled from the protobuf rules).
        let mut expected = vec![0x0a, 14, 0x0a, 8];
        expected.extend_from_slice(b"__name__");
        expected.extend_from_slice(&[0x12, 2]);
        expected.extend_from_slice(b"up");
        expected.extend_from_slice(&[0x0a, 8, 0x0a, 3]);
        expected.extend_from_slice(b"job");
        expected.extend_from_slice(&[0x12, 1]);
        expected.extend_from_slice(b"a");
        let mut key = Vec::new();
        encode(&[("__name__", "up"), ("job", "a")], &mut key);
        assert_eq!(key, expected);
        // A value of 200 bytes takes a two-byte length, and so does its message.
        let long = "v".repeat(200);
        key.clear();
        encode(&[("n", &long)], &mut key);
        assert_eq!(&key[..3], &[0x0a, 0xce, 0x01]);
        assert_eq!(&key[6..9], &[0x12, 0xc8, 0x01]);
    }

    #[test]
    fn the_hash_is_xxh3_of_the_key() {
        // Shards come from this hash and are recorded in series refs: a
        // change of algorithm would misplace every stored series.
        // Reference values from the `xxhash` Python package (the C library).
        assert_eq!(hash(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(hash(b"fleetmon"), 0xd700_55b8_7bf0_a0f5);
        let mut key = Vec::new();
        encode(&[("__name__", "up"), ("job", "a")], &mut key);
        assert_eq!(hash(&key), 0x3fe8_5c6c_89f3_773e);
    }
}
