//! vCard 3.0 (RFC 2426) and 4.0 (RFC 6350) import and export of the fields tsps keeps:
//! FN (or N), ORG, EMAIL, TEL with TYPE, and `X-TSPS-HANDLING-CODE`.
//!
//! No maintained crate reads both versions, so this is a small parser: it unfolds
//! continuation lines, strips group prefixes (`item1.TEL`), splits parameters outside
//! double quotes, unescapes `\,` `\;` `\\` `\n`, and reads 4.0 `tel:` URIs. Other
//! properties are skipped. One broken card is reported with its line number and
//! skipped; the cards around it are still read. vCard 2.1 (quoted-printable, bare
//! parameters) is refused with a message saying so rather than read half right.

use super::{Contact, ContactDraft, ContactError, ImportedContact, LineError, PhoneDraft};

/// The version written by [`write_vcards`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VcardVersion {
    /// The most widely imported one.
    #[default]
    V3,
    V4,
}

/// Longest line written before folding, in octets (RFC 6350 §3.2).
const FOLD_AT: usize = 75;

/// TYPE values that say nothing a user would call a label.
const NOT_LABELS: &[&str] = &["voice", "pref", "internet", "text", "x400"];

/// Reads every card of `text`: the contacts found, and the cards skipped with why. A
/// text without a single `BEGIN:VCARD` is no vCard file at all (an empty one, or
/// another kind of file sent as `text/vcard`): a [`ContactError::File`].
pub fn read_vcards(text: &str) -> Result<(Vec<ImportedContact>, Vec<LineError>), ContactError> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut card: Option<Card> = None;
    let mut any_card = false;
    // Report a run of stray lines between cards once, not line by line.
    let mut stray_reported = false;
    for (line_no, line) in unfold(text) {
        let parsed = parse_line(&line);
        let is = |name: &str, value: &str| {
            parsed.as_ref().is_ok_and(|p| {
                p.name.eq_ignore_ascii_case(name) && p.value.trim().eq_ignore_ascii_case(value)
            })
        };
        if is("BEGIN", "VCARD") {
            if let Some(open) = card.take() {
                errors.push(LineError {
                    line: open.line,
                    message: "vCard has no END:VCARD before the next BEGIN:VCARD".into(),
                });
            }
            card = Some(Card::new(line_no));
            any_card = true;
            stray_reported = false;
            continue;
        }
        let Some(open) = card.as_mut() else {
            if !line.trim().is_empty() && !stray_reported {
                errors.push(LineError {
                    line: line_no,
                    message: "expected BEGIN:VCARD".into(),
                });
                stray_reported = true;
            }
            continue;
        };
        if is("END", "VCARD") {
            let done = card.take().expect("card is open");
            match done.finish() {
                Ok(c) => found.push(c),
                Err(e) => errors.push(e),
            }
            continue;
        }
        match parsed {
            Ok(p) => open.apply(line_no, p),
            Err(reason) => {
                if line.trim().is_empty() {
                    continue;
                }
                open.fail(line_no, reason)
            }
        }
    }
    if let Some(open) = card {
        errors.push(LineError {
            line: open.line,
            message: "vCard has no END:VCARD".into(),
        });
    }
    if !any_card {
        return Err(ContactError::File {
            line: 1,
            reason: "the file holds no vCard (BEGIN:VCARD)".into(),
        });
    }
    Ok((found, errors))
}

/// Logical lines with the number of the physical line each starts on (1-based).
fn unfold(text: &str) -> Vec<(u64, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(u64, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let line_no = i as u64 + 1;
        match (raw.strip_prefix([' ', '\t']), out.last_mut()) {
            (Some(rest), Some((_, last))) => last.push_str(rest),
            _ => out.push((line_no, raw.to_string())),
        }
    }
    out
}

/// One content line: `[group.]NAME;PARAM=a,b;...:value`.
#[derive(Debug, PartialEq)]
struct Line {
    name: String,
    /// Parameter names upper case; values unquoted and split at commas.
    params: Vec<(String, Vec<String>)>,
    /// Still escaped.
    value: String,
}

impl Line {
    fn param<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(k, _)| k == key)
            .flat_map(|(_, v)| v.iter().map(String::as_str))
    }
}

