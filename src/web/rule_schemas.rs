//! Field rules as JSON Schema, for the OpenAPI document. The rules themselves stay
//! where they are (`crate::rules`, the handlers) and decide; each function here
//! states one of them for fields that take it with `#[schema(schema_with = ..)]`, so
//! that a value the schema allows is one the rule accepts and the other way round.
//! The contract test (`tests/openapi_contract.rs`) holds the two to that.
//!
//! Rules simple enough for a literal (`^[0-9]{1,15}$`, `minimum = 1`) are written on
//! the field itself; this module has the ones built from parts: what `str::trim`
//! forgives, what `char::is_control` refuses, host names and addresses. Patterns are
//! ECMA-262 regular expressions, as JSON Schema reads them, and without lookarounds
//! (a generator of valid values cannot draw from those, only filter): where a rule
//! needs one, a `maxLength` or a `not` says it, slightly stricter about the spaces
//! around a value than the rule. `schema_with` drops the field's doc comment, so each
//! function describes its rule.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema};
use utoipa::openapi::schema::{SchemaFormat, SchemaType, Type};
use utoipa::openapi::RefOr;

/// What `str::trim` removes (Unicode White_Space), spelled out: `\s` reads
/// differently in ECMA-262, Python and Rust.
const WS: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// What `char::is_control` refuses (Unicode Cc).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// `char::is_control` but tab, line feed and carriage return: what a message may hold.
const CONTROL_BUT_LINES: &str = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f";
const LABEL: &str = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const IPV4_OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const HEX: &str = "[0-9A-Fa-f]{1,4}";

fn ipv4() -> String {
    format!(r"(?:{IPV4_OCTET}\.){{3}}{IPV4_OCTET}")
}

/// IPv6 as `std::net::Ipv6Addr` parses it: eight groups, or fewer around one `::`,
/// the last two groups possibly written as an IPv4 address.
fn ipv6() -> String {
    let v4 = ipv4();
    [
        format!("(?:{HEX}:){{7}}{HEX}"),
        format!("(?:{HEX}:){{1,7}}:"),
        format!("(?:{HEX}:){{1,6}}:{HEX}"),
        format!("(?:{HEX}:){{1,5}}(?::{HEX}){{1,2}}"),
        format!("(?:{HEX}:){{1,4}}(?::{HEX}){{1,3}}"),
        format!("(?:{HEX}:){{1,3}}(?::{HEX}){{1,4}}"),
        format!("(?:{HEX}:){{1,2}}(?::{HEX}){{1,5}}"),
        format!("{HEX}:(?::{HEX}){{1,6}}"),
        format!(":(?:(?::{HEX}){{1,7}}|:)"),
        format!("(?:{HEX}:){{6}}{v4}"),
        format!("::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{v4}"),
        format!("(?:{HEX}:){{1,4}}:{v4}"),
    ]
    .map(|alternative| format!("(?:{alternative})"))
    .join("|")
}

/// `rules::domain` after `trim`: labels of letters, digits and inner hyphens, and the
/// trailing dots it forgives (its length: [`domain`]'s `maxLength`).
fn domain_core() -> String {
    format!(r"{LABEL}(?:\.{LABEL})*\.*")
}

/// Text that is trimmed, then must have 1 to `max` characters and no control
/// character (`rules::name` and its kin); `empty_ok`: nothing left is fine too.
fn trimmed_text_pattern(max: usize, empty_ok: bool) -> String {
    let core = format!(
        "[^{WS}{CONTROL}](?:[^{CONTROL}]{{0,{}}}[^{WS}{CONTROL}])?",
        max - 2
    );
    let core = if empty_ok {
        format!("(?:{core})?")
    } else {
        core
    };
    format!("^[{WS}]*{core}[{WS}]*$")
}

