//! The encoder against `rmp-serde`: the same bytes for every kind of value serde has, at every
//! length and integer boundary, and for thousands of random nested values; what it writes
//! reads back.

use std::collections::{BTreeMap, HashMap};

use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};
use serde::{Deserialize, Serialize, Serializer};

use super::{
    to_vec_named, write, write_bool, write_f32, write_f64, write_named, write_nil, write_sint,
    write_str, write_uint,
};

/// Both encodings of `value` equal rmp-serde's.
fn same<T: Serialize + ?Sized>(value: &T) {
    let theirs = rmp_serde::to_vec_named(value).expect("rmp-serde named");
    let mut ours = Vec::new();
    write_named(&mut ours, value).expect("named");
    assert_eq!(ours, theirs, "named");
    let theirs = rmp_serde::to_vec(value).expect("rmp-serde");
    let mut ours = vec![7]; // appends after what is there
    write(&mut ours, value).expect("positional");
    assert_eq!(ours[1..], theirs[..], "positional");
}

#[test]
fn integers_at_every_boundary() {
    let edges: [i128; 22] = [
        0,
        1,
        31,
        32,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        4_294_967_295,
        4_294_967_296,
        i64::MAX as i128,
        u64::MAX as i128,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        i64::MIN as i128,
    ];
    for e in edges {
        for d in [-1i128, 0, 1] {
            let v = e + d;
            if let Ok(v) = u64::try_from(v) {
                same(&v);
                same(&(v as u8));
                same(&(v as u16));
                same(&(v as u32));
            }
            if let Ok(v) = i64::try_from(v) {
                same(&v);
                same(&(v as i8));
                same(&(v as i16));
                same(&(v as i32));
            }
            same(&v);
            same(&(v as u128));
        }
    }
}

/// What one of the direct writers appends after `[7]`, without the 7.
fn direct(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![7];
    f(&mut out);
    assert_eq!(out[0], 7, "the writer appends");
    out.split_off(1)
}

/// rmp-serde's bytes for `value` (positional: a primitive is the same either way).
fn rmp<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec(value).expect("rmp-serde")
}

/// The writers the generated message encoders call for primitive fields, against
/// rmp-serde's bytes for the same value of every type they stand for.
#[test]
fn the_direct_writers_write_what_rmp_serde_writes() {
    let mut ints: Vec<i128> = Vec::new();
    for e in [
        0i128,
        31,
        32,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u32::MAX as i128,
        u32::MAX as i128 + 1,
        i64::MAX as i128,
        u64::MAX as i128,
        -1,
        -32,
        -33,
        -128,
        -129,
        i16::MIN as i128,
        i16::MAX as i128,
        i32::MIN as i128,
        i32::MAX as i128,
        i64::MIN as i128,
    ] {
        ints.extend([e - 1, e, e + 1]);
    }
    // Every width that fits `v`, written through the 64-bit writer of its sign, against what
    // rmp-serde writes for a value of that width.
    macro_rules! each_width {
        ($v:expr, $write:ident as $wide:ty: $($t:ty),*) => {$(
            if let Ok(w) = <$t>::try_from($v) {
                let ours = direct(|o| $write(o, w as $wide));
                assert_eq!(ours, rmp(&w), "{} {}", stringify!($t), $v);
            }
        )*};
    }
    for v in ints {
        each_width!(v, write_uint as u64: u64, u32, u16, u8, usize);
        each_width!(v, write_sint as i64: i64, i32, i16, i8, isize);
    }
    assert_eq!(direct(write_nil), rmp(&None::<u8>));
    for v in [false, true] {
        assert_eq!(direct(|o| write_bool(o, v)), rmp(&v), "{v}");
    }
    for v in [0.0f64, -0.0, 1.5, -2.25e300, f64::MIN_POSITIVE, f64::INFINITY, f64::NAN] {
        assert_eq!(direct(|o| write_f64(o, v)), rmp(&v), "f64 {v}");
        let v = v as f32;
        assert_eq!(direct(|o| write_f32(o, v)), rmp(&v), "f32 {v}");
    }
    for len in [0usize, 1, 31, 32, 33, 255, 256, 257, 65_535, 65_536, 65_537] {
        let s = "x".repeat(len);
        assert_eq!(direct(|o| write_str(o, &s).unwrap()), rmp(&s), "str of {len}");
    }
}