fn parse_line(line: &str) -> Result<Line, String> {
    let mut in_quotes = false;
    let colon = line
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                in_quotes = !in_quotes;
            }
            c == ':' && !in_quotes
        })
        .map(|(i, _)| i)
        .ok_or_else(|| "content line has no ':'".to_string())?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = split_outside_quotes(head, ';').into_iter();
    let name = parts.next().unwrap_or_default();
    // Apple and Google write `item1.TEL`: the group says nothing we keep.
    let name = name.rsplit('.').next().unwrap_or(&name).trim().to_string();
    if name.is_empty() {
        return Err("content line has no property name".into());
    }
    let mut params = Vec::new();
    for p in parts {
        match p.split_once('=') {
            Some((k, v)) => {
                let values = split_outside_quotes(v, ',')
                    .into_iter()
                    .map(|v| v.trim().trim_matches('"').to_string())
                    .flat_map(|v| {
                        // `TYPE="work,voice"` (4.0) lists inside one quoted value.
                        v.split(',').map(str::to_string).collect::<Vec<_>>()
                    })
                    .filter(|v| !v.is_empty())
                    .collect();
                params.push((k.trim().to_ascii_uppercase(), values));
            }
            // vCard 2.1 writes `TEL;CELL:`; 3.0 and 4.0 always name the parameter.
            None => params.push(("TYPE".into(), vec![p.trim().to_string()])),
        }
    }
    Ok(Line {
        name,
        params,
        value: value.to_string(),
    })
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_quotes = false;
    for c in s.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c == sep && !in_quotes {
            out.push(String::new());
        } else {
            out.last_mut().expect("never empty").push(c);
        }
    }
    out
}