fn string(pattern: String, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// The same, `null` allowed too (an optional field).
fn nullable(pattern: String, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// `rules::name`: a display name, a tenant's name.
pub fn name() -> Object {
    string(
        trimmed_text_pattern(200, false),
        "1 to 200 characters, not counting spaces around them (which are removed); \
         no control characters",
    )
}

/// A contact's name (`contacts::ContactDraft`): the rule of `rules::name`.
pub fn contact_name() -> Object {
    name()
}

/// A contact's company: as a name, or blank (none).
pub fn contact_company() -> Object {
    nullable(
        trimmed_text_pattern(200, true),
        "at most 200 characters, not counting spaces around them; no control \
         characters; blank or null: none",
    )
}

/// A contact's e-mail: `name@domain`, no spaces inside, or blank (none).
pub fn contact_email() -> Object {
    let core = format!("[^{WS}{CONTROL}@]+@[^{WS}{CONTROL}@]+");
    let mut o = nullable(
        format!("^[{WS}]*(?:{core})?[{WS}]*$"),
        "`name@domain` with one `@` and no spaces inside, at most 200 characters, \
         spaces around removed; blank or null: none",
    );
    o.max_length = Some(200);
    o
}

/// A contact's handling code: at most 40 characters, or blank (none).
pub fn contact_handling_code() -> Object {
    nullable(
        trimmed_text_pattern(40, true),
        "For a personal contact, one of the owner's handling codes; for a shared one, \
         any name (it applies to users who define that code). At most 40 characters, \
         spaces around removed, no control characters; blank or null: none.",
    )
}

/// A contact number's label: letters, digits, spaces, `-` and `_`.
pub fn phone_label() -> Object {
    let edge = r"[\p{L}\p{N}_-]";
    let inner = r"[\p{L}\p{N} _-]";
    nullable(
        format!("^[{WS}]*(?:{edge}(?:{inner}{{0,28}}{edge})?)?[{WS}]*$"),
        "Up to 30 letters, digits, spaces, `-` or `_` (`work`); spaces around removed; \
         blank or null: none.",
    )
}

/// An external phone's label: at most 64 characters, may be empty.
pub fn external_phone_label() -> Object {
    string(
        trimmed_text_pattern(64, true),
        "`Mobile`: at most 64 characters, spaces around removed, no control characters; \
         may be empty.",
    )
}

/// An integration's name.
pub fn api_token_name() -> Object {
    string(
        trimmed_text_pattern(100, false),
        "What the integration is (`crm`), unique in the tenant: 1 to 100 characters, \
         spaces around removed, no control characters.",
    )
}

/// An instant message (`feature::profile::check_message`): 1 to 500 characters, not
/// only spaces, no control characters but line breaks and tabs.
pub fn message_text() -> Object {
    let c = CONTROL_BUT_LINES;
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(500))
        .pattern(Some(format!("^[^{c}]*[^{WS}{c}][^{c}]*$")))
        .description(Some(
            "1 to 500 characters, not only spaces; no control characters but line \
             breaks and tabs",
        ))
        .build()
}

/// The home page notice of a tenant's settings: at most 1000 characters once trimmed;
/// blank or null: none.
pub fn notice() -> Object {
    nullable(
        format!(r"^[{WS}]*(?:[^{WS}](?:[\s\S]{{0,998}}[^{WS}])?)?[{WS}]*$"),
        "A notice from the tenant admin, shown on every user's portal home page: at \
         most 1000 characters, spaces around removed; blank or null: none.",
    )
}

/// The call history's search text: at most 64 characters once trimmed.
pub fn history_search() -> Object {
    string(
        format!(r"^[{WS}]*(?:[^{WS}](?:[\s\S]{{0,62}}[^{WS}])?)?[{WS}]*$"),
        "Only calls whose caller or callee contains this text (e.g. digits of a \
         number): at most 64 characters, spaces around removed.",
    )
}

/// `rules::domain`.
pub fn domain() -> Object {
    let mut o = string(
        format!("^[{WS}]*{}[{WS}]*$", domain_core()),
        "SIP domain, also the digest realm of the tenant's devices (`a.test`): a DNS \
         name of at most 253 characters, labels of letters, digits and inner hyphens; \
         stored lower case, without spaces around or trailing dots.",
    );
    o.max_length = Some(253);
    o
}

/// `rules::host`: an IP address (IPv6 perhaps in brackets) or a DNS name.
pub fn host() -> Object {
    let mut o = string(
        format!(
            r"^[{WS}]*(?:\[*(?:{}|{})\]*|{})[{WS}]*$",
            ipv4(),
            ipv6(),
            domain_core()
        ),
        "The carrier's address (`127.0.0.2`): an IP address, or a DNS name as a \
         tenant's domain.",
    );
    o.max_length = Some(253);
    o
}

/// `rules::source`: an address or a CIDR block of at most a /16 (IPv4) or a /32
/// (IPv6), not the unspecified address.
pub fn source() -> Object {
    let v4 = format!(r"{}(?:/\+?0*(?:1[6-9]|2[0-9]|3[0-2]))?", ipv4());
    let v6 = format!(
        r"(?:{})(?:/\+?0*(?:3[2-9]|[4-9][0-9]|1[01][0-9]|12[0-8]))?",
        ipv6()
    );
    let mut o = string(
        format!("^[{WS}]*(?:{v4}|{v6})[{WS}]*$"),
        "An address or a CIDR block (`192.0.2.0/24`) of the carrier's servers: at most \
         a /16 (IPv4) or a /32 (IPv6), not the unspecified address.",
    );
    let unspecified = format!(r"^[{WS}]*(?:0\.0\.0\.0(?:/\+?0*32)?|[0:.]+(?:/\+?0*128)?)[{WS}]*$");
    // utoipa's schema model has no `not`; its extensions are written as they are.
    o.extensions = Some(Extensions::from_iter([(
        "not",
        serde_json::json!({ "pattern": unspecified }),
    )]));
    o
}

fn time_zones(nullable: bool) -> Object {
    let names = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| serde_json::Value::from(tz.name()));
    let (schema_type, names): (SchemaType, Vec<serde_json::Value>) = if nullable {
        (
            SchemaType::from_iter([Type::String, Type::Null]),
            names.chain([serde_json::Value::Null]).collect(),
        )
    } else {
        (SchemaType::Type(Type::String), names.collect())
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .enum_values(Some(names))
        .examples(["Europe/Zurich"])
        .build()
}

/// `rules::time_zone`, optional: UTC when omitted or null.
pub fn time_zone_or_utc() -> Object {
    let mut o = time_zones(true);
    o.description = Some("IANA time zone name; UTC when omitted or null.".into());
    o
}

/// `rules::time_zone` with a default (the provisioning document).
pub fn time_zone() -> Object {
    let mut o = time_zones(false);
    o.description = Some("IANA time zone name; UTC when omitted.".into());
    o
}

/// A string or, in the provisioning document, an integer written for it.
fn string_or_integer(string: Object, max: u64) -> RefOr<Schema> {
    let integer = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(max as usize))
        .build();
    OneOfBuilder::new().item(string).item(integer).into()
}