#[test]
fn strings_bytes_and_sequences_at_every_length_boundary() {
    for len in [0usize, 1, 15, 16, 31, 32, 255, 256, 65_535, 65_536, 70_000] {
        let s = "é".repeat(len / 2) + &"x".repeat(len % 2);
        same(&s);
        same(&serde_bytes::ByteBuf::from(vec![3u8; len]));
        same(&vec![1u8; len]);
        let map: BTreeMap<u32, bool> = (0..len as u32).map(|k| (k, k % 3 == 0)).collect();
        same(&map);
    }
    same(&'é');
    same(&'x');
    same(&1.5f32);
    same(&-0.0f64);
    same(&f64::NAN.to_bits());
    same(&(true, false, (), Some(3u8), None::<u8>));
    let one: HashMap<String, Vec<i32>> = [("a".to_owned(), vec![-1, 2])].into();
    same(&one);
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Newtype(u64);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pair(i8, String);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Msg {
    Deposit { amount: u64 },
    Transfer { to: Option<u32>, amount: u64, memo: String },
    Pump,
    Link(Vec<u64>, u64),
    Wrapped(Box<Msg>),
    Unit(Unit),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct State {
    balance: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
    inbox: Vec<Msg>,
    pair: Pair,
    id: Newtype,
    #[serde(flatten)]
    extra: BTreeMap<String, i64>,
}

#[test]
fn structs_enums_and_flatten_read_back() {
    let msgs = vec![
        Msg::Deposit { amount: 300 },
        Msg::Transfer { to: Some(7), amount: u64::MAX, memo: "rent".into() },
        Msg::Transfer { to: None, amount: 0, memo: String::new() },
        Msg::Pump,
        Msg::Link(vec![1, 2, 3], 9),
        Msg::Wrapped(Box::new(Msg::Pump)),
        Msg::Unit(Unit),
    ];
    for m in &msgs {
        same(m);
        let back: Msg = rmp_serde::from_slice(&to_vec_named(m).unwrap()).unwrap();
        assert_eq!(&back, m);
    }
    for note in [None, Some("n".to_owned())] {
        let state = State {
            balance: 12,
            note,
            inbox: msgs
                .iter()
                .map(|m| rmp_serde::from_slice(&to_vec_named(m).unwrap()).unwrap())
                .collect(),
            pair: Pair(-5, "p".into()),
            id: Newtype(1 << 40),
            extra: [("x".to_owned(), -70_000)].into(),
        };
        same(&state);
        let back: State = rmp_serde::from_slice(&to_vec_named(&state).unwrap()).unwrap();
        assert_eq!(back, state);
    }
}

#[test]
fn an_extension_is_written_as_rmp_serde_writes_it() {
    struct Ext;
    impl Serialize for Ext {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_newtype_struct("_ExtStruct", &(5i8, serde_bytes::Bytes::new(&[1, 2, 3, 4])))
        }
    }
    same(&Ext);
    same(&vec![Ext, Ext]);
}

#[test]
fn a_failing_serialize_is_an_error() {
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    let mut out = Vec::new();
    let error = write_named(&mut out, &(1u8, Fails)).unwrap_err();
    assert_eq!(error.to_string(), "no");
}

/// A random value that drives every method of a serializer.
#[derive(Debug, Clone)]
enum Value {
    Bool(bool),
    I(i64),
    U(u64),
    I128(i128),
    F32(f32),
    F64(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Value>),
    Unit,
    UnitStruct,
    UnitVariant(&'static str),
    NewtypeStruct(Box<Value>),
    NewtypeVariant(&'static str, Box<Value>),
    /// Elements; whether the length is told up front.
    Seq(Vec<Value>, bool),
    Tuple(Vec<Value>),
    TupleStruct(Vec<Value>),
    TupleVariant(&'static str, Vec<Value>),
    Map(Vec<(Value, Value)>, bool),
    Struct(Vec<Value>),
    StructVariant(&'static str, Vec<Value>),
}

const NAMES: [&str; 8] =
    ["a", "b", "amount", "to", "x_y", "", "ÿ", "a_much_longer_field_name_than_31_bytes"];

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bool(v) => s.serialize_bool(*v),
            Value::I(v) => s.serialize_i64(*v),
            Value::U(v) => s.serialize_u64(*v),
            Value::I128(v) => s.serialize_i128(*v),
            Value::F32(v) => s.serialize_f32(*v),
            Value::F64(v) => s.serialize_f64(*v),
            Value::Char(v) => s.serialize_char(*v),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(v) => s.serialize_bytes(v),
            Value::None => s.serialize_none(),
            Value::Some(v) => s.serialize_some(v),
            Value::Unit => s.serialize_unit(),
            Value::UnitStruct => s.serialize_unit_struct("U"),
            Value::UnitVariant(n) => s.serialize_unit_variant("E", 3, n),
            Value::NewtypeStruct(v) => s.serialize_newtype_struct("N", v),
            Value::NewtypeVariant(n, v) => s.serialize_newtype_variant("E", 1, n, v),
            Value::Seq(items, sized) => {
                let mut seq = s.serialize_seq(sized.then_some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Tuple(items) => {
                let mut t = s.serialize_tuple(items.len())?;
                for item in items {
                    t.serialize_element(item)?;
                }
                t.end()
            }
            Value::TupleStruct(items) => {
                let mut t = s.serialize_tuple_struct("T", items.len())?;
                for item in items {
                    t.serialize_field(item)?;
                }
                t.end()
            }
            Value::TupleVariant(n, items) => {
                let mut t = s.serialize_tuple_variant("E", 2, n, items.len())?;
                for item in items {
                    t.serialize_field(item)?;
                }
                t.end()
            }
            Value::Map(entries, sized) => {
                let mut m = s.serialize_map(sized.then_some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_key(k)?;
                    m.serialize_value(v)?;
                }
                m.end()
            }
            Value::Struct(fields) => {
                let mut st = s.serialize_struct("S", fields.len())?;
                for (n, field) in fields.iter().enumerate() {
                    st.serialize_field(NAMES[n % NAMES.len()], field)?;
                }
                st.end()
            }
            Value::StructVariant(name, fields) => {
                let mut st = s.serialize_struct_variant("E", 4, name, fields.len())?;
                for (n, field) in fields.iter().enumerate() {
                    st.serialize_field(NAMES[(n + 3) % NAMES.len()], field)?;
                }
                st.end()
            }
        }
    }
}

/// xorshift64*: the same values on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An integer near a random power of two, of either sign.
    fn int(&mut self) -> i64 {
        let base = 1i64.checked_shl(self.below(63) as u32).unwrap_or(0);
        let v = base.wrapping_add(self.below(5) as i64 - 2);
        if self.below(2) == 0 { v } else { v.wrapping_neg() }
    }

    fn string(&mut self) -> String {
        let lens = [0, 1, 5, 31, 32, 40, 255, 256, 300];
        let len = lens[self.below(lens.len() as u64) as usize];
        (0..len).map(|i| if (i + len) % 7 == 0 { 'é' } else { 'q' }).collect()
    }

    fn items(&mut self, depth: u32) -> Vec<Value> {
        let n = [0, 1, 2, 3, 15, 16, 17][self.below(7) as usize];
        (0..n).map(|_| self.value(depth + 1)).collect()
    }

    fn value(&mut self, depth: u32) -> Value {
        let kinds = if depth >= 3 { 14 } else { 23 };
        let name = NAMES[self.below(NAMES.len() as u64) as usize];
        match self.below(kinds) {
            0 => Value::Bool(self.below(2) == 0),
            1 => Value::I(self.int()),
            2 => Value::U(self.int() as u64),
            3 => Value::I128(i128::from(self.int()) << self.below(64)),
            4 => Value::F32(self.int() as f32 / 3.0),
            5 => Value::F64(self.int() as f64 / 7.0),
            6 => Value::Char(char::from_u32(self.below(0x11_0000) as u32).unwrap_or('z')),
            7 => Value::Str(self.string()),
            8 => Value::Bytes(self.string().into_bytes()),
            9 => Value::None,
            10 => Value::Unit,
            11 => Value::UnitStruct,
            12 => Value::UnitVariant(name),
            13 => Value::U(self.below(300)),
            14 => Value::Some(Box::new(self.value(depth + 1))),
            15 => Value::NewtypeStruct(Box::new(self.value(depth + 1))),
            16 => Value::NewtypeVariant(name, Box::new(self.value(depth + 1))),
            17 => Value::Seq(self.items(depth), self.below(2) == 0),
            18 => Value::Tuple(self.items(depth)),
            19 => Value::TupleStruct(self.items(depth)),
            20 => Value::TupleVariant(name, self.items(depth)),
            21 => {
                let keys = self.items(depth);
                let entries = keys.into_iter().map(|k| (k, self.value(depth + 1))).collect();
                Value::Map(entries, self.below(2) == 0)
            }
            _ => {
                if self.below(2) == 0 {
                    Value::Struct(self.items(depth))
                } else {
                    Value::StructVariant(name, self.items(depth))
                }
            }
        }
    }
}

#[test]
fn thousands_of_random_values_encode_as_rmp_serde_does() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let value = rng.value(0);
        same(&value);
    }
}
