//! `#[amber::actor]` writes each actor's message encoder (`Actor::__encode_msg`) with the
//! variant and field names as constant byte strings. What it writes must be, byte for byte,
//! what serde's derived `Serialize` writes through `amber::encode` (checkpoints and peers
//! read messages with serde): checked here for every shape of handler the macro accepts —
//! no arguments, one, several, more than fifteen (a 16-bit map head), raw identifiers, a
//! variant name longer than 31 bytes (an 8-bit string head) — over seeded random values of
//! many kinds, and for every length boundary of a string argument.

use std::collections::BTreeMap;

use amber::prelude::*;

#[derive(ActorState, Default, Debug)]
#[amber(name = "test.Shapes")]
pub struct Shapes {
    seen: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(crate = "amber::serde")]
pub struct Inner {
    name: String,
    flags: Vec<bool>,
    ratio: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(crate = "amber::serde")]
pub enum Kind {
    Plain,
    Tagged(i32),
    Spot { x: i64, y: i64 },
}

#[amber::actor(derive(Clone, Debug))]
impl Shapes {
    fn ping(&mut self) {
        self.seen += 1;
    }

    fn deposit(&mut self, amount: u64) {
        self.seen += amount;
    }

    fn mixed(&mut self, r#type: String, inner: Inner, kind: Kind, maybe: Option<i8>) -> u64 {
        let _ = (r#type, inner, kind, maybe);
        self.seen
    }

    fn collections(&mut self, list: Vec<u32>, map: BTreeMap<String, i64>, bytes: Vec<u8>) {
        let _ = (list, map, bytes);
    }

    #[allow(clippy::too_many_arguments)]
    fn sixteen_arguments_make_a_sixteen_bit_map_head(
        &mut self,
        a0: u8,
        a1: u16,
        a2: u32,
        a3: u64,
        a4: i8,
        a5: i16,
        a6: i32,
        a7: i64,
        a8: f32,
        a9: f64,
        a10: bool,
        a11: char,
        a12: String,
        a13: (u8, String),
        a14: Option<u64>,
        a15: Kind,
    ) {
        let _ = (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
    }
}

/// A small seeded generator (xorshift), so that a failure names the seed that made it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// An integer of a random width: every MessagePack integer size gets picked.
    fn int(&mut self) -> u64 {
        let bits = self.next() % 65;
        if bits == 64 { self.next() } else { self.next() & ((1u64 << bits) - 1) }
    }

    fn string(&mut self) -> String {
        let len = [0, 1, 31, 32, 255, 256, 300][(self.next() % 7) as usize];
        (0..len).map(|i| char::from(b'a' + ((self.next() + i) % 26) as u8)).collect()
    }

    fn kind(&mut self) -> Kind {
        match self.next() % 3 {
            0 => Kind::Plain,
            1 => Kind::Tagged(self.int() as i32),
            _ => Kind::Spot { x: self.int() as i64, y: -(self.int() as i64 >> 1) },
        }
    }

    fn message(&mut self) -> ShapesMsg {
        match self.next() % 5 {
            0 => ShapesMsg::Ping,
            1 => ShapesMsg::Deposit { amount: self.int() },
            2 => ShapesMsg::Mixed {
                r#type: self.string(),
                inner: Inner {
                    name: self.string(),
                    flags: (0..self.next() % 20).map(|i| i % 3 == 0).collect(),
                    ratio: self.int() as f64 / 7.0,
                },
                kind: self.kind(),
                maybe: self.next().is_multiple_of(2).then(|| self.int() as i8),
            },
            3 => ShapesMsg::Collections {
                list: (0..self.next() % 40).map(|_| self.int() as u32).collect(),
                map: (0..self.next() % 20).map(|_| (self.string(), self.int() as i64)).collect(),
                bytes: (0..self.next() % 300).map(|_| self.next() as u8).collect(),
            },
            _ => ShapesMsg::SixteenArgumentsMakeASixteenBitMapHead {
                a0: self.int() as u8,
                a1: self.int() as u16,
                a2: self.int() as u32,
                a3: self.int(),
                a4: self.int() as i8,
                a5: self.int() as i16,
                a6: self.int() as i32,
                a7: self.int() as i64,
                a8: self.int() as f32,
                a9: f64::from_bits(self.next()),
                a10: self.next().is_multiple_of(2),
                a11: char::from_u32((self.next() % 0xd000) as u32).unwrap_or('x'),
                a12: self.string(),
                a13: (self.int() as u8, self.string()),
                a14: self.next().is_multiple_of(2).then(|| self.int()),
                a15: self.kind(),
            },
        }
    }
}

fn generated(msg: &ShapesMsg) -> Vec<u8> {
    let mut out = vec![0xee]; // appended after what the buffer holds
    <Shapes as Actor>::__encode_msg(msg, &mut out).expect("the generated encoder encodes");
    assert_eq!(out[0], 0xee, "the generated encoder kept what the buffer held");
    out.split_off(1)
}

#[test]
fn the_generated_encoder_writes_what_serde_writes() {
    for seed in 1..=5_000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let msg = rng.message();
        let serde = amber::encode(&msg).expect("serde encodes");
        assert_eq!(generated(&msg), serde, "seed {seed}: {msg:?}");
        // And it reads back as the message.
        let back: ShapesMsg = amber::decode(&serde).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{msg:?}"), "seed {seed}");
    }
}

#[test]
fn string_arguments_at_every_length_boundary_encode_as_serde_does() {
    for len in [0, 1, 31, 32, 33, 255, 256, 257, 65_535, 65_536, 70_000] {
        let msg = ShapesMsg::Mixed {
            r#type: "t".repeat(len),
            inner: Inner { name: "n".repeat(len), flags: vec![true; len % 70], ratio: 0.5 },
            kind: Kind::Plain,
            maybe: None,
        };
        assert_eq!(generated(&msg), amber::encode(&msg).expect("serde encodes"), "len {len}");
    }
}

#[test]
fn unit_and_single_field_messages_are_their_serde_bytes() {
    assert_eq!(generated(&ShapesMsg::Ping), b"\xa4Ping");
    assert_eq!(
        generated(&ShapesMsg::Deposit { amount: 300 }),
        b"\x81\xa7Deposit\x81\xa6amount\xcd\x01\x2c"
    );
}
