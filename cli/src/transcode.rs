//! MessagePack to JSON, without knowing the types that wrote it.
//!
//! - nil, booleans, integers and strings map to their JSON kind; invalid UTF-8 in a string is
//!   replaced with U+FFFD;
//! - floats become JSON numbers, except NaN and the infinities, which become the strings
//!   `"NaN"`, `"Infinity"` and `"-Infinity"`;
//! - binary values become arrays of byte values (numbers 0–255), not base64;
//! - map keys that are not strings become their JSON text (`1` → `"1"`, `[1,2]` → `"[1,2]"`);
//!   when two keys map to the same text, the last wins;
//! - extension values become `{"ext": TYPE, "data": [BYTES]}`;
//! - a map of exactly the two keys `system` and `seq` with unsigned integer values is an
//!   actor ref or [`ActorId`] as serde writes it, and becomes the id's text, as ids are
//!   printed everywhere else (`399@324db785b696d64d`);
//! - values nested more than 255 levels deep are not decoded (an error, not a stack overflow).

use amber_snapshot::{ActorId, SystemId};
use rmpv::Value as MsgPack;
use serde_json::{Map, Number, Value as Json};

/// How deep MessagePack values may nest, in rmpv's units (each array or map level takes two,
/// so 255 levels): deeper values are reported as not decodable rather than overflowing the
/// stack.
const MAX_DEPTH: usize = 512;

/// Decodes `bytes` as exactly one MessagePack value (nested at most [`MAX_DEPTH`]) and maps it
/// to JSON; the error says why the bytes are not one value.
pub(crate) fn transcode(bytes: &[u8]) -> Result<Json, String> {
    if bytes.is_empty() {
        return Err("empty".to_owned());
    }
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)
        .map_err(|err| err.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} byte(s) after the MessagePack value", rest.len()));
    }
    Ok(to_json(value))
}

/// Bytes as a JSON array of numbers.
pub(crate) fn byte_array(bytes: &[u8]) -> Json {
    Json::Array(bytes.iter().map(|&b| Json::from(b)).collect())
}

fn to_json(value: MsgPack) -> Json {
    match value {
        MsgPack::Nil => Json::Null,
        MsgPack::Boolean(b) => Json::Bool(b),
        MsgPack::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::from(u),
            (None, Some(i)) => Json::from(i),
            // Every MessagePack integer fits u64 or i64.
            (None, None) => Json::Null,
        },
        MsgPack::F32(f) => float(f64::from(f)),
        MsgPack::F64(f) => float(f),
        MsgPack::String(s) => Json::String(match String::from_utf8(s.into_bytes()) {
            Ok(s) => s,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }),
        MsgPack::Binary(bytes) => byte_array(&bytes),
        MsgPack::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        MsgPack::Map(entries) => {
            if let Some(id) = actor_id(&entries) {
                return Json::String(id.to_string());
            }
            let mut map = Map::new();
            for (key, value) in entries {
                map.insert(key_text(key), to_json(value));
            }
            Json::Object(map)
        }
        MsgPack::Ext(ty, data) => {
            let mut map = Map::new();
            map.insert("ext".to_owned(), Json::from(ty));
            map.insert("data".to_owned(), byte_array(&data));
            Json::Object(map)
        }
    }
}

/// The actor id a map is, if it has exactly the fields of a serialized [`ActorId`] (which is
/// also how an `ActorRef` serializes).
fn actor_id(entries: &[(MsgPack, MsgPack)]) -> Option<ActorId> {
    let [(k1, v1), (k2, v2)] = entries else { return None };
    fn field<'v>(key: &'v MsgPack, value: &MsgPack) -> Option<(&'v str, u64)> {
        Some((key.as_str()?, value.as_u64()?))
    }
    let ((n1, v1), (n2, v2)) = (field(k1, v1)?, field(k2, v2)?);
    let (system, seq) = match (n1, n2) {
        ("system", "seq") => (v1, v2),
        ("seq", "system") => (v2, v1),
        _ => return None,
    };
    Some(ActorId::new(SystemId(system), seq))
}

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::from("NaN"),
        None if f > 0.0 => Json::from("Infinity"),
        None => Json::from("-Infinity"),
    }
}

