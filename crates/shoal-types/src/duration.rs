//! Go-style durations ("1m30s", "500ms", "1.5h") parsed to and formatted from i64 nanoseconds.

/// Nanoseconds per unit.
pub const NANOSECOND: i64 = 1;
pub const MICROSECOND: i64 = 1_000;
pub const MILLISECOND: i64 = 1_000_000;
pub const SECOND: i64 = 1_000_000_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} is out of range")]
    Overflow(String),
}

fn unit_nanos(u: &str) -> Option<u128> {
    Some(match u {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string into nanoseconds. Accepts a sign, decimal fractions and
/// sequences like "1h2m3.5s"; a bare "0" is zero; anything else without a unit is an error.
pub fn parse_duration(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    let mut neg = false;
    if let Some(r) = s.strip_prefix('-') {
        neg = true;
        s = r;
    } else if let Some(r) = s.strip_prefix('+') {
        s = r;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let limit: u128 = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
    let mut total: u128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        // Fraction.
        let mut frac_part = "";
        if let Some(r) = s.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..n];
            s = &r[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        let overflow = || DurationError::Overflow(input.to_string());
        let int_val: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| overflow())?
        };
        let mut v = int_val.checked_mul(scale).ok_or_else(overflow)?;
        if !frac_part.is_empty() {
            // 18 fraction digits are beyond nanosecond precision even for hours, and keep
            // `f * scale` inside u128.
            let digits = &frac_part[..frac_part.len().min(18)];
            let f: u128 = digits.parse().map_err(|_| overflow())?;
            let denom = 10u128.pow(digits.len() as u32);
            v = v.checked_add(f * scale / denom).ok_or_else(overflow)?;
        }
        total = total.checked_add(v).ok_or_else(overflow)?;
        if total > limit {
            return Err(overflow());
        }
    }
    let total = total as i128;
    Ok((if neg { -total } else { total }) as i64)
}

/// Formats nanoseconds as Go's `Duration.String` does: "1h0m0s", "1m30s", "1.5s", "500ms", "0s".
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (scale, unit) = if u < 1_000 {
            (1, "ns")
        } else if u < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{sign}{}{unit}", frac(u, scale));
    }
    let secs_total = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = secs_total % 60;
    let secs = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `v / scale` with the fraction printed without trailing zeros.
fn frac(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let rem = v % scale;
    if rem == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_examples() {
        assert_eq!(parse_duration("1m30s").unwrap(), 90 * SECOND);
        assert_eq!(parse_duration("500ms").unwrap(), 500 * MILLISECOND);
        assert_eq!(parse_duration("2h").unwrap(), 2 * HOUR);
        assert_eq!(parse_duration("10s").unwrap(), 10 * SECOND);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500 * MILLISECOND);
        assert_eq!(parse_duration(".5s").unwrap(), 500 * MILLISECOND);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("-1.5h").unwrap(), -90 * MINUTE);
        assert_eq!(
            parse_duration("1h2m3s4ms5us6ns").unwrap(),
            HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6
        );
        assert_eq!(parse_duration("3µs").unwrap(), 3 * MICROSECOND);
        assert_eq!(parse_duration("2160h").unwrap(), 7_776_000_000_000_000);
        assert_eq!(
            parse_duration("1.0000000000000000000000000000001h").unwrap(),
            HOUR
        );
        assert_eq!(
            parse_duration("0.999999999999999999999999999999h").unwrap(),
            HOUR - 1
        );
    }

    #[test]
    fn parse_garbage() {
        for bad in [
            "",
            "-",
            "s",
            "10",
            "1x",
            "abc",
            "1.s.",
            "..5s",
            "1m30",
            "9999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn format_examples() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(90 * SECOND), "1m30s");
        assert_eq!(format_duration(HOUR), "1h0m0s");
        assert_eq!(format_duration(1_500 * MILLISECOND), "1.5s");
        assert_eq!(format_duration(500 * MILLISECOND), "500ms");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(7), "7ns");
        assert_eq!(format_duration(-5 * SECOND), "-5s");
        for v in [1, 999, 1_234_567, 90 * SECOND + 1, 26 * HOUR + 5] {
            assert_eq!(parse_duration(&format_duration(v)).unwrap(), v);
        }
    }
}
