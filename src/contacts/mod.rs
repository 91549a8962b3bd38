//! Contacts of the personal feature server: the domain types (personal and
//! tenant-shared contacts, their numbers, the tenant's dialing rules), number
//! normalization to E.164, and vCard and CSV import and export.
//!
//! Pure code: no SQL, no HTTP. The store keeps [`Contact`]s; the web layer turns
//! request bodies and uploaded files into [`ContactDraft`]s and checks them here with
//! [`ContactDraft::into_contact`], so a contact typed in and one imported from a file
//! pass the same rules. Every number a contact carries is E.164 (`+41445550100`), so
//! the call path can match a caller by plain string equality.

mod csv_file;
pub mod e164;
mod vcard;

pub use csv_file::{read_csv, write_csv};
pub use e164::{display as display_number, normalize};
pub use vcard::{read_vcards, write_vcards, VcardVersion};

use crate::web::rule_schemas;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;
use uuid::Uuid;

/// Identifies one contact (personal or shared) inside its tenant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(pub Uuid);

impl ContactId {
    /// A fresh, time-ordered identifier (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// A stable identifier for tests: `for_test(1) != for_test(2)`.
    pub fn for_test(n: u128) -> Self {
        Self(Uuid::from_u128(n))
    }
}

impl Default for ContactId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContactId({})", self.0)
    }
}

impl FromStr for ContactId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::from_str(s).map(Self)
    }
}

/// Whose contact it is: one user's (personal) or the whole tenant's (shared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactOwner {
    Shared,
    User(UserId),
}

impl ContactOwner {
    pub fn user(self) -> Option<UserId> {
        match self {
            Self::Shared => None,
            Self::User(u) => Some(u),
        }
    }
}

/// One number of a contact, always E.164.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactPhone {
    pub number: String,
    /// `work`, `cell`, `home`, ... as the user wrote it; None when unlabelled.
    pub label: Option<String>,
}

/// A stored contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub tenant_id: TenantId,
    pub owner: ContactOwner,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    /// The name of a handling code; for a personal contact it names one of the
    /// owner's codes, for a shared one it applies to users who define that code.
    pub handling_code: Option<String>,
    /// In the order given, without duplicates.
    pub numbers: Vec<ContactPhone>,
}

/// One row of the call path's lookup table: a number a user may be called from, with
/// what the contact says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactNumber {
    pub number_e164: String,
    pub name: String,
    pub handling_code: Option<String>,
    /// From a tenant-shared contact (else the user's own).
    pub shared: bool,
}

/// What the user actors keep of a lookup row.
impl From<ContactNumber> for tsps_actors::ports::ContactEntry {
    fn from(n: ContactNumber) -> Self {
        Self {
            number: n.number_e164,
            name: n.name,
            handling_code: n.handling_code,
            shared: n.shared,
        }
    }
}

/// How the people of a tenant write phone numbers, so that `044 555 01 00` can be
/// stored as `+41445550100`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialingRules {
    /// The tenant's country calling code without `+` (`41`): 1 to 3 digits, not
    /// starting with 0; empty: every number must be written in international form.
    #[schema(example = "41", pattern = "^(?:[1-9][0-9]{0,2})?$")]
    pub country_code: String,
    /// Dialled before a national number (`0` in most of Europe): at most 4 digits; may
    /// be empty.
    #[schema(example = "0", pattern = "^[0-9]{0,4}$")]
    pub national_prefix: String,
    /// Dialled before a country code (`00`, `011`): at most 4 digits, not the national
    /// prefix; may be empty.
    #[schema(example = "00", pattern = "^[0-9]{0,4}$")]
    pub international_prefix: String,
}