fn key_text(key: MsgPack) -> String {
    match to_json(key) {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgpack(value: &MsgPack) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    #[test]
    fn maps_every_kind() {
        let value = MsgPack::Map(vec![
            (MsgPack::from("nil"), MsgPack::Nil),
            (MsgPack::from("yes"), MsgPack::from(true)),
            (MsgPack::from("big"), MsgPack::from(u64::MAX)),
            (MsgPack::from("neg"), MsgPack::from(-5i64)),
            (MsgPack::from("half"), MsgPack::F32(0.5)),
            (MsgPack::from("nan"), MsgPack::F64(f64::NAN)),
            (MsgPack::from("inf"), MsgPack::F64(f64::NEG_INFINITY)),
            (MsgPack::from("bin"), MsgPack::Binary(vec![0, 255])),
            (MsgPack::from("list"), MsgPack::Array(vec![MsgPack::from(1), MsgPack::from("a")])),
            (MsgPack::from(7), MsgPack::from("int key")),
            (MsgPack::Array(vec![MsgPack::from(1), MsgPack::Nil]), MsgPack::from("array key")),
            (MsgPack::from("ext"), MsgPack::Ext(-1, vec![1, 2])),
        ]);
        assert_eq!(
            transcode(&msgpack(&value)).unwrap(),
            json!({
                "nil": null, "yes": true, "big": u64::MAX, "neg": -5, "half": 0.5,
                "nan": "NaN", "inf": "-Infinity", "bin": [0, 255], "list": [1, "a"],
                "7": "int key", "[1,null]": "array key", "ext": {"ext": -1, "data": [1, 2]},
            })
        );
    }

    #[test]
    fn refs_print_as_ids() {
        let id = ActorId::new(SystemId(0x324d_b785_b696_d64d), 399);
        #[derive(serde::Serialize)]
        struct State {
            peers: Vec<ActorId>,
            other: ActorId,
        }
        let bytes = rmp_serde::to_vec_named(&State { peers: vec![id], other: id }).unwrap();
        assert_eq!(
            transcode(&bytes).unwrap(),
            json!({ "peers": ["399@324db785b696d64d"], "other": "399@324db785b696d64d" })
        );
        // Only the exact shape: an extra field, or a signed or text value, is a plain map.
        let value = MsgPack::Map(vec![
            (MsgPack::from("system"), MsgPack::from(1)),
            (MsgPack::from("seq"), MsgPack::from(2)),
            (MsgPack::from("x"), MsgPack::from(3)),
        ]);
        assert_eq!(transcode(&msgpack(&value)).unwrap(), json!({"system": 1, "seq": 2, "x": 3}));
        let value = MsgPack::Map(vec![
            (MsgPack::from("system"), MsgPack::from(-1)),
            (MsgPack::from("seq"), MsgPack::from(2)),
        ]);
        assert_eq!(transcode(&msgpack(&value)).unwrap(), json!({"system": -1, "seq": 2}));
    }

    #[test]
    fn keeps_field_order() {
        let value = MsgPack::Map(vec![
            (MsgPack::from("z"), MsgPack::from(1)),
            (MsgPack::from("a"), MsgPack::from(2)),
        ]);
        assert_eq!(transcode(&msgpack(&value)).unwrap().to_string(), r#"{"z":1,"a":2}"#);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(transcode(&[0xa2, b'h', 0xff]).unwrap(), json!("h\u{fffd}"));
    }

    #[test]
    fn bytes_that_are_not_one_value() {
        assert_eq!(transcode(&[]), Err("empty".to_owned()));
        assert!(transcode(&[0xd9]).is_err(), "string without its length");
        // rmpv reads the reserved marker 0xc1 as nil.
        assert_eq!(transcode(&[0xc1]), Ok(Json::Null));
        assert!(transcode(&[0x92, 0x01]).is_err(), "array cut short");
        assert!(transcode(&[0xc6, 0xff, 0xff, 0xff, 0xff]).is_err(), "bin claiming 4 GiB");
        assert!(transcode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err(), "array claiming 4G items");
        assert_eq!(transcode(&[0x01, 0x02]), Err("1 byte(s) after the MessagePack value".into()));
        // Nested deeper than the decoder's limit: an error, not a stack overflow.
        let nested = |levels: usize| {
            let mut bytes = vec![0x91; levels];
            bytes.push(0xc0);
            bytes
        };
        assert!(transcode(&nested(255)).is_ok());
        assert!(transcode(&nested(256)).is_err());
        assert!(transcode(&nested(100_000)).is_err());
    }
}
