//! Phone numbers as people write them, turned into E.164 (`+41445550100`) with the
//! tenant's [`DialingRules`] and the numbering plans of libphonenumber (the
//! `phonenumber` crate): which national forms a country writes, its prefixes, and
//! which numbers exist there.
//!
//! Accepted: international form (`+41 44 555 01 00`, also with the bracketed national
//! prefix `+41 (0)44 ...`), the tenant's international prefix (`0041 44 ...`), and
//! national numbers as the tenant's country writes them (`044 555 01 00`) when the
//! tenant has a country code. Spaces, dashes, dots, slashes and parentheses are
//! separators. Anything else, and a number that is not valid in its country's plan, is
//! an error naming the input: a number stored in any other form would never match a
//! caller.

use super::{ContactError, DialingRules};
use phonenumber::country::Id as Region;
use phonenumber::metadata::DATABASE;
use phonenumber::Mode;

/// `raw` as E.164 with a leading `+`, or an error that names `raw`.
pub fn normalize(raw: &str, rules: &DialingRules) -> Result<String, ContactError> {
    let fail = |reason: &str| ContactError::Number {
        input: raw.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(fail("is empty"));
    }
    // libphonenumber would read letters as a keypad spells them (0800-FLOWERS); in a
    // contact they are a mistake far more often.
    if trimmed.chars().any(char::is_alphabetic) {
        return Err(fail("contains letters"));
    }
    // Compact form: digits with at most a leading '+', "(0)" kept as a marker.
    let mut compact = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match c {
            '0'..='9' | '(' | ')' => compact.push(c),
            '+' if compact.is_empty() => compact.push(c),
            '+' => return Err(fail("has '+' after the start")),
            '-' | '.' | '/' => {}
            c if c.is_whitespace() => {}
            _ => return Err(fail("contains characters other than digits and separators")),
        }
    }
    // The tenant's own international prefix (it may not be the country's usual one).
    let intl = rules.international_prefix.as_str();
    let international = if let Some(rest) = compact.strip_prefix('+') {
        Some(rest)
    } else if !intl.is_empty() && compact.starts_with(intl) {
        Some(&compact[intl.len()..])
    } else {
        None
    };
    let parsed = match international {
        // "+41 (0)44 ..." shows the national prefix one leaves out from abroad.
        Some(rest) => phonenumber::parse(None, format!("+{}", rest.replacen("(0)", "", 1))),
        None => {
            let Some(region) = region_of(&rules.country_code) else {
                return Err(fail(
                    "is a national number, but the tenant has no country code in its dialing rules",
                ));
            };
            phonenumber::parse(Some(region), &compact)
        }
    };
    let number = parsed.map_err(|e| {
        fail(match e {
            phonenumber::ParseError::InvalidCountryCode => "has no country code in use",
            phonenumber::ParseError::TooLong => "is too long for a phone number",
            _ => "is too short for a phone number",
        })
    })?;
    if !number.is_valid() {
        let code = number.code().value();
        let region = region_of(&code.to_string())
            .map(|id| format!(" ({})", id.as_ref()))
            .unwrap_or_default();
        return Err(fail(&format!(
            "is not a valid number in the numbering plan of +{code}{region}"
        )));
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// A number of a contact: an extension of the tenant as it is (`1002`: a colleague
/// calls from it, so handling codes apply to colleagues too), else [`normalize`]d.
pub fn contact_number(
    raw: &str,
    rules: &DialingRules,
    is_extension: impl Fn(&str) -> bool,
) -> Result<String, ContactError> {
    let trimmed = raw.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) && is_extension(trimmed) {
        return Ok(trimmed.to_string());
    }
    normalize(raw, rules).map_err(|e| match e {
        // Digits alone that are no number: most likely an extension that does not exist.
        ContactError::Number { input, reason }
            if trimmed.len() <= 6 && trimmed.bytes().all(|b| b.is_ascii_digit()) =>
        {
            ContactError::Number {
                input,
                reason: format!("is no extension of this tenant, and {reason}"),
            }
        }
        other => other,
    })
}

/// The main region of a country calling code (`41` → CH, `1` → US).
fn region_of(country_code: &str) -> Option<Region> {
    let code: u16 = country_code.parse().ok()?;
    let regions = DATABASE.by_code(&code)?;
    let main = regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or(regions.first())?;
    main.id().parse().ok()
}

/// How people read a stored number: `+41445550100` → `+41 44 555 01 00`. What is not
/// an E.164 number (an extension) is shown as it is.
pub fn display(stored: &str) -> String {
    if !stored.starts_with('+') {
        return stored.to_string();
    }
    match phonenumber::parse(None, stored) {
        Ok(n) => n.format().mode(Mode::International).to_string(),
        Err(_) => stored.to_string(),
    }
}