impl Default for DialingRules {
    /// No country: numbers must already be E.164 (or start with `00`).
    fn default() -> Self {
        Self {
            country_code: String::new(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }
}

impl DialingRules {
    /// Checks the rules themselves; returns every problem as (field, reason).
    pub fn check(&self) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let cc = &self.country_code;
        if !cc.is_empty() && (!digits(cc) || cc.len() > 3 || cc.starts_with('0')) {
            errs.push((
                "country_code".to_string(),
                "must be 1 to 3 digits, not starting with 0, or empty".to_string(),
            ));
        }
        for (field, value) in [
            ("national_prefix", &self.national_prefix),
            ("international_prefix", &self.international_prefix),
        ] {
            if !digits(value) || value.len() > 4 {
                errs.push((field.to_string(), "must be at most 4 digits".to_string()));
            }
        }
        if !self.international_prefix.is_empty()
            && self.international_prefix == self.national_prefix
        {
            errs.push((
                "international_prefix".to_string(),
                "must differ from the national prefix".to_string(),
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Per-tenant settings of the feature server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    #[serde(default, deserialize_with = "tsps_actors::wire::object")]
    pub dialing: DialingRules,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = rule_schemas::notice)]
    pub notice: Option<String>,
}

/// A problem with a contact or a number; messages name the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("number {input:?}: {reason}")]
    Number { input: String, reason: String },
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
    /// A file that could not be read at all (not one bad contact in it).
    #[error("line {line}: {reason}")]
    File { line: u64, reason: String },
}

/// A contact as typed in or read from a file, before its numbers are normalized.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDraft {
    #[schema(schema_with = rule_schemas::contact_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::contact_company)]
    pub company: Option<String>,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::contact_email)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::contact_handling_code)]
    pub handling_code: Option<String>,
    /// At most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub numbers: Vec<PhoneDraft>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneDraft {
    /// As written: normalized to E.164 with the tenant's dialing rules when stored.
    #[schema(example = "044 555 01 00")]
    pub number: String,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::phone_label)]
    pub label: Option<String>,
}

/// A contact read from a file, with the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedContact {
    pub line: u64,
    pub draft: ContactDraft,
}

/// A contact of a file that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

const MAX_TEXT: usize = 200;
const MAX_LABEL: usize = 30;
const MAX_CODE: usize = 40;
const MAX_NUMBERS: usize = 20;

