//! The currencies refunds can be issued in, and how amounts in minor
//! units (cents) are shown to people.

/// A currency a refund can be issued in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    /// ISO 4217 code, upper case.
    pub code: &'static str,
    /// What goes before the amount when it is shown.
    pub symbol: &'static str,
    /// Digits after the decimal point: 2 for cents, 0 for yen.
    pub minor_units: u32,
}

/// Every currency the payment service refunds in.
pub const CURRENCIES: [Currency; 6] = [
    Currency {
        code: "USD",
        symbol: "$",
        minor_units: 2,
    },
    Currency {
        code: "EUR",
        symbol: "€",
        minor_units: 2,
    },
    Currency {
        code: "GBP",
        symbol: "£",
        minor_units: 2,
    },
    Currency {
        code: "CAD",
        symbol: "CA$",
        minor_units: 2,
    },
    Currency {
        code: "AUD",
        symbol: "A$",
        minor_units: 2,
    },
    Currency {
        code: "JPY",
        symbol: "¥",
        minor_units: 0,
    },
];

/// The supported currency with this ISO code, in any case.
#[must_use]
pub fn currency(code: &str) -> Option<Currency> {
    CURRENCIES
        .iter()
        .copied()
        .find(|c| c.code.eq_ignore_ascii_case(code.trim()))
}

/// `amount` minor units of `code` as people read it: `$49.99`, `¥5000`.
/// An unknown currency is shown with two decimals and its code.
#[must_use]
pub fn format_money(amount: u64, code: &str) -> String {
    let (symbol, minor_units, suffix) = match currency(code) {
        Some(c) => (c.symbol, c.minor_units, String::new()),
        None => ("", 2, format!(" {code}")),
    };
    if minor_units == 0 {
        return format!("{symbol}{amount}{suffix}");
    }
    let scale = 10_u64.pow(minor_units);
    let width = minor_units as usize;
    format!("{symbol}{}.{:0width$}{suffix}", amount / scale, amount % scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_currencies_in_any_case() {
        assert_eq!(currency("usd").map(|c| c.code), Some("USD"));
        assert_eq!(currency(" JPY ").map(|c| c.minor_units), Some(0));
        assert_eq!(currency("XYZ"), None);
        assert_eq!(currency(""), None);
    }

    #[test]
    fn formats_minor_units() {
        assert_eq!(format_money(4999, "USD"), "$49.99");
        assert_eq!(format_money(5, "EUR"), "€0.05");
        assert_eq!(format_money(123_400, "GBP"), "£1234.00");
        assert_eq!(format_money(5000, "JPY"), "¥5000");
        assert_eq!(format_money(1050, "CHF"), "10.50 CHF");
    }
}
