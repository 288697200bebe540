//! MessagePack encoding into a `Vec<u8>`, byte for byte what `rmp-serde` writes, in a
//! fraction of its instructions.
//!
//! Every message recorded at a cut, every state and every message to another node is encoded
//! as MessagePack; a snapshot of a loaded system encodes hundreds of thousands of small
//! messages. `rmp-serde` writes through `std::io::Write` and maps each marker's error through
//! several layers; this serializer appends to the buffer directly. Its output is the same as
//! `rmp_serde::encode::write_named` ([`write_named`]: structs as maps with their field
//! names) or `rmp_serde::encode::write` ([`write()`]: structs as arrays), so what either wrote
//! reads back with `rmp_serde::from_slice` and old checkpoints and peers are unaffected
//! (tested against `rmp-serde` value by value).
//!
//! ```
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! enum Msg {
//!     Deposit { amount: u64 },
//! }
//!
//! let mut out = Vec::new();
//! amber_snapshot::msgpack::write_named(&mut out, &Msg::Deposit { amount: 300 })?;
//! assert_eq!(out, rmp_serde::to_vec_named(&Msg::Deposit { amount: 300 }).unwrap());
//! # Ok::<(), amber_snapshot::msgpack::Error>(())
//! ```

use std::fmt;

use serde::ser::{self, Serialize};

/// A value that could not be encoded: its `Serialize` failed (with this message), or a
/// length does not fit MessagePack's 32 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The checkpoint writer's records are framed by code shared with `rmp-serde`'s writers:
/// an encoding error is theirs there.
impl From<Error> for rmp_serde::encode::Error {
    fn from(error: Error) -> Self {
        rmp_serde::encode::Error::Syntax(error.0)
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error(msg.to_string())
    }
}

/// Appends `value` to `out`, structs as maps with their field names (as
/// `rmp_serde::encode::write_named`). On error `out` may hold part of the value.
#[inline]
pub fn write_named<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Encoder { out, named: true })
}

/// Appends `value` to `out`, structs as arrays of their fields (as
/// `rmp_serde::encode::write`). On error `out` may hold part of the value.
#[inline]
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Encoder { out, named: false })
}

/// `value` encoded as [`write_named`] does.
pub fn to_vec_named<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(64);
    write_named(&mut out, value)?;
    Ok(out)
}

/// The name `rmp-serde` gives a newtype struct that stands for a MessagePack extension.
const EXT_STRUCT_NAME: &str = "_ExtStruct";

/// The serializer: the buffer, and whether structs are maps.
#[derive(Debug)]
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    named: bool,
}

/// `len` as MessagePack's 32-bit length.
fn len32(len: usize) -> Result<u32, Error> {
    u32::try_from(len).map_err(|_| Error(format!("a length of {len} does not fit 32 bits")))
}

/// Where [`write_uint`] puts its bytes: the output vector, or a buffer on the stack that
/// collects an in-flight item's head before one copy into the output (the checkpoint
/// writer's `put_item_head`).
pub(crate) trait Out {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// Appends one byte.
    fn put_byte(&mut self, byte: u8) {
        self.put(&[byte]);
    }
}

impl Out for Vec<u8> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// Appends `v` as the shortest MessagePack integer that holds it: a positive fixint, or
/// `uint 8/16/32/64` (as `rmp-serde` writes every unsigned integer, and every signed one that
/// is not negative). One capacity check and constant-size stores per form.
#[inline]
pub(crate) fn write_uint(out: &mut impl Out, v: u64) {
    if v < 128 {
        out.put_byte(v as u8);
    } else if v < 256 {
        out.put(&[0xcc, v as u8]);
    } else if v < 65_536 {
        let [a, b] = (v as u16).to_be_bytes();
        out.put(&[0xcd, a, b]);
    } else if v < 4_294_967_296 {
        let [a, b, c, d] = (v as u32).to_be_bytes();
        out.put(&[0xce, a, b, c, d]);
    } else {
        let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
        out.put(&[0xcf, a, b, c, d, e, f, g, h]);
    }
}

/// Appends `v` as the shortest MessagePack integer that holds it, as `rmp-serde` writes
/// every signed integer: [`write_uint`]'s forms when it is not negative, else a negative
/// fixint or `int 8/16/32/64`.
#[inline]
pub(crate) fn write_sint(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8); // negative fixint
    } else if v >= -128 {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if v >= -32_768 {
        let [a, b] = (v as i16).to_be_bytes();
        out.extend_from_slice(&[0xd1, a, b]);
    } else if v >= -2_147_483_648 {
        let [a, b, c, d] = (v as i32).to_be_bytes();
        out.extend_from_slice(&[0xd2, a, b, c, d]);
    } else {
        let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
        out.extend_from_slice(&[0xd3, a, b, c, d, e, f, g, h]);
    }
}

