//! Durations as people write them in flags and environment variables:
//! `250ms`, `30s`, `10m`, `2h`, `7d`, or a bare number of seconds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration as flags and variables spell it: a number and a unit, `ms`,
/// `s`, `m`, `h` or `d` (`250ms`, `30s`, `7d`), or a bare number of
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration; write it like 250ms, 30s, 10m, 2h or 7d"))?;
        let seconds = match unit.trim() {
            "ms" => number / 1000.0,
            "" | "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            "d" => number * 86_400.0,
            other => return Err(format!("{text:?} has the unit {other:?}; use ms, s, m, h or d")),
        };
        Duration::try_from_secs_f64(seconds)
            .map(Self)
            .map_err(|e| format!("{text:?} is not a duration: {e}"))
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that says the duration exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, String> {
        text.parse::<HumanDuration>().map(|d| d.0)
    }

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse("7 weeks").unwrap_err().contains("unit"));
        assert!(parse("soon").unwrap_err().contains("250ms"));
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn durations_print_in_their_largest_exact_unit_and_read_back() {
        for (text, duration) in [
            ("50ms", Duration::from_millis(50)),
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("1500ms", Duration::from_millis(1500)),
        ] {
            let shown = HumanDuration(duration).to_string();
            assert_eq!(shown, text);
            assert_eq!(parse(&shown), Ok(duration));
        }
    }
}