/// A number prefix (of a `prefix*` caller pattern) in international form: `044` →
/// `+4144`, `0033` → `+33`; `+` prefixes stay. No length check: a prefix is short.
pub fn normalize_prefix(raw: &str, rules: &DialingRules) -> Result<String, ContactError> {
    let fail = |reason: &str| ContactError::Number {
        input: format!("{raw}*"),
        reason: reason.to_string(),
    };
    let trimmed = raw.trim();
    let plus = trimmed.starts_with('+');
    let digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '/' | '+'))
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(fail("a pattern is digits followed by '*'"));
    }
    let intl = rules.international_prefix.as_str();
    let national = rules.national_prefix.as_str();
    if plus {
        Ok(format!("+{digits}"))
    } else if !intl.is_empty() && digits.starts_with(intl) {
        Ok(format!("+{}", &digits[intl.len()..]))
    } else if !national.is_empty() && digits.starts_with(national) {
        if rules.country_code.is_empty() {
            return Err(fail(
                "is a national prefix, but the tenant has no country code in its dialing rules",
            ));
        }
        Ok(format!(
            "+{}{}",
            rules.country_code,
            &digits[national.len()..]
        ))
    } else {
        Err(fail(
            "starts with neither '+' nor a national or international prefix",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(cc: &str, national: &str, intl: &str) -> DialingRules {
        DialingRules {
            country_code: cc.into(),
            national_prefix: national.into(),
            international_prefix: intl.into(),
        }
    }

    #[test]
    fn normalizes_the_forms_people_write() {
        let ch = rules("41", "0", "00");
        let us = rules("1", "", "011");
        let it = rules("39", "", "00");
        let e164_only = DialingRules::default();
        let ok = [
            ("+41 44 555 01 00", &ch, "+41445550100"),
            ("0445550100", &ch, "+41445550100"),
            ("044-555.01.00", &ch, "+41445550100"),
            ("(044) 555 01 00", &ch, "+41445550100"),
            ("0041445550100", &ch, "+41445550100"),
            ("00 49 30 1234567", &ch, "+49301234567"),
            ("+41 (0)44 555 01 00", &ch, "+41445550100"),
            ("0041 (0)44 555 01 00", &ch, "+41445550100"),
            ("  +41445550100\t", &ch, "+41445550100"),
            ("+41\u{a0}44\u{a0}555\u{a0}01\u{a0}00", &ch, "+41445550100"),
            ("089/1234567", &rules("49", "0", "00"), "+49891234567"),
            ("(212) 555-0100", &us, "+12125550100"),
            ("011 44 20 7946 0000", &us, "+442079460000"),
            ("06 1234 5678", &it, "+390612345678"),
            // Without the national prefix, as libphonenumber reads the country's plan.
            ("44 555 01 00", &ch, "+41445550100"),
            ("079 555 01 01", &ch, "+41795550101"),
            ("+41445550100", &e164_only, "+41445550100"),
            ("0041445550100", &e164_only, "+41445550100"),
        ];
        for (raw, r, want) in ok {
            assert_eq!(normalize(raw, r).as_deref(), Ok(want), "{raw:?} with {r:?}");
        }
    }

    #[test]
    fn errors_name_the_input_and_the_reason() {
        let ch = rules("41", "0", "00");
        let bad = [
            ("", &ch, "is empty"),
            ("   ", &ch, "is empty"),
            ("+41 44 CALL ME", &ch, "contains letters"),
            ("0800-FLOWERS", &ch, "contains letters"),
            ("41+445550100", &ch, "has '+' after the start"),
            (
                "+41 44 555 01 00 #12",
                &ch,
                "contains characters other than digits and separators",
            ),
            ("+041445550100", &ch, "has no country code in use"),
            ("+999 123 456", &ch, "has no country code in use"),
            (
                "+4144",
                &ch,
                "is not a valid number in the numbering plan of +41 (CH)",
            ),
            (
                "+41 44 555 01 00 00 00 00",
                &ch,
                "is not a valid number in the numbering plan of +41 (CH)",
            ),
            (
                "1002",
                &ch,
                "is not a valid number in the numbering plan of +41 (CH)",
            ),
            (
                "+1 555 123 4567",
                &ch,
                "is not a valid number in the numbering plan of +1 (US)",
            ),
            (
                "044 555 01 00",
                &DialingRules::default(),
                "is a national number, but the tenant has no country code in its dialing rules",
            ),
        ];
        for (raw, r, reason) in bad {
            let err = normalize(raw, r).unwrap_err();
            assert_eq!(
                err,
                ContactError::Number {
                    input: raw.into(),
                    reason: reason.into()
                },
                "{raw:?}"
            );
            assert!(err.to_string().contains(&format!("{raw:?}")), "{err}");
        }
    }

    #[test]
    fn numbers_are_shown_as_their_country_writes_them() {
        assert_eq!(display("+41445550100"), "+41 44 555 01 00");
        assert_eq!(display("+12125550100"), "+1 212-555-0100");
        assert_eq!(display("1002"), "1002");
        // The contact form's example, whatever the tenant's rules.
        for r in [
            rules("41", "0", "00"),
            DialingRules::default(),
            rules("1", "", "011"),
        ] {
            assert_eq!(
                normalize("+41 79 555 01 01", &r).as_deref(),
                Ok("+41795550101")
            );
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        let ch = rules("41", "0", "00");
        for raw in ["044 555 01 00", "+41 (0)44 555 01 00", "0049 30 1234567"] {
            let once = normalize(raw, &ch).unwrap();
            assert_eq!(normalize(&once, &ch).unwrap(), once);
        }
    }

    #[test]
    fn prefixes_of_patterns() {
        let ch = rules("41", "0", "00");
        assert_eq!(normalize_prefix("044", &ch).unwrap(), "+4144");
        assert_eq!(normalize_prefix("0033", &ch).unwrap(), "+33");
        assert_eq!(normalize_prefix("+41 44", &ch).unwrap(), "+4144");
        assert!(normalize_prefix("44", &ch).is_err());
        assert!(normalize_prefix("0x", &ch).is_err());
        assert!(normalize_prefix("044", &rules("", "0", "00")).is_err());
    }
}