/// Appends MessagePack's nil (as `rmp-serde` writes `None` and `()`).
#[inline]
pub(crate) fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// Appends `v` as MessagePack's `false` or `true`.
#[inline]
pub(crate) fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

/// Appends `v` as a MessagePack `float 32`.
#[inline]
pub(crate) fn write_f32(out: &mut Vec<u8>, v: f32) {
    let [a, b, c, d] = v.to_be_bytes();
    out.extend_from_slice(&[0xca, a, b, c, d]);
}

/// Appends `v` as a MessagePack `float 64`.
#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
    out.extend_from_slice(&[0xcb, a, b, c, d, e, f, g, h]);
}

/// Appends `s` as a MessagePack string: `fixstr` or `str 8/16/32`, the shortest head for
/// its length. Fails (writing nothing) if its length does not fit 32 bits.
#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), Error> {
    let len = s.len();
    if len < 32 {
        out.reserve(1 + len);
        out.push(0xa0 | len as u8);
        out.extend_from_slice(s.as_bytes());
        return Ok(());
    }
    write_sized(out, s.as_bytes(), [0xd9, 0xda, 0xdb])
}

/// Appends `bytes` after their length with one of `markers` (8-, 16- and 32-bit lengths).
/// Fails (writing nothing) if the length does not fit 32 bits.
#[inline]
fn write_sized(out: &mut Vec<u8>, bytes: &[u8], [m8, m16, m32]: [u8; 3]) -> Result<(), Error> {
    let len = bytes.len();
    if len < 256 {
        out.reserve(2 + len);
        out.push(m8);
        out.push(len as u8);
    } else if len < 65_536 {
        let [a, b] = (len as u16).to_be_bytes();
        out.reserve(3 + len);
        out.extend_from_slice(&[m16, a, b]);
    } else {
        let [a, b, c, d] = len32(len)?.to_be_bytes();
        out.reserve(5 + len);
        out.extend_from_slice(&[m32, a, b, c, d]);
    }
    out.extend_from_slice(bytes);
    Ok(())
}

impl<'a> Encoder<'a> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    #[inline]
    fn marker_then(&mut self, marker: u8, bytes: &[u8]) {
        self.out.reserve(1 + bytes.len());
        self.out.push(marker);
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn uint(&mut self, v: u64) {
        write_uint(self.out, v);
    }

    #[inline]
    fn sint(&mut self, v: i64) {
        write_sint(self.out, v);
    }

    /// A length with its three markers: fix (its high bits, its limit), 16 and 32 bits.
    #[inline]
    fn len(
        &mut self,
        len: usize,
        fix: u8,
        fix_limit: usize,
        m16: u8,
        m32: u8,
    ) -> Result<(), Error> {
        if len < fix_limit {
            self.byte(fix | len as u8);
        } else if len < 65_536 {
            self.marker_then(m16, &(len as u16).to_be_bytes());
        } else {
            self.marker_then(m32, &len32(len)?.to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn array_len(&mut self, len: usize) -> Result<(), Error> {
        self.len(len, 0x90, 16, 0xdc, 0xdd)
    }

    #[inline]
    fn map_len(&mut self, len: usize) -> Result<(), Error> {
        self.len(len, 0x80, 16, 0xde, 0xdf)
    }

    #[inline]
    fn str(&mut self, s: &str) -> Result<(), Error> {
        write_str(self.out, s)
    }

    #[inline]
    fn bin(&mut self, bytes: &[u8]) -> Result<(), Error> {
        write_sized(self.out, bytes, [0xc4, 0xc5, 0xc6])
    }

    /// A sequence or map of known length writes its head now; one of unknown length is
    /// encoded aside and headed when its length is known (as `rmp-serde` does).
    fn compound<'e>(
        &'e mut self,
        len: Option<usize>,
        map: bool,
    ) -> Result<Compound<'e, 'a>, Error> {
        match len {
            Some(len) => {
                if map {
                    self.map_len(len)?;
                } else {
                    self.array_len(len)?;
                }
                Ok(Compound { enc: self, aside: None })
            }
            None => Ok(Compound {
                enc: self,
                aside: Some(Aside { buf: Vec::with_capacity(128), items: 0, map }),
            }),
        }
    }
}

/// A sequence or map being encoded.
#[doc(hidden)]
#[derive(Debug)]
pub struct Compound<'e, 'a> {
    enc: &'e mut Encoder<'a>,
    /// For one of unknown length: its items so far, encoded aside.
    aside: Option<Aside>,
}

/// The items of a sequence or map of unknown length, encoded aside.
#[derive(Debug)]
struct Aside {
    buf: Vec<u8>,
    /// Elements, or keys and values.
    items: usize,
    map: bool,
}

impl Compound<'_, '_> {
    #[inline]
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match &mut self.aside {
            None => value.serialize(&mut *self.enc),
            Some(aside) => {
                aside.items += 1;
                value.serialize(&mut Encoder { out: &mut aside.buf, named: self.enc.named })
            }
        }
    }

    fn finish(self) -> Result<(), Error> {
        if let Some(aside) = self.aside {
            if aside.map {
                self.enc.map_len(aside.items / 2)?;
            } else {
                self.enc.array_len(aside.items)?;
            }
            self.enc.out.extend_from_slice(&aside.buf);
        }
        Ok(())
    }
}

/// A struct's or struct variant's fields.
#[doc(hidden)]
#[derive(Debug)]
pub struct Fields<'e, 'a> {
    enc: &'e mut Encoder<'a>,
}

impl Fields<'_, '_> {
    #[inline]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        if self.enc.named {
            self.enc.str(key)?;
        }
        value.serialize(&mut *self.enc)
    }
}