/// Splits a structured value (N, ORG) at unescaped semicolons, then unescapes.
fn components(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let cur = out.last_mut().expect("never empty");
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.iter().map(|c| unescape(c)).collect()
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A card being read.
struct Card {
    line: u64,
    version: Option<(u64, String)>,
    name: Option<String>,
    structured_name: Option<String>,
    draft: ContactDraft,
    error: Option<LineError>,
}

impl Card {
    fn new(line: u64) -> Self {
        Self {
            line,
            version: None,
            name: None,
            structured_name: None,
            draft: ContactDraft::default(),
            error: None,
        }
    }

    /// The first problem wins: it is the one worth fixing first.
    fn fail(&mut self, line: u64, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(LineError {
                line,
                message: message.into(),
            });
        }
    }

    fn apply(&mut self, line_no: u64, line: Line) {
        if line
            .param("ENCODING")
            .any(|e| e.eq_ignore_ascii_case("quoted-printable"))
        {
            self.fail(
                line_no,
                "quoted-printable (vCard 2.1) is not supported: export as vCard 3.0 or 4.0",
            );
            return;
        }
        let d = &mut self.draft;
        match line.name.to_ascii_uppercase().as_str() {
            "VERSION" => self.version = Some((line_no, line.value.trim().to_string())),
            "FN" if self.name.is_none() => self.name = Some(unescape(&line.value)),
            "N" if self.structured_name.is_none() => {
                // family;given;additional;prefixes;suffixes
                let c = components(&line.value);
                let part = |i: usize| c.get(i).map(|s| s.trim()).unwrap_or("");
                let joined = [part(3), part(1), part(2), part(0), part(4)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.structured_name = Some(joined);
            }
            "ORG" if d.company.is_none() => {
                d.company = components(&line.value).into_iter().next();
            }
            "EMAIL" if d.email.is_none() => d.email = Some(unescape(&line.value)),
            "TEL" => {
                let value = unescape(&line.value);
                let value = value.trim();
                // 4.0: `tel:+41-44-555-01-00;ext=12`: the number is before any parameter.
                let number = match value.get(..4) {
                    Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => {
                        value[4..].split(';').next().unwrap_or("")
                    }
                    _ => value,
                };
                if number.is_empty() {
                    return;
                }
                let label = line
                    .param("TYPE")
                    .map(str::to_ascii_lowercase)
                    .find(|t| !NOT_LABELS.contains(&t.as_str()));
                d.numbers.push(PhoneDraft {
                    number: number.to_string(),
                    label,
                });
            }
            "X-TSPS-HANDLING-CODE" if d.handling_code.is_none() => {
                d.handling_code = Some(unescape(&line.value))
            }
            _ => {}
        }
    }

    fn finish(mut self) -> Result<ImportedContact, LineError> {
        if let Some((line, v)) = &self.version {
            match v.as_str() {
                "3.0" | "4.0" => {}
                "2.1" => self.fail(
                    *line,
                    "vCard 2.1 is not supported: export as vCard 3.0 or 4.0",
                ),
                other => self.fail(*line, format!("unsupported vCard version {other:?}")),
            }
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let name = self
            .name
            .filter(|n| !n.trim().is_empty())
            .or(self.structured_name.filter(|n| !n.trim().is_empty()));
        let Some(name) = name else {
            return Err(LineError {
                line: self.line,
                message: "vCard has no name (FN or N)".into(),
            });
        };
        self.draft.name = name;
        Ok(ImportedContact {
            line: self.line,
            draft: self.draft,
        })
    }
}

/// All `contacts` as one vCard file (CRLF line ends, folded at 75 octets).
pub fn write_vcards(contacts: &[Contact], version: VcardVersion) -> String {
    let mut out = String::new();
    for c in contacts {
        let mut lines = vec![
            "BEGIN:VCARD".to_string(),
            match version {
                VcardVersion::V3 => "VERSION:3.0",
                VcardVersion::V4 => "VERSION:4.0",
            }
            .to_string(),
            format!("FN:{}", escape(&c.name)),
            // Required in 3.0; the whole name as the family name, as we keep no parts.
            format!("N:{};;;;", escape(&c.name)),
        ];
        if let Some(org) = &c.company {
            lines.push(format!("ORG:{}", escape(org)));
        }
        if let Some(email) = &c.email {
            lines.push(match version {
                VcardVersion::V3 => format!("EMAIL;TYPE=INTERNET:{}", escape(email)),
                VcardVersion::V4 => format!("EMAIL:{}", escape(email)),
            });
        }
        for n in &c.numbers {
            let ty = n
                .label
                .as_deref()
                .map(|l| format!(";TYPE={}", param_value(l)))
                .unwrap_or_default();
            lines.push(match version {
                VcardVersion::V3 => format!("TEL{ty}:{}", n.number),
                VcardVersion::V4 => format!("TEL;VALUE=uri{ty}:tel:{}", n.number),
            });
        }
        if let Some(code) = &c.handling_code {
            lines.push(format!("X-TSPS-HANDLING-CODE:{}", escape(code)));
        }
        lines.push("END:VCARD".into());
        for l in lines {
            fold_into(&mut out, &l);
        }
    }
    out
}

/// A parameter value, quoted when it holds a character that would end it.
fn param_value(v: &str) -> String {
    let clean: String = v.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    if clean.contains([';', ':', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

fn fold_into(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > FOLD_AT {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{ContactId, ContactOwner, ContactPhone};
    use tsps_actors::TenantId;

    fn drafts(text: &str) -> Vec<ContactDraft> {
        let (found, errors) = read_vcards(text).unwrap();
        assert_eq!(errors, []);
        found.into_iter().map(|c| c.draft).collect()
    }

    fn phone(number: &str, label: Option<&str>) -> PhoneDraft {
        PhoneDraft {
            number: number.into(),
            label: label.map(str::to_string),
        }
    }

    const APPLE_V3: &str = "BEGIN:VCARD\r\n\
        VERSION:3.0\r\n\
        N:Muster;Anna;;Dr.;\r\n\
        FN:Dr. Anna Muster\r\n\
        ORG:Muster\\, Söhne & Co;Sales\r\n\
        EMAIL;type=INTERNET;type=WORK;type=pref:anna@muster.test\r\n\
        item1.TEL;type=CELL;type=VOICE;type=pref:+41 79 555 01 01\r\n\
        TEL;TYPE=WORK,VOICE:044 555 01 00\r\n\
        NOTE:a note that is\r\n  folded over two lines\r\n\
        X-TSPS-HANDLING-CODE:VIP\r\n\
        END:VCARD\r\n";

    #[test]
    fn reads_a_v3_card_with_groups_params_and_escapes() {
        let d = drafts(APPLE_V3);
        assert_eq!(
            d,
            [ContactDraft {
                name: "Dr. Anna Muster".into(),
                company: Some("Muster, Söhne & Co".into()),
                email: Some("anna@muster.test".into()),
                handling_code: Some("VIP".into()),
                numbers: vec![
                    phone("+41 79 555 01 01", Some("cell")),
                    phone("044 555 01 00", Some("work")),
                ],
            }]
        );
    }

    #[test]
    fn reads_a_v4_card_with_tel_uris_and_quoted_types() {
        let text = "BEGIN:VCARD\n\
            VERSION:4.0\n\
            FN:Bob\n\
            TEL;VALUE=uri;TYPE=\"voice,home\";PREF=1:tel:+41-44-555-02-00;ext=12\n\
            TEL;VALUE=uri:tel:+41445550300\n\
            END:VCARD\n";
        let d = drafts(text);
        assert_eq!(d[0].name, "Bob");
        assert_eq!(
            d[0].numbers,
            [
                phone("+41-44-555-02-00", Some("home")),
                phone("+41445550300", None)
            ]
        );
    }

    #[test]
    fn a_folded_line_is_one_line() {
        let text =
            "BEGIN:VCARD\nVERSION:3.0\nFN:Very Long\n\t Name\nTEL:+41 44\n  555 01 00\nEND:VCARD";
        let d = drafts(text);
        assert_eq!(d[0].name, "Very Long Name");
        assert_eq!(d[0].numbers, [phone("+41 44 555 01 00", None)]);
    }

    #[test]
    fn the_name_falls_back_to_n() {
        let d = drafts("BEGIN:VCARD\nVERSION:3.0\nN:Muster;Hans;;;\nEND:VCARD\n");
        assert_eq!(d[0].name, "Hans Muster");
    }

    #[test]
    fn a_broken_card_is_skipped_with_its_line_and_the_others_are_read() {
        let text = "\
BEGIN:VCARD
VERSION:3.0
FN:First
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:No colon here
this line is broken
END:VCARD
BEGIN:VCARD
VERSION:2.1
FN:Old
END:VCARD
BEGIN:VCARD
VERSION:3.0
TEL:+41445550100
END:VCARD
garbage between cards
more garbage
BEGIN:VCARD
VERSION:3.0
FN;ENCODING=QUOTED-PRINTABLE:M=C3=BCller
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Last
BEGIN:VCARD
FN:Unfinished
";
        let (found, errors) = read_vcards(text).unwrap();
        let names: Vec<_> = found.iter().map(|c| c.draft.name.as_str()).collect();
        assert_eq!(names, ["First"]);
        assert_eq!(found[0].line, 1);
        let errors: Vec<(u64, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (8, "content line has no ':'"),
                (11, "vCard 2.1 is not supported: export as vCard 3.0 or 4.0"),
                (14, "vCard has no name (FN or N)"),
                (18, "expected BEGIN:VCARD"),
                (
                    22,
                    "quoted-printable (vCard 2.1) is not supported: export as vCard 3.0 or 4.0"
                ),
                (24, "vCard has no END:VCARD before the next BEGIN:VCARD"),
                (27, "vCard has no END:VCARD"),
            ]
        );
    }

    #[test]
    fn a_text_without_a_card_is_no_vcard_file() {
        let no_file = Err(ContactError::File {
            line: 1,
            reason: "the file holds no vCard (BEGIN:VCARD)".into(),
        });
        for text in ["", "\r\n\r\n", "name,phones\nAnna,+41445550100\n", "hello"] {
            assert_eq!(read_vcards(text), no_file, "{text:?}");
        }
        // One broken card is a card: skipped with its line, not the file refused.
        let (found, errors) = read_vcards("BEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n").unwrap();
        assert_eq!((found.len(), errors.len()), (0, 1));
    }

    fn contact(name: &str) -> Contact {
        Contact {
            id: ContactId::for_test(1),
            tenant_id: TenantId::for_test(1),
            owner: ContactOwner::Shared,
            name: name.into(),
            company: Some("ACME; Inc, \\ \"Intl\"".into()),
            email: Some("a@b.test".into()),
            handling_code: Some("VIP, or not".into()),
            numbers: vec![
                ContactPhone {
                    number: "+41445550100".into(),
                    label: Some("work".into()),
                },
                ContactPhone {
                    number: "+41795550101".into(),
                    label: None,
                },
            ],
        }
    }

    #[test]
    fn export_then_import_gives_the_same_contacts_in_both_versions() {
        let long = "Ännchen von Tharau ".repeat(8);
        let contacts = [contact("Anna"), contact(long.trim())];
        for version in [VcardVersion::V3, VcardVersion::V4] {
            let text = write_vcards(&contacts, version);
            assert!(text.lines().all(|l| l.len() <= FOLD_AT), "{text}");
            let back = drafts(&text);
            let want: Vec<ContactDraft> = contacts.iter().map(ContactDraft::from).collect();
            assert_eq!(back, want, "{version:?}:\n{text}");
        }
    }

    #[test]
    fn v4_export_writes_tel_uris() {
        let text = write_vcards(&[contact("Anna")], VcardVersion::V4);
        assert!(
            text.contains("TEL;VALUE=uri;TYPE=work:tel:+41445550100\r\n"),
            "{text}"
        );
        assert!(
            text.contains("ORG:ACME\\; Inc\\, \\\\ \"Intl\"\r\n"),
            "{text}"
        );
    }
}
