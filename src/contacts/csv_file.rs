//! CSV import and export with the `csv` crate. The header row names the columns, in
//! any order: `name,company,email,phones,handling_code` (only `name` is required).
//! `phones` holds several numbers separated by `;`, each optionally labelled
//! `label:number` (`work:+41 44 555 01 00;cell:079 555 01 01`).
//!
//! A spreadsheet runs a cell starting with `=`, `+`, `-` or `@` as a formula, so the
//! export puts a `'` before such text cells, and the import takes it off again
//! (OWASP "CSV injection"). The phones cell is left alone: it holds digits,
//! separators and labels only, nothing a spreadsheet could call.

use super::{Contact, ContactDraft, ContactError, ImportedContact, LineError, PhoneDraft};

const COLUMNS: [&str; 5] = ["name", "company", "email", "phones", "handling_code"];

/// Reads `text`: the contacts found and the rows skipped with their line numbers. A
/// header that cannot be used fails the whole file.
pub fn read_csv(text: &str) -> Result<(Vec<ImportedContact>, Vec<LineError>), ContactError> {
    // Spreadsheets like to start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| ContactError::File {
        line: 1,
        reason: format!("unreadable header row: {e}"),
    })?;
    let mut index = [None; COLUMNS.len()];
    let mut unknown = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        match COLUMNS.iter().position(|c| *c == h) {
            Some(col) if index[col].is_some() => {
                return Err(ContactError::File {
                    line: 1,
                    reason: format!("column {h:?} appears twice"),
                })
            }
            Some(col) => index[col] = Some(i),
            None => unknown.push(h),
        }
    }
    // A typo (`phone`) would otherwise drop a column silently.
    if !unknown.is_empty() {
        return Err(ContactError::File {
            line: 1,
            reason: format!(
                "unknown columns {unknown:?}; the columns are {}",
                COLUMNS.join(",")
            ),
        });
    }
    if index[0].is_none() {
        return Err(ContactError::File {
            line: 1,
            reason: format!(
                "the header row has no \"name\" column; the columns are {}",
                COLUMNS.join(",")
            ),
        });
    }
    let width = headers.len();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut lines = LineCounter::new(text);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| lines.at(p.byte())).unwrap_or(0);
                errors.push(LineError {
                    line,
                    message: format!("unreadable row: {e}"),
                });
                // A UTF-8 or I/O error may leave the reader anywhere: stop there.
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    break;
                }
                continue;
            }
        };
        let line = record.position().map(|p| lines.at(p.byte())).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != width {
            errors.push(LineError {
                line,
                message: format!("has {} fields, the header has {width}", record.len()),
            });
            continue;
        }
        let cell = |col: usize| {
            index[col]
                .and_then(|i| record.get(i))
                .map(unguard)
                .filter(|s| !s.is_empty())
        };
        let mut numbers = Vec::new();
        for entry in cell(3).unwrap_or_default().split(';') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            // Numbers hold no letters, so a ':' can only end a label.
            let (label, number) = match entry.split_once(':') {
                Some((l, n)) => (Some(l.trim().to_string()), n.trim()),
                None => (None, entry),
            };
            numbers.push(PhoneDraft {
                number: number.to_string(),
                label: label.filter(|l| !l.is_empty()),
            });
        }
        found.push(ImportedContact {
            line,
            draft: ContactDraft {
                name: cell(0).unwrap_or_default(),
                company: cell(1),
                email: cell(2),
                handling_code: cell(4),
                numbers,
            },
        });
    }
    Ok((found, errors))
}

/// Line numbers from byte offsets. The `csv` crate's own line count leaves out blank
/// lines and miscounts CRLF files; its byte offsets are right, but point at the blank
/// lines before a record, which are skipped here. Offsets only grow, so counting goes
/// on from the last one: linear in the file, not quadratic.
struct LineCounter<'a> {
    text: &'a [u8],
    byte: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            byte: 0,
            line: 1,
        }
    }

    /// The line of the first character at or after `byte` that ends no line.
    fn at(&mut self, byte: u64) -> u64 {
        let target = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        if target < self.byte {
            // Not expected; start over rather than answer wrong.
            self.byte = 0;
            self.line = 1;
        }
        let newlines = self.text[self.byte..target]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.line += newlines as u64;
        self.byte = target;
        while let Some(b @ (b'\r' | b'\n')) = self.text.get(self.byte) {
            if *b == b'\n' {
                self.line += 1;
            }
            self.byte += 1;
        }
        self.line
    }
}

