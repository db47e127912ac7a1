//! Serde helpers for Go `encoding/json` conventions: nulls, base64 bytes, RFC 3339 times, empty enums.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serializer};

/// Go's zero `time.Time` ("0001-01-01T00:00:00Z"), what Docker prints for an unset time.
pub fn zero_time() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// True for Go's zero time (or anything earlier).
pub fn is_zero_time(t: &DateTime<Utc>) -> bool {
    *t <= zero_time()
}

/// Formats a time as Go's `RFC3339Nano` does (what Docker emits): nanoseconds with trailing
/// zeros trimmed, no fraction at all for whole seconds.
pub fn format_time(t: &DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match s.rsplit_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => s,
    }
}

/// RFC 3339 with exactly 9 fraction digits (log line timestamps).
pub fn format_time_fixed(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses an RFC 3339 time; the empty string is Go's zero time.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if s.is_empty() {
        return Ok(zero_time());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("invalid timestamp {s:?}: {e}"))
}

/// `#[serde(with = "wire::time")]` for `DateTime<Utc>`.
pub mod time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(zero_time()),
            Some(s) => parse_time(&s).map_err(D::Error::custom),
        }
    }
}

/// `#[serde(with = "wire::opt_time")]` for `Option<DateTime<Utc>>` (null, "" and zero time read as None).
pub mod opt_time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => {
                let t = parse_time(&s).map_err(D::Error::custom)?;
                Ok(if is_zero_time(&t) { None } else { Some(t) })
            }
        }
    }
}

/// Reads `null` as the type's default (Go emits `null` for nil slices and maps).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a string enum where `null`, absent or `""` mean the default variant.
pub fn enum_or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(opt_enum(d)?.unwrap_or_default())
}

/// Reads an optional string enum where `null` and `""` mean `None`.
pub fn opt_enum<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => {
            let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(v);
            T::deserialize(de)
                .map(Some)
                .map_err(|e| D::Error::custom(e.to_string()))
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Go encodes `[]byte`.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decodes standard base64 (padding optional, whitespace refused).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.trim_end_matches('=').as_bytes();
    if s.len() - bytes.len() > 2 || bytes.len() % 4 == 1 {
        return Err("illegal base64 data: bad length".into());
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("illegal base64 data at input byte {i}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// `#[serde(with = "wire::bytes")]` for `Vec<u8>` as base64 (null reads as empty).
pub mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64_encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => base64_decode(&s).map_err(D::Error::custom),
        }
    }
}

/// `#[serde(with = "wire::opt_bytes")]` for `Option<Vec<u8>>` as base64.
pub mod opt_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_str(&base64_encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => base64_decode(&s).map(Some).map_err(D::Error::custom),
        }
    }
}

/// For `skip_serializing_if` on numbers and bools (Go `omitempty`).
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"cfg=1\n"), "Y2ZnPTEK");
        assert_eq!(base64_decode("Y2ZnPTEK").unwrap(), b"cfg=1\n");
        assert!(base64_decode("a").is_err());
        assert!(base64_decode("ab$d").is_err());
    }

    #[test]
    fn times() {
        let t = parse_time("2026-11-23T08:47:52.466838412Z").unwrap();
        assert_eq!(format_time(&t), "2026-11-23T08:47:52.466838412Z");
        assert!(is_zero_time(&parse_time("0001-01-01T00:00:00Z").unwrap()));
        assert_eq!(format_time(&zero_time()), "0001-01-01T00:00:00Z");
        let t = parse_time("2026-11-23T08:47:52.4000Z").unwrap();
        assert_eq!(format_time(&t), "2026-11-23T08:47:52.4Z");
        assert_eq!(format_time_fixed(&t), "2026-11-23T08:47:52.400000000Z");
        assert!(parse_time("yesterday").is_err());
    }
}