/// Integer methods of the serializer: each widened, then written as the shortest
/// MessagePack integer of its sign.
macro_rules! integers {
    ($($method:ident($ty:ty) => $write:ident as $wide:ty),*) => {$(
        #[inline]
        fn $method(self, v: $ty) -> Result<(), Error> {
            self.$write(<$wide>::from(v));
            Ok(())
        }
    )*};
}

impl<'e, 'a> ser::Serializer for &'e mut Encoder<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'e, 'a>;
    type SerializeTuple = Fields<'e, 'a>;
    type SerializeTupleStruct = Fields<'e, 'a>;
    type SerializeTupleVariant = Fields<'e, 'a>;
    type SerializeMap = Compound<'e, 'a>;
    type SerializeStruct = Fields<'e, 'a>;
    type SerializeStructVariant = Fields<'e, 'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        write_bool(self.out, v);
        Ok(())
    }

    integers!(
        serialize_i8(i8) => sint as i64,
        serialize_i16(i16) => sint as i64,
        serialize_i32(i32) => sint as i64,
        serialize_i64(i64) => sint as i64,
        serialize_u8(u8) => uint as u64,
        serialize_u16(u16) => uint as u64,
        serialize_u32(u32) => uint as u64,
        serialize_u64(u64) => uint as u64
    );

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.bin(&v.to_be_bytes())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.bin(&v.to_be_bytes())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        write_f32(self.out, v);
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        write_f64(self.out, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.str(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.bin(v)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        write_nil(self.out);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        write_nil(self.out);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.byte(0x90); // an empty array
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == EXT_STRUCT_NAME {
            // A MessagePack extension: rare, left to rmp-serde itself.
            struct Ext<'v, T: ?Sized>(&'v T);
            impl<T: Serialize + ?Sized> Serialize for Ext<'_, T> {
                fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_newtype_struct(EXT_STRUCT_NAME, self.0)
                }
            }
            let ext = Ext(value);
            let written = if self.named {
                rmp_serde::encode::write_named(self.out, &ext)
            } else {
                rmp_serde::encode::write(self.out, &ext)
            };
            return written.map_err(|e| Error(e.to_string()));
        }
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.byte(0x81);
        self.str(variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'e, 'a>, Error> {
        self.compound(len, false)
    }

    fn serialize_tuple(self, len: usize) -> Result<Fields<'e, 'a>, Error> {
        self.array_len(len)?;
        Ok(Fields { enc: self })
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Fields<'e, 'a>, Error> {
        ser::Serializer::serialize_tuple(self, len)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Fields<'e, 'a>, Error> {
        self.byte(0x81);
        self.str(variant)?;
        self.array_len(len)?;
        Ok(Fields { enc: self })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'e, 'a>, Error> {
        self.compound(len, true)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Fields<'e, 'a>, Error> {
        if self.named {
            self.map_len(len)?;
        } else {
            self.array_len(len)?;
        }
        Ok(Fields { enc: self })
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Fields<'e, 'a>, Error> {
        self.byte(0x81);
        self.str(variant)?;
        self.serialize_struct(name, len)
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.item(key)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// The positional compounds: each element written as it comes (the length was written
/// with the head).
macro_rules! positional {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Fields<'_, '_> {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                value.serialize(&mut *self.enc)
            }

            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

positional!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The compounds with named fields: each name (if structs are maps), then its value.
macro_rules! named {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Fields<'_, '_> {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(key, value)
            }

            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

named!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests;
