//! Money as integer cents: parsed from and rendered to decimal strings
//! exactly, so `0.10 + 0.20` is `0.30` and never a float's neighbour.

/// An amount of money in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(pub u64);

impl Cents {
    /// Parses a positive decimal with at most two places: `"10"`, `"25.5"`,
    /// `"0.01"`. Anything else is `None`: zero, a sign, an exponent, a
    /// third place (even `"1.230"`), a bare point (`"1."`, `".5"`),
    /// whitespace, or more than fits.
    pub fn parse_positive(text: &str) -> Option<Cents> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 2) {
            return None;
        }
        let whole: u64 = whole.parse().ok()?;
        let fraction = match fraction {
            None => 0,
            Some(f) if f.len() == 1 => f.parse::<u64>().ok()? * 10,
            Some(f) => f.parse::<u64>().ok()?,
        };
        let cents = whole.checked_mul(100)?.checked_add(fraction)?;
        (cents > 0).then_some(Cents(cents))
    }

    /// The sum, or `None` if it does not fit.
    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    /// The amount with exactly two places: `"10.50"`.
    pub fn render(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_decimals_with_at_most_two_places_parse_to_cents() {
        for (text, cents) in [
            ("25.5", 2550),
            ("10.50", 1050),
            ("10", 1000),
            ("0.01", 1),
            ("007.5", 750),
            ("5000", 500_000),
            ("184467440737095516.15", u64::MAX),
        ] {
            assert_eq!(Cents::parse_positive(text), Some(Cents(cents)), "{text}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for text in [
            "0", "0.00", "0.0", "-1", "+1", "1.234", "1.230", "1.", ".5", "", " 1", "1 ", "1e2", "1,50", "abc",
            "1.2.3", "NaN", "184467440737095516.16", "99999999999999999999",
        ] {
            assert_eq!(Cents::parse_positive(text), None, "{text:?}");
        }
    }

    #[test]
    fn amounts_render_with_exactly_two_places() {
        assert_eq!(Cents(2550).render(), "25.50");
        assert_eq!(Cents(0).render(), "0.00");
        assert_eq!(Cents(1).render(), "0.01");
        assert_eq!(Cents(100_000).render(), "1000.00");
    }

    #[test]
    fn sums_are_exact_and_checked() {
        let sum = Cents::parse_positive("0.10")
            .and_then(|a| a.checked_add(Cents::parse_positive("0.20")?));
        assert_eq!(sum.map(Cents::render).as_deref(), Some("0.30"));
        assert_eq!(Cents(u64::MAX).checked_add(Cents(1)), None);
    }
}