/// `rules::extension` in the provisioning document: digits, as a string or a number.
pub fn provisioned_extension() -> RefOr<Schema> {
    let s = string(
        "^[0-9]{1,15}$".into(),
        "Digits (1 to 15); unique within the tenant.",
    );
    string_or_integer(s, 999_999_999_999_999)
}

/// `rules::sip_username` in the provisioning document: a string or a number.
pub fn provisioned_sip_username() -> RefOr<Schema> {
    let s = string(
        "^[A-Za-z0-9._+-]{1,64}$".into(),
        "Digest user name: 1 to 64 letters, digits, `-`, `_`, `.` or `+`; unique \
         within the tenant.",
    );
    string_or_integer(s, u64::MAX)
}

/// `rules::device_password` and `rules::portal_password`.
pub fn password() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(8))
        .max_length(Some(128))
        .pattern(Some(format!("^[^{CONTROL}]*$")))
        .description(Some("8 to 128 characters, no control characters."))
        .build()
}

/// An optional password (the provisioning document's portal password).
pub fn optional_password() -> Object {
    let mut o = password();
    o.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    o.description = Some(
        "Portal password (8 to 128 characters, no control characters), stored as an \
         argon2id hash; omitted: unchanged (a new user then cannot log in until one is \
         set)."
            .into(),
    );
    o
}

/// `rules::digest_algorithms`: each algorithm once (case and spaces around forgiven).
fn digest_algorithm_list() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["MD5", "SHA-256"])),
        )
        .max_items(Some(2))
        .unique_items(true)
        .description(Some(
            "The digest algorithms the phone is challenged with, preferred first \
             (`[\"MD5\"]` for phones that know only MD5); empty: the platform's; \
             omitted: kept as it is.",
        ))
        .examples([serde_json::json!(["MD5"])])
}

pub fn digest_algorithms() -> RefOr<Schema> {
    digest_algorithm_list()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .into()
}

/// `rules::source` for each of a list; null (omitted) keeps the stored list.
pub fn sources() -> RefOr<Schema> {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(source())
        .description(Some(
            "Addresses or CIDR blocks accepted as the carrier's inbound sources (at \
             most a /16, or /32 for IPv6). Set by the platform operator only; omitted \
             on PUT, the stored ones stay.",
        ))
        .into()
}

/// The same in the provisioning document (a list, empty by default).
pub fn provisioned_sources() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(source())
        .description(Some(
            "Addresses or CIDR blocks accepted as this carrier's inbound sources.",
        ))
        .into()
}

/// An IP address as `std::net::IpAddr` parses it (`/security/blocks/sources/{source}`).
pub struct IpAddress;

impl utoipa::PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        let format = |f: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom(f.into())))
                .build()
        };
        OneOfBuilder::new()
            .item(format("ipv4"))
            .item(format("ipv6"))
            .into()
    }
}

impl utoipa::ToSchema for IpAddress {}

/// The final status of a rejection with a message (`feature::profile::MESSAGE_CODES`).
pub fn message_code() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some(tsps_actors::feature::profile::MESSAGE_CODES))
        .description(Some("480 (the default), 486 or 603."))
        .build()
}
