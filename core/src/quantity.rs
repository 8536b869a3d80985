//! Kubernetes resource quantities (`1`, `500m`, `1.5Gi`, `1e3`): parsed to an exact value so
//! that `cpu: 1`, `"1"` and `1000m` compare equal, and written in the canonical form the API
//! server stores (`0.5` → `500m`, `1024Mi` → `1Gi`).
//!
//! Values are kept as an integer count of nano-units (10⁻⁹), which holds every quantity up to
//! about 10²⁹ exactly; finer precision is rounded up, as Kubernetes does. Larger values do not
//! parse (callers then compare the text).

use serde_json::Value;

/// How a quantity was written, which its canonical form keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, … powers of 1024.
    BinarySI,
    /// `m`, `k`, `M`, … powers of 1000, or no suffix.
    DecimalSI,
    /// `e3`, `E-6`.
    DecimalExponent,
}

/// An exact quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    /// The value in units of 10⁻⁹.
    pub nanos: i128,
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Parses Kubernetes' quantity syntax: a signed decimal number and an optional suffix.
    pub fn parse(text: &str) -> Option<Self> {
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return None;
        }
        let digits: String = [int_part, frac_part].concat();
        if digits.len() > 36 {
            return None;
        }
        let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        let frac_len = frac_part.len() as i32;
        let (format, base2, exp10) = match suffix {
            "" => (Format::DecimalSI, 0, 0),
            "n" => (Format::DecimalSI, 0, -9),
            "u" => (Format::DecimalSI, 0, -6),
            "m" => (Format::DecimalSI, 0, -3),
            "k" => (Format::DecimalSI, 0, 3),
            "M" => (Format::DecimalSI, 0, 6),
            "G" => (Format::DecimalSI, 0, 9),
            "T" => (Format::DecimalSI, 0, 12),
            "P" => (Format::DecimalSI, 0, 15),
            "E" => (Format::DecimalSI, 0, 18),
            "Ki" => (Format::BinarySI, 10, 0),
            "Mi" => (Format::BinarySI, 20, 0),
            "Gi" => (Format::BinarySI, 30, 0),
            "Ti" => (Format::BinarySI, 40, 0),
            "Pi" => (Format::BinarySI, 50, 0),
            "Ei" => (Format::BinarySI, 60, 0),
            e if e.starts_with(['e', 'E']) => {
                let exp: i32 = e[1..].parse().ok()?;
                if !(-30..=30).contains(&exp) {
                    return None;
                }
                (Format::DecimalExponent, 0, exp)
            }
            _ => return None,
        };
        // value = mantissa × 2^base2 × 10^(exp10 − frac_len), in nanos: × 10^9.
        let mut v = mantissa.checked_mul(1i128.checked_shl(base2)?)?;
        let scale = exp10 - frac_len + 9;
        if scale >= 0 {
            v = v.checked_mul(10i128.checked_pow(scale as u32)?)?;
        } else {
            let d = 10i128.checked_pow((-scale) as u32)?;
            // Precision below a nano-unit is rounded up (away from zero).
            v = v / d + i128::from(v % d != 0);
        }
        Some(Self { nanos: if negative { -v } else { v }, format })
    }

    /// A quantity as JSON holds it: a string, or a number (`cpu: 1`, `cpu: 0.5` in YAML).
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    /// The canonical text, as the API server writes it back.
    pub fn canonical(&self) -> String {
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0) {
            // Small or fractional binary values are written in decimal, to lose nothing.
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut n = self.nanos / NANO;
            let mut exp = 0;
            while exp < 6 && n % 1024 == 0 && n != 0 {
                n /= 1024;
                exp += 1;
            }
            return format!("{n}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp]);
        }
        let mut m = self.nanos;
        let mut exp = -9i32;
        if m == 0 {
            return "0".into();
        }
        while m % 1000 == 0 {
            m /= 1000;
            exp += 3;
        }
        let suffix = match (format, exp) {
            (_, 0) => String::new(),
            (Format::DecimalSI, -9) => "n".into(),
            (Format::DecimalSI, -6) => "u".into(),
            (Format::DecimalSI, -3) => "m".into(),
            (Format::DecimalSI, 3) => "k".into(),
            (Format::DecimalSI, 6) => "M".into(),
            (Format::DecimalSI, 9) => "G".into(),
            (Format::DecimalSI, 12) => "T".into(),
            (Format::DecimalSI, 15) => "P".into(),
            (Format::DecimalSI, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{m}{suffix}")
    }
}

/// Whether two JSON values are the same quantity (by value); `None` when either is not one.
pub fn same(a: &Value, b: &Value) -> Option<bool> {
    Some(Quantity::from_json(a)?.nanos == Quantity::from_json(b)?.nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_forms_as_the_api_server_writes_them() {
        let table = [
            ("1", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000m", "1"),
            ("100m", "100m"),
            ("0.1", "100m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1.5Ki", "1536"),
            ("512Ki", "512Ki"),
            ("1Ki", "1Ki"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("1E", "1E"),
            ("-1", "-1"),
            ("0", "0"),
            ("0Gi", "0"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("10u", "10u"),
            ("+2", "2"),
        ];
        for (input, want) in table {
            let q = Quantity::parse(input).unwrap_or_else(|| panic!("{input} parses"));
            assert_eq!(q.canonical(), want, "{input}");
            assert_eq!(Quantity::parse(&q.canonical()).unwrap().nanos, q.nanos, "{input} round-trips");
        }
        for bad in ["", "x", "1.2.3", "1Q", "1ee3", "Mi", ".", "1e", "--1", "99999999999999999999999999999999999999999"]
        {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn quantities_compare_by_value() {
        for (a, b) in [
            (json!(1), json!("1")),
            (json!("1"), json!("1000m")),
            (json!(0.5), json!("500m")),
            (json!("1024Mi"), json!("1Gi")),
            (json!("1e3"), json!("1k")),
            (json!("2Gi"), json!("2147483648")),
        ] {
            assert_eq!(same(&a, &b), Some(true), "{a} = {b}");
        }
        assert_eq!(same(&json!("1"), &json!("2")), Some(false));
        assert_eq!(same(&json!("1"), &json!("x")), None);
    }
}