/// All `contacts` as CSV with a header row.
pub fn write_csv(contacts: &[Contact]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let result: Result<(), csv::Error> = (|| {
        w.write_record(COLUMNS)?;
        for c in contacts {
            let phones = c
                .numbers
                .iter()
                .map(|n| match &n.label {
                    Some(l) => format!("{l}:{}", n.number),
                    None => n.number.clone(),
                })
                .collect::<Vec<_>>()
                .join(";");
            w.write_record([
                guard(&c.name),
                guard(c.company.as_deref().unwrap_or("")),
                guard(c.email.as_deref().unwrap_or("")),
                phones,
                guard(c.handling_code.as_deref().unwrap_or("")),
            ])?;
        }
        Ok(())
    })();
    // Writing to a Vec cannot fail; only an I/O error could end up here.
    debug_assert!(result.is_ok());
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

fn is_formula_start(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

fn guard(text: &str) -> String {
    match text.chars().next() {
        Some(c) if is_formula_start(c) || (c == '\'' && starts_guarded(text)) => {
            format!("'{text}")
        }
        _ => text.to_string(),
    }
}

/// Whether `text` looks like a guarded cell: `'` then a formula character.
fn starts_guarded(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next() == Some('\'')
        && chars
            .next()
            .is_some_and(|c| is_formula_start(c) || c == '\'')
}

fn unguard(text: &str) -> String {
    if starts_guarded(text) {
        text[1..].to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{ContactId, ContactOwner, ContactPhone};
    use tsps_actors::TenantId;

    fn phone(number: &str, label: Option<&str>) -> PhoneDraft {
        PhoneDraft {
            number: number.into(),
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn reads_columns_in_any_order_with_labels_and_quotes() {
        let text = "\u{feff}Phones,Name,handling_code\n\
            \"work:+41 44 555 01 00; cell: 079 555 01 01\",\"Muster, Anna\",VIP\n\
            \n\
            044 555 02 00,Bob,\n";
        let (found, errors) = read_csv(text).unwrap();
        assert_eq!(errors, []);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line, 2);
        assert_eq!(
            found[0].draft,
            ContactDraft {
                name: "Muster, Anna".into(),
                company: None,
                email: None,
                handling_code: Some("VIP".into()),
                numbers: vec![
                    phone("+41 44 555 01 00", Some("work")),
                    phone("079 555 01 01", Some("cell")),
                ],
            }
        );
        assert_eq!(found[1].line, 4);
        assert_eq!(found[1].draft.numbers, [phone("044 555 02 00", None)]);
        assert_eq!(found[1].draft.handling_code, None);
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_numbers() {
        let text = "name,phones\nAnna,+41445550100\nBob\n\"Carl\nthe second\",+41445550101\nDora,1,2\nEve,+41445550102\n";
        let (found, errors) = read_csv(text).unwrap();
        let names: Vec<_> = found.iter().map(|c| c.draft.name.as_str()).collect();
        assert_eq!(names, ["Anna", "Carl\nthe second", "Eve"]);
        let lines: Vec<_> = found.iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 4, 7]);
        let errors: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(errors, [3, 6]);
    }

    #[test]
    fn line_numbers_count_blank_lines_and_crlf() {
        let text = "name\r\nAnna\r\n\r\n\r\nBob\r\n\"Carl\r\nCarlsson\"\r\nDora";
        let (found, _) = read_csv(text).unwrap();
        let lines: Vec<_> = found.iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 5, 6, 8]);
    }

    #[test]
    fn a_header_without_name_or_with_unknown_columns_fails_the_file() {
        let err = read_csv("company,phones\nACME,+41445550100\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 1: the header row has no \"name\""),
            "{err}"
        );
        let err = read_csv("name,phone\nAnna,+41445550100\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown columns [\"phone\"]"),
            "{err}"
        );
        let err = read_csv("name,Name\n").unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn an_empty_file_has_no_contacts() {
        let err = read_csv("").unwrap_err();
        assert!(err.to_string().contains("no \"name\" column"), "{err}");
        let (found, errors) = read_csv("name,phones\n").unwrap();
        assert!(found.is_empty() && errors.is_empty());
    }

    #[test]
    fn export_then_import_gives_the_same_contacts() {
        let contacts = [
            Contact {
                id: ContactId::for_test(1),
                tenant_id: TenantId::for_test(1),
                owner: ContactOwner::Shared,
                name: "=HYPERLINK(\"http://evil.test\")".into(),
                company: Some("Muster, Söhne \"& Co\"".into()),
                email: Some("@home".into()),
                handling_code: Some("'quoted".into()),
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
            },
            Contact {
                id: ContactId::for_test(2),
                tenant_id: TenantId::for_test(1),
                owner: ContactOwner::Shared,
                name: "'=already guarded".into(),
                company: None,
                email: None,
                handling_code: None,
                numbers: vec![],
            },
        ];
        let text = write_csv(&contacts);
        assert!(
            text.starts_with("name,company,email,phones,handling_code\n"),
            "{text}"
        );
        assert!(
            text.contains("\"'=HYPERLINK(\"\"http://evil.test\"\")\""),
            "{text}"
        );
        assert!(
            text.contains(",'@home,work:+41445550100;+41795550101,"),
            "{text}"
        );
        let (found, errors) = read_csv(&text).unwrap();
        assert_eq!(errors, []);
        let back: Vec<ContactDraft> = found.into_iter().map(|c| c.draft).collect();
        let want: Vec<ContactDraft> = contacts.iter().map(ContactDraft::from).collect();
        assert_eq!(back, want);
    }
}
