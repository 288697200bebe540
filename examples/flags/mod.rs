//! What the examples' command lines share, as clap value parsers: numbers that may be written
//! with underscores (`30_000`) and durations in humantime's notation (`5s`, `1.5s`, `100ms`,
//! `2m`; a bare number is seconds). Included by each example that needs them with
//! `#[path = "flags/mod.rs"] mod flags;`.

// Each example uses the parsers it needs.
#![allow(dead_code)]

use std::time::Duration;

/// A count: digits, underscores allowed between them (`30_000`).
pub(crate) fn number(s: &str) -> Result<usize, String> {
    s.replace('_', "").parse().map_err(|_| format!("not a number: {s:?}"))
}

/// A count of at least 1.
pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match number(s)? {
        0 => Err("must be at least 1".to_owned()),
        n => Ok(n),
    }
}

/// A positive duration: humantime's notation (`5s`, `1.5s`, `100ms`, `2m`, `1m 30s`), or a
/// bare number of seconds (`5`, `0.5`).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let parsed = duration_or_zero(s)?;
    if parsed.is_zero() {
        return Err("a duration must be positive".to_owned());
    }
    Ok(parsed)
}

/// A duration as [`duration`] reads it, zero allowed (`0`, `0ms`).
pub(crate) fn duration_or_zero(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) => Ok(d),
        Err(e) => match s.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
            _ => Err(format!("{e} (try 5s, 1.5s, 100ms)")),
        },
    }
}