impl ContactDraft {
    /// Checks every field and normalizes every number with `rules`. Returns all
    /// problems at once, each naming its field (`numbers[1]`) and the input.
    pub fn into_contact(
        self,
        id: ContactId,
        tenant_id: TenantId,
        owner: ContactOwner,
        rules: &DialingRules,
        extensions: &HashSet<String>,
    ) -> Result<Contact, Vec<ContactError>> {
        let mut errs = Vec::new();
        let mut field = |field: &str, reason: &str| {
            errs.push(ContactError::Field {
                field: field.to_string(),
                reason: reason.to_string(),
            })
        };
        let name = self.name.trim().to_string();
        if name.is_empty() {
            field("name", "must not be empty");
        }
        if let Err(reason) = plain_text(&name) {
            field("name", reason);
        }
        let company = optional(self.company);
        if let Some(Err(reason)) = company.as_deref().map(plain_text) {
            field("company", reason);
        }
        let email = optional(self.email);
        if let Some(e) = &email {
            if let Err(reason) = plain_text(e) {
                field("email", reason);
            } else if !looks_like_email(e) {
                field("email", "must look like name@domain");
            }
        }
        let handling_code = optional(self.handling_code);
        if let Some(c) = &handling_code {
            if c.chars().count() > MAX_CODE || c.chars().any(char::is_control) {
                field(
                    "handling_code",
                    "must be at most 40 characters without control characters",
                );
            }
        }
        if self.numbers.len() > MAX_NUMBERS {
            field("numbers", "at most 20 numbers per contact");
        }
        let mut numbers: Vec<ContactPhone> = Vec::new();
        for (i, p) in self.numbers.into_iter().enumerate() {
            let label = optional(p.label);
            if let Some(l) = &label {
                let ok = l.chars().count() <= MAX_LABEL
                    && l.chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ');
                if !ok {
                    errs.push(ContactError::Field {
                        field: format!("numbers[{i}].label"),
                        reason: "at most 30 letters, digits, spaces, '-' or '_'".into(),
                    });
                }
            }
            match e164::contact_number(&p.number, rules, |x| extensions.contains(x)) {
                Ok(number) => {
                    // The same number twice (typed two ways) is one number.
                    if !numbers.iter().any(|n| n.number == number) {
                        numbers.push(ContactPhone { number, label });
                    }
                }
                Err(ContactError::Number { input, reason }) => errs.push(ContactError::Field {
                    field: format!("numbers[{i}]"),
                    reason: format!("{input:?} {reason}"),
                }),
                Err(other) => errs.push(other),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Contact {
            id,
            tenant_id,
            owner,
            name,
            company,
            email,
            handling_code,
            numbers,
        })
    }
}

impl From<&Contact> for ContactDraft {
    fn from(c: &Contact) -> Self {
        Self {
            name: c.name.clone(),
            company: c.company.clone(),
            email: c.email.clone(),
            handling_code: c.handling_code.clone(),
            numbers: c
                .numbers
                .iter()
                .map(|n| PhoneDraft {
                    number: n.number.clone(),
                    label: n.label.clone(),
                })
                .collect(),
        }
    }
}

/// Trimmed, and None when empty: an empty company is no company.
fn optional(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn plain_text(v: &str) -> Result<(), &'static str> {
    if v.chars().count() > MAX_TEXT {
        return Err("must be at most 200 characters");
    }
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

fn looks_like_email(v: &str) -> bool {
    match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !v.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swiss() -> DialingRules {
        DialingRules {
            country_code: "41".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }

    fn draft(name: &str, numbers: &[&str]) -> ContactDraft {
        ContactDraft {
            name: name.into(),
            numbers: numbers
                .iter()
                .map(|n| PhoneDraft {
                    number: n.to_string(),
                    label: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn check(d: ContactDraft) -> Result<Contact, Vec<ContactError>> {
        let extensions = HashSet::from(["1002".to_string()]);
        d.into_contact(
            ContactId::for_test(1),
            TenantId::for_test(1),
            ContactOwner::Shared,
            &swiss(),
            &extensions,
        )
    }

    #[test]
    fn a_colleague_is_a_contact_by_extension() {
        let c = check(draft("Bob", &["1002", "044 555 01 00"])).unwrap();
        let numbers: Vec<_> = c.numbers.iter().map(|n| n.number.as_str()).collect();
        assert_eq!(numbers, ["1002", "+41445550100"]);
    }

    #[test]
    fn numbers_are_normalized_and_deduplicated() {
        let c = check(draft(
            " Alice ",
            &["044 555 01 00", "+41445550100", "0041 79 555 01 01"],
        ))
        .unwrap();
        assert_eq!(c.name, "Alice");
        let numbers: Vec<_> = c.numbers.iter().map(|n| n.number.as_str()).collect();
        assert_eq!(numbers, ["+41445550100", "+41795550101"]);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut d = draft("", &["+41 44 555 01 00", "call me", "12"]);
        d.email = Some("nobody".into());
        d.numbers[0].label = Some("a;b".into());
        let errs = check(d).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            [
                "name: must not be empty",
                "email: must look like name@domain",
                "numbers[0].label: at most 30 letters, digits, spaces, '-' or '_'",
                "numbers[1]: \"call me\" contains letters",
                "numbers[2]: \"12\" is no extension of this tenant, and is not a valid number in the numbering plan of +41 (CH)",
            ]
        );
    }

    #[test]
    fn empty_optional_fields_are_none() {
        let mut d = draft("Bob", &[]);
        d.company = Some("  ".into());
        d.handling_code = Some(String::new());
        let c = check(d).unwrap();
        assert_eq!((c.company, c.handling_code), (None, None));
    }

    #[test]
    fn dialing_rules_are_checked() {
        assert!(swiss().check().is_ok());
        assert!(DialingRules::default().check().is_ok());
        let bad = DialingRules {
            country_code: "041".into(),
            national_prefix: "x".into(),
            international_prefix: "x".into(),
        };
        let fields: Vec<String> = bad.check().unwrap_err().into_iter().map(|e| e.0).collect();
        assert_eq!(
            fields,
            [
                "country_code",
                "national_prefix",
                "international_prefix",
                "international_prefix"
            ]
        );
    }
}
