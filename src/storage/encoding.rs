//! Byte encodings shared by the WAL, series keys, block chunks
//! and the remote-write wire format: unsigned and zigzag varints (LEB128, as
//! protobuf's), length-prefixed strings, and a bounds-checked reader that
//! turns corrupt input into an error instead of a panic.

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `v` takes as an unsigned varint (0 still takes one).
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// Appends `v` as a zigzag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a length-prefixed string.
#[inline]
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Reads what the `put_*` functions wrote; every read is bounds-checked.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

/// The input ended early or holds an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, Corrupt> {
        let (&first, rest) = self.bytes.split_first().ok_or(Corrupt)?;
        self.bytes = rest;
        Ok(first)
    }

    /// An unsigned varint.
    pub fn uvarint(&mut self) -> Result<u64, Corrupt> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Corrupt)
    }

    /// A zigzag varint.
    pub fn varint(&mut self) -> Result<i64, Corrupt> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Eight bytes, little-endian.
    pub fn u64_le(&mut self) -> Result<u64, Corrupt> {
        let (head, rest) = self.bytes.split_at_checked(8).ok_or(Corrupt)?;
        self.bytes = rest;
        let mut word = [0u8; 8];
        word.copy_from_slice(head);
        Ok(u64::from_le_bytes(word))
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], Corrupt> {
        let (head, rest) = self.bytes.split_at_checked(len).ok_or(Corrupt)?;
        self.bytes = rest;
        Ok(head)
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Everything left, consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, Corrupt> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| Corrupt)?;
        std::str::from_utf8(self.bytes(len)?).map_err(|_| Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_truncation_is_an_error() {
        let mut out = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            put_uvarint(&mut out, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            put_varint(&mut out, v);
        }
        put_str(&mut out, "héllo");
        out.extend_from_slice(&42u64.to_le_bytes());
        let mut r = Reader::new(&out);
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.uvarint(), Ok(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(r.varint(), Ok(v));
        }
        assert_eq!(r.str(), Ok("héllo"));
        assert_eq!(r.u64_le(), Ok(42));
        assert!(r.is_empty());
        for cut in 0..out.len() {
            let mut r = Reader::new(&out[..cut]);
            let complete = (|| -> Result<(), Corrupt> {
                for _ in 0..11 {
                    r.uvarint()?;
                }
                r.str()?;
                r.u64_le()?;
                Ok(())
            })();
            assert_eq!(complete, Err(Corrupt), "cut at {cut}");
        }
    }
}
