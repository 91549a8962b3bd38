//! Phone numbers as people write them, turned into E.164 (`+41445550100`) with the
//! tenant's [`DialingRules`].
//!
//! Accepted: international form (`+41 44 555 01 00`, also with the bracketed national
//! prefix `+41 (0)44 ...`), the international prefix (`0041 44 ...`), and national
//! numbers after the national prefix (`044 555 01 00`) when the tenant has a country
//! code. Spaces, dashes, dots, slashes and parentheses are separators. Anything else
//! is an error naming the input: a number stored in any other form would never match
//! a caller.

use super::{ContactError, DialingRules};

/// Shortest and longest E.164 numbers kept, in digits after `+` (country code
/// included). The shortest real numbers (small island states) have 7 digits.
const MIN_DIGITS: usize = 6;
const MAX_DIGITS: usize = 15;

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
    let international = compact.starts_with('+')
        || (!rules.international_prefix.is_empty()
            && compact.starts_with(&rules.international_prefix));
    // "+41 (0)44 ..." shows the national prefix one leaves out when dialling from abroad.
    if international {
        compact = compact.replacen("(0)", "", 1);
    }
    let digits: String = compact.chars().filter(|c| *c != '(' && *c != ')').collect();

    let national_number = |rest: &str| {
        if rules.country_code.is_empty() {
            Err(fail(
                "is a national number, but the tenant has no country code in its dialing rules",
            ))
        } else {
            Ok(format!("{}{rest}", rules.country_code))
        }
    };
    let intl = rules.international_prefix.as_str();
    let national = rules.national_prefix.as_str();
    // The longer prefix first: "00" (international) also starts with "0" (national).
    let mut prefixes = [(intl, true), (national, false)];
    prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let e164_digits = if let Some(rest) = digits.strip_prefix('+') {
        rest.to_string()
    } else if let Some((prefix, is_intl)) = prefixes
        .iter()
        .find(|(p, _)| !p.is_empty() && digits.starts_with(p))
    {
        let rest = &digits[prefix.len()..];
        if *is_intl {
            rest.to_string()
        } else {
            national_number(rest)?
        }
    } else if national.is_empty() && !rules.country_code.is_empty() {
        // Countries without a trunk prefix (Italy, ...) write national numbers bare.
        national_number(&digits)?
    } else {
        return Err(fail(
            "has no national or international prefix and cannot be made E.164",
        ));
    };
    if e164_digits.starts_with('0') {
        return Err(fail("has a country code starting with 0"));
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&e164_digits.len()) {
        return Err(fail("must have 6 to 15 digits in E.164 form"));
    }
    Ok(format!("+{e164_digits}"))
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
            (
                "445550100",
                &ch,
                "has no national or international prefix and cannot be made E.164",
            ),
            ("+041445550100", &ch, "has a country code starting with 0"),
            ("+4144", &ch, "must have 6 to 15 digits in E.164 form"),
            (
                "+41 44 555 01 00 00 00 00",
                &ch,
                "must have 6 to 15 digits in E.164 form",
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
