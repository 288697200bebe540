//! Readers of an account's state and of a deposit for the audit, without serde: the audit
//! reads every state and every message in flight of every snapshot, hundreds of thousands.

/// The `balance` and `received` fields of an account's state (a MessagePack map with named
/// fields, as amber writes it), the other fields skipped; `None` if the bytes are not one
/// whole map with both fields as unsigned integers (the audit then decodes them with serde).
pub(crate) fn balance_and_received(bytes: &[u8]) -> Option<(u64, u64)> {
    let mut r = Reader { bytes, at: 0 };
    let fields = r.map_len()?;
    let (mut balance, mut received) = (None, None);
    for _ in 0..fields {
        match r.str()? {
            b"balance" => balance = Some(r.uint()?),
            b"received" => received = Some(r.uint()?),
            _ => r.skip(0)?,
        }
    }
    (r.at == bytes.len()).then_some((balance?, received?))
}

/// The amount of a deposit encoded as amber encodes `AccountMsg::Deposit { amount }`
/// (MessagePack with names: `{"Deposit": {"amount": n}}`); `None` for any other payload
/// (which the audit then decodes whole).
pub(crate) fn deposit_amount(payload: &[u8]) -> Option<u64> {
    const HEAD: &[u8] = b"\x81\xa7Deposit\x81\xa6amount";
    let mut r = Reader { bytes: payload.strip_prefix(HEAD)?, at: 0 };
    let amount = r.uint()?;
    (r.at == r.bytes.len()).then_some(amount)
}

/// How deep [`Reader::skip`] follows nested arrays and maps.
const MAX_DEPTH: usize = 16;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0, |v, b| v << 8 | u64::from(*b)))
    }

    fn map_len(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0x80..=0x8f => Some(u64::from(b & 0x0f)),
            0xde => self.be(2),
            0xdf => self.be(4),
            _ => None,
        }
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0..=0x7f => Some(u64::from(b)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&[u8]> {
        let len = match self.byte()? {
            b @ 0xa0..=0xbf => u64::from(b & 0x1f),
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            _ => return None,
        };
        self.take(usize::try_from(len).ok()?)
    }

    /// Skips one value of any kind.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (len, items): (u64, u64) = match self.byte()? {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            b @ 0x80..=0x8f => (0, 2 * u64::from(b & 0x0f)),
            b @ 0x90..=0x9f => (0, u64::from(b & 0x0f)),
            b @ 0xa0..=0xbf => (u64::from(b & 0x1f), 0),
            0xc4 | 0xd9 => (self.be(1)?, 0),
            0xc5 | 0xda => (self.be(2)?, 0),
            0xc6 | 0xdb => (self.be(4)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 | 0xd4 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xc7 => (1 + self.be(1)?, 0),
            0xc8 => (1 + self.be(2)?, 0),
            0xc9 => (1 + self.be(4)?, 0),
            0xdc => (0, self.be(2)?),
            0xdd => (0, self.be(4)?),
            0xde => (0, 2 * self.be(2)?),
            0xdf => (0, 2 * self.be(4)?),
            0xc1 => return None,
        };
        self.take(usize::try_from(len).ok()?)?;
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Some(())
    }
}
