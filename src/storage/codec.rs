//! Which encoding a chunk's bytes are in, and the two ways samples become
//! chunks: the head's Gorilla chunks ([`super::chunk`], appendable, cut at
//! 120 samples) and the blocks' columnar chunks ([`super::columnar`],
//! written once, about a third of the size under the block's zstd frames).
//! Everything that reads samples decodes through [`decode_into`]; everything
//! that writes a block cuts a series' samples with [`block_chunks`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::block::ChunkInput;
use super::{chunk, columnar};

/// Samples per block chunk at most: one 2 h block window at a 15 s
/// interval (480 samples) fits in one chunk; a query of a short range in a
/// merged block decodes at most this many samples per series.
pub const BLOCK_CHUNK_SAMPLES: usize = 1024;

/// The encoding of a chunk's bytes. A block records the one it uses in its
/// `meta.json`; blocks written before the field existed are Gorilla.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Prometheus-compatible Gorilla XOR ([`chunk::XorChunk`]).
    #[default]
    Xor,
    /// Decimal-aware columnar layout ([`columnar`]).
    Columnar,
}

/// A chunk that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A Gorilla chunk is damaged.
    #[error("XOR chunk: {0}")]
    Xor(#[from] chunk::ChunkError),
    /// A columnar chunk is damaged.
    #[error("columnar chunk: {0}")]
    Columnar(#[from] columnar::DecodeError),
}

/// Appends the samples of `bytes`, encoded as `encoding`, to `out`.
pub fn decode_into(
    encoding: Encoding,
    bytes: &[u8],
    out: &mut Vec<(i64, f64)>,
) -> Result<(), DecodeError> {
    match encoding {
        Encoding::Xor => {
            for sample in chunk::ChunkIter::new(bytes)? {
                out.push(sample?);
            }
        }
        Encoding::Columnar => columnar::decode_into(bytes, out)?,
    }
    Ok(())
}

/// The columnar block chunks of one series' samples (sorted by time, no
/// duplicate timestamps), at most [`BLOCK_CHUNK_SAMPLES`] each.
pub fn block_chunks(
    samples: &[(i64, f64)],
) -> Result<Vec<ChunkInput<'static>>, columnar::EncodeError> {
    samples
        .chunks(BLOCK_CHUNK_SAMPLES)
        .map(|part| {
            let mut bytes = Vec::new();
            columnar::encode(part, &mut bytes)?;
            Ok(ChunkInput {
                min_t: part.first().map_or(0, |s| s.0),
                max_t: part.last().map_or(0, |s| s.0),
                num_samples: part.len() as u16,
                bytes: Cow::Owned(bytes),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_decode_to_the_same_samples() {
        let samples: Vec<(i64, f64)> = (0..2_500)
            .map(|i| (1_700_000_000_000 + i * 15_000, (i * 7 % 50) as f64 / 4.0))
            .collect();
        let mut xor = chunk::XorChunk::new();
        for &(t, v) in &samples[..120] {
            xor.append(t, v);
        }
        let mut out = Vec::new();
        decode_into(Encoding::Xor, xor.bytes(), &mut out).unwrap();
        assert_eq!(out, samples[..120]);

        let chunks = block_chunks(&samples).unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.num_samples).collect::<Vec<_>>(),
            [1024, 1024, 452]
        );
        let mut out = Vec::new();
        for c in &chunks {
            decode_into(Encoding::Columnar, &c.bytes, &mut out).unwrap();
            assert_eq!(
                (c.min_t, c.max_t),
                (
                    out[out.len() - usize::from(c.num_samples)].0,
                    out[out.len() - 1].0
                )
            );
        }
        assert_eq!(out, samples);
        assert!(decode_into(Encoding::Columnar, xor.bytes(), &mut out).is_err());
    }

    #[test]
    fn blocks_without_the_field_are_gorilla() {
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            chunk_encoding: Encoding,
        }
        let old: Meta = serde_json::from_str("{}").unwrap();
        assert_eq!(old.chunk_encoding, Encoding::Xor);
        let new: Meta = serde_json::from_str(r#"{"chunk_encoding":"columnar"}"#).unwrap();
        assert_eq!(new.chunk_encoding, Encoding::Columnar);
    }
}
