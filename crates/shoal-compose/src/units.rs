//! Value syntaxes compose borrows from Go and Docker: durations ("1m30s"), byte sizes ("64M",
//! binary multiples as Docker's RAMInBytes) and CPU counts ("0.5" → NanoCPUs).

/// Parses a Go duration string ("300ms", "1.5h", "2h45m", "0") into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let err = || format!("invalid duration {s:?}");
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err(format!("invalid duration {s:?}: must not be negative"));
    }
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(format!("invalid duration {s:?}: too large"));
    }
    Ok(total.round() as i64)
}

/// Formats nanoseconds as Go's `time.Duration.String()` does ("1m30s", "500ms", "0s").
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let n = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if n < 1_000_000_000 {
        // Sub-second values use the largest unit that keeps an integer part.
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(n, div));
        out.push_str(unit);
        return out;
    }
    let hours = n / 3_600_000_000_000;
    let mins = (n / 60_000_000_000) % 60;
    let secs_nanos = n % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || mins > 0 {
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&fraction(secs_nanos, 1_000_000_000));
    out.push('s');
    out
}

/// `n / div` as a decimal without trailing zeros.
fn fraction(n: u64, div: u64) -> String {
    let int = n / div;
    let frac = n % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// Parses a memory size as Docker's `RAMInBytes`: "64M", "1.5g", "512kb", "1GiB", or bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let err = || format!("invalid size {s:?}");
    let t = s.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if num_len == 0 {
        return Err(err());
    }
    let number: f64 = t[..num_len].parse().map_err(|_| err())?;
    let suffix = t[num_len..].trim_start().to_ascii_lowercase();
    let suffix = suffix.strip_suffix('b').unwrap_or(&suffix);
    let suffix = suffix.strip_suffix('i').unwrap_or(suffix);
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(err()),
    };
    let v = number * mult;
    if v > i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(v as i64)
}

/// Parses a CPU count ("0.5", "2") into NanoCPUs (1 CPU = 1e9).
pub fn parse_nano_cpus(s: &str) -> Result<i64, String> {
    let err = || format!("invalid cpus value {s:?}");
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    if frac.len() > 9 && frac[9..].bytes().any(|b| b != b'0') {
        return Err(format!("invalid cpus value {s:?}: too precise"));
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| err())?
    };
    let frac9 = format!("{:0<9}", &frac[..frac.len().min(9)]);
    let frac_n: i64 = frac9.parse().map_err(|_| err())?;
    int.checked_mul(1_000_000_000)
        .and_then(|v| v.checked_add(frac_n))
        .ok_or_else(|| format!("invalid cpus value {s:?}: too large"))
}

/// Formats NanoCPUs back as a decimal CPU count.
pub fn format_nano_cpus(n: i64) -> String {
    fraction(n.unsigned_abs(), 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("2h45m"), Ok(9_900_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("100us"), Ok(100_000));
        for bad in ["", "10", "1x", "s", "1m30", "-5s", "ten seconds"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duration_format_matches_go() {
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(500_000_000), "500ms");
        assert_eq!(format_duration(0), "0s");
        for s in ["1m30s", "10s", "1h0m0s", "2.5s", "250ms"] {
            let n = parse_duration(s).expect("parses");
            assert_eq!(format_duration(n), s);
        }
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("64M"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_bytes("64m"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512kb"), Ok(512 * 1024));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        for bad in ["", "M", "12q", "1.2.3m"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(format_nano_cpus(500_000_000), "0.5");
        assert_eq!(format_nano_cpus(2_000_000_000), "2");
        for bad in ["", ".", "a", "-1", "1.2.3", "0.0000000001"] {
            assert!(parse_nano_cpus(bad).is_err(), "{bad}");
        }
    }
}
