//! Unsigned LEB128 varints, the one encoding of variable-length integers amber writes outside
//! MessagePack: 7 bits a byte, least significant first, the high bit set on every byte but
//! the last; 1 to [`MAX_LEN`] bytes, always in the shortest form. A backlog's packed fields
//! ([`Backlog::pack_fields`](crate::Backlog::pack_fields)) and the link protocol's frames
//! (`amber-remote`) are written and read with these.
//!
//! ```
//! use amber_snapshot::varint;
//!
//! let mut out = Vec::new();
//! varint::put(&mut out, 300);
//! assert_eq!(out, [0xac, 0x02]);
//! let mut at = 0;
//! assert_eq!(varint::take(&out, &mut at), Ok(300));
//! assert_eq!(at, 2);
//! assert_eq!(varint::take(&[0x80, 0x00], &mut 0), Err(varint::VarintError::NotShortest));
//! ```

use std::fmt;

use bytes::BufMut;

/// The most bytes a varint of a `u64` takes.
pub const MAX_LEN: usize = 10;

/// Why [`take`] refused the bytes at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end inside the varint.
    Truncated,
    /// It holds more than 64 bits.
    TooLarge,
    /// It ends with a zero byte after the first: the same value has a shorter form.
    NotShortest,
}

impl VarintError {
    /// What is wrong, in a few words (for the errors of the formats that use varints).
    pub const fn reason(self) -> &'static str {
        match self {
            VarintError::Truncated => "varint cut short",
            VarintError::TooLarge => "varint larger than 64 bits",
            VarintError::NotShortest => "varint not in its shortest form",
        }
    }
}

impl fmt::Display for VarintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for VarintError {}

/// Appends `n` in its shortest form.
#[inline]
pub fn put(dst: &mut impl BufMut, mut n: u64) {
    while n >= 0x80 {
        dst.put_u8(n as u8 | 0x80);
        n >>= 7;
    }
    dst.put_u8(n as u8);
}

/// The varint at `*at` in `bytes`, moving `*at` past it. Refuses one cut short, one over
/// 64 bits and one not in its shortest form (`*at` is then left anywhere inside it).
#[inline(always)]
pub fn take(bytes: &[u8], at: &mut usize) -> Result<u64, VarintError> {
    let mut byte = || {
        let byte = *bytes.get(*at).ok_or(VarintError::Truncated)?;
        *at += 1;
        Ok(byte)
    };
    let first = byte()?;
    if first < 0x80 {
        return Ok(u64::from(first));
    }
    let mut value = u64::from(first & 0x7f);
    for i in 1..MAX_LEN {
        let b = byte()?;
        if i == MAX_LEN - 1 && b > 0x01 {
            return Err(VarintError::TooLarge);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if b == 0 {
                return Err(VarintError::NotShortest);
            }
            return Ok(value);
        }
    }
    Err(VarintError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_at_their_edges() {
        for n in [0u64, 1, 127, 128, 255, 16_383, 16_384, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put(&mut out, n);
            assert!(out.len() <= MAX_LEN);
            let mut at = 0;
            assert_eq!(take(&out, &mut at), Ok(n));
            assert_eq!(at, out.len());
            for cut in 0..out.len() {
                assert_eq!(take(&out[..cut], &mut 0), Err(VarintError::Truncated), "{n} cut {cut}");
            }
        }
        // Eleven bytes, or a tenth byte beyond bit 63: refused.
        assert_eq!(take(&[0xff; 11], &mut 0), Err(VarintError::TooLarge));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(take(&over, &mut 0), Err(VarintError::TooLarge));
        // A value with a trailing zero byte: it has a shorter form.
        assert_eq!(take(&[0x81, 0x80, 0x00], &mut 0), Err(VarintError::NotShortest));
    }
}
