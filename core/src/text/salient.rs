//! Salient spans for REALM's salient-span masking (section 3.4): named entities and dates.
//! The paper's BERT tagger was never released, so this is a tagger of our own: dates by
//! pattern (a day, a month and a year in the usual English orders, a month with a day or a
//! year, a year or a decade alone, a century, "AD 609"), entities from a gazetteer of the
//! corpus's own titles, and runs of capitalised words (joined by "of", "da", "von", ...; a
//! comma, bracket or quote ends one). Numbers that are not years are left out, as the CoNLL
//! types the paper tagged have none. `scripts/tagger_vs_spacy.py` measures it against spaCy.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

/// What a salient span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Date,
    Entity,
}

/// A salient span: byte offsets in the tagged text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalientSpan {
    pub start: usize,
    pub end: usize,
    pub kind: SpanKind,
}

const MONTHS: &str = "January|February|March|April|May|June|July|August|September|October|November|December|Jan\\.|Feb\\.|Mar\\.|Apr\\.|Jun\\.|Jul\\.|Aug\\.|Sept?\\.|Oct\\.|Nov\\.|Dec\\.";

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let day = r"(?:[12][0-9]|3[01]|0?[1-9])(?:st|nd|rd|th)?";
    let year = r"(?:[1-9][0-9]{2,3})(?:\s?(?:BC|BCE|AD|CE))?";
    let era = r"(?:\s?(?:BC|BCE|AD|CE)\b)?";
    let century = format!(
        r"(?:(?:early|mid|late)[\s-])?(?:[1-9]|1[0-9]|2[01])(?:st|nd|rd|th)[\s-]century{era}"
    );
    let pattern = format!(
        r"\b(?:{day}\s(?:{MONTHS})(?:,?\s{year})?|(?:{MONTHS})\s{day}(?:,?\s{year})?\b|(?:{MONTHS})\s{year}\b|{century}|(?:AD|CE)\s[1-9][0-9]{{0,3}}\b|(?:1[0-9]{{3}}|20[0-9]{{2}})s?\b{era})"
    );
    Regex::new(&pattern).expect("a valid date pattern")
});

/// Lower-case words that may join capitalised words inside one name ("the" only after "of":
/// "Bank of the Netherlands"; "and" never, so lists stay apart).
const CONNECTORS: &[&str] = &[
    "of", "de", "da", "di", "del", "della", "der", "den", "van", "von", "la", "le", "du", "y",
    "al", "bin", "ibn",
];

/// Capitalised words that are not names by themselves.
const NOT_NAMES: &[&str] = &[
    "The",
    "A",
    "An",
    "In",
    "On",
    "At",
    "Of",
    "For",
    "By",
    "With",
    "From",
    "To",
    "As",
    "It",
    "Its",
    "He",
    "She",
    "His",
    "Her",
    "They",
    "Their",
    "We",
    "Our",
    "I",
    "You",
    "This",
    "That",
    "These",
    "Those",
    "There",
    "Here",
    "When",
    "Where",
    "While",
    "After",
    "Before",
    "During",
    "Although",
    "However",
    "But",
    "And",
    "Or",
    "If",
    "Since",
    "Because",
    "Many",
    "Some",
    "Most",
    "Other",
    "Such",
    "Each",
    "Both",
    "All",
    "One",
    "Two",
    "Three",
    "First",
    "Second",
    "Later",
    "Also",
    "Today",
    "Now",
    "Then",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "What",
    "Who",
    "Which",
    "How",
    "Why",
    "Yes",
    "No",
    "Not",
    "Unlike",
    "Like",
    "Under",
    "Over",
    "Between",
    "Among",
    "About",
];

/// Names taken from a corpus's titles: a title matches where its words appear in a sentence
/// exactly (case kept), when it starts and ends with a capitalised word.
#[derive(Debug, Default, Clone)]
pub struct Gazetteer {
    /// First word -> the titles (as word lists) starting with it, longest first.
    by_first: HashMap<String, Vec<Vec<String>>>,
    /// One-word titles (lower-cased) that the corpus's text also writes in lower case: common
    /// words, not names, when they open a sentence.
    common: HashSet<String>,
}

impl Gazetteer {
    /// From titles such as a corpus's passage titles; a trailing "(disambiguation)" is dropped,
    /// and titles that do not start and end with a capital are skipped.
    pub fn from_titles<'a>(titles: impl IntoIterator<Item = &'a str>) -> Self {
        let mut by_first: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for title in titles {
            let title = match title.find(" (") {
                Some(p) if title.ends_with(')') => &title[..p],
                _ => title,
            };
            let words: Vec<String> = words(title)
                .into_iter()
                .map(|(s, e)| title[s..e].to_string())
                .collect();
            let capital = |w: Option<&String>| w.is_some_and(|w| starts_upper(w));
            if words.is_empty() || !capital(words.first()) || !capital(words.last()) {
                continue;
            }
            if words.len() == 1 && NOT_NAMES.contains(&words[0].as_str()) {
                continue;
            }
            by_first.entry(words[0].clone()).or_default().push(words);
        }
        for titles in by_first.values_mut() {
            titles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
            titles.dedup();
        }
        Self {
            by_first,
            common: HashSet::new(),
        }
    }

    /// Notes which one-word titles `texts` also write in lower case ("water" for "Water"):
    /// those are common words and are not tagged when they open a sentence.
    pub fn with_common_words<'a>(mut self, texts: impl IntoIterator<Item = &'a str>) -> Self {
        let single: HashSet<String> = self
            .by_first
            .values()
            .flatten()
            .filter(|t| t.len() == 1)
            .map(|t| t[0].to_lowercase())
            .collect();
        for text in texts {
            for (s, e) in words(text) {
                let word = &text[s..e];
                if !starts_upper(word) && single.contains(word) {
                    self.common.insert(word.to_string());
                }
            }
        }
        self
    }

    pub fn len(&self) -> usize {
        self.by_first.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_first.is_empty()
    }

    /// Words of the longest title matching at word `at` of `text`'s `words`.
    fn longest_at(&self, text: &str, words: &[(usize, usize)], at: usize) -> Option<usize> {
        let first = &text[words[at].0..words[at].1];
        self.by_first.get(first)?.iter().find_map(|title| {
            let fits = at + title.len() <= words.len()
                && title
                    .iter()
                    .zip(&words[at..])
                    .all(|(t, &(s, e))| t == &text[s..e]);
            fits.then_some(title.len())
        })
    }
}

/// The salient spans of one sentence, in order and without overlaps: dates first, then
/// gazetteer names, then runs of capitalised words.
pub fn salient_spans(sentence: &str, gazetteer: &Gazetteer) -> Vec<SalientSpan> {
    let mut spans: Vec<SalientSpan> = DATE
        .find_iter(sentence)
        .map(|m| SalientSpan {
            start: m.start(),
            end: m.end(),
            kind: SpanKind::Date,
        })
        .collect();
    let taken =
        |spans: &[SalientSpan], s: usize, e: usize| spans.iter().any(|x| s < x.end && x.start < e);
    let words = words(sentence);
    let text = |i: usize| &sentence[words[i].0..words[i].1];
    let mut i = 0;
    while i < words.len() {
        // A title from the corpus (longest first) or a run of capitalised words joined by
        // connectors and not ending in one, whichever reaches further.
        let title = gazetteer.longest_at(sentence, &words, i).map(|n| i + n - 1);
        let run = (starts_upper(text(i)) && !NOT_NAMES.contains(&text(i)) && !is_number(text(i)))
            .then(|| {
                let mut last = i;
                for j in i + 1..words.len() {
                    // A comma, bracket or quote ends a name ("Athens, Greece" is two).
                    if !sentence[words[j - 1].1..words[j].0].trim().is_empty() {
                        break;
                    }
                    let joins =
                        CONNECTORS.contains(&text(j)) || (text(j) == "the" && text(j - 1) == "of");
                    if starts_upper(text(j)) && !is_number(text(j)) {
                        last = j;
                    } else if !joins {
                        break;
                    }
                }
                last
            });
        let Some(last) = title.max(run) else {
            i += 1;
            continue;
        };
        let s = words[i].0;
        // A possessive is not part of the name.
        let end_word = text(last);
        let e = words[last].1
            - ["'s", "’s"]
                .iter()
                .find(|p| end_word.len() > p.len() && end_word.ends_with(*p))
                .map_or(0, |p| p.len());
        // A lone capital at the start of a sentence is usually just the first word, unless
        // it is a title of the corpus that its text never writes in lower case ("Beowulf",
        // not "Water").
        let first_word_only = i == 0 && last == 0;
        let named = title == Some(0) && !gazetteer.common.contains(&text(0).to_lowercase());
        if (!first_word_only || named) && !taken(&spans, s, e) {
            spans.push(SalientSpan {
                start: s,
                end: e,
                kind: SpanKind::Entity,
            });
        }
        i = last + 1;
    }
    spans.sort_by_key(|s| s.start);
    spans
}

/// Byte ranges of the words of `text`: runs of letters and digits, with inner `'`, `-`, `.`
/// and `&` kept ("O'Neill", "Jean-Paul", "U.S.", "AT&T"); a trailing period is kept only after
/// a single letter ("U.S." but not "Paris.").
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((s, c)) = chars.next() {
        if !c.is_alphanumeric() {
            continue;
        }
        let mut e = s + c.len_utf8();
        while let Some(&(p, n)) = chars.peek() {
            if n.is_alphanumeric() {
                e = p + n.len_utf8();
                chars.next();
            } else if matches!(n, '\'' | '’' | '-' | '.' | '&') {
                let after = text[p + n.len_utf8()..].chars().next();
                if after.is_some_and(char::is_alphanumeric) {
                    e = p + n.len_utf8();
                    chars.next();
                } else if n == '.'
                    && text[s..e]
                        .rsplit(['.'])
                        .next()
                        .is_some_and(|w| w.chars().count() == 1)
                {
                    e = p + 1;
                    chars.next();
                    break;
                } else {
                    break;
                }
            } else {
                break;
            }
        }
        out.push((s, e));
    }
    out
}

fn starts_upper(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

fn is_number(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(sentence: &str, gazetteer: &Gazetteer) -> Vec<(&'static str, String)> {
        salient_spans(sentence, gazetteer)
            .into_iter()
            .map(|s| {
                let kind = match s.kind {
                    SpanKind::Date => "date",
                    SpanKind::Entity => "entity",
                };
                (kind, sentence[s.start..s.end].to_string())
            })
            .collect()
    }

    fn pairs(items: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        items.iter().map(|(k, t)| (*k, t.to_string())).collect()
    }

    #[test]
    fn dates_in_the_usual_english_orders() {
        let g = Gazetteer::default();
        assert_eq!(
            tagged(
                "The treaty was signed on 4 July 1776 and ratified on March 3, 1791.",
                &g
            ),
            pairs(&[("date", "4 July 1776"), ("date", "March 3, 1791")])
        );
        assert_eq!(
            tagged(
                "It peaked in the 1990s, fell in May 2004 and rose by Sept. 12th.",
                &g
            ),
            pairs(&[
                ("date", "1990s"),
                ("date", "May 2004"),
                ("date", "Sept. 12th")
            ])
        );
        // Numbers that are not years are left out.
        assert!(tagged("it has 1,234 members and 56 ships, 3.5 km long", &g).is_empty());
    }

    #[test]
    fn names_from_capitals_and_the_gazetteer() {
        let g =
            Gazetteer::from_titles(["Leonardo da Vinci", "Mona Lisa", "Water", "the Netherlands"]);
        assert_eq!(g.len(), 3, "a title starting in lower case is no name");
        assert_eq!(
            tagged(
                "Leonardo da Vinci painted the Mona Lisa in Florence in 1503.",
                &g
            ),
            pairs(&[
                ("entity", "Leonardo da Vinci"),
                ("entity", "Mona Lisa"),
                ("entity", "Florence"),
                ("date", "1503"),
            ])
        );
        assert_eq!(
            tagged("The Bank of England was founded by William Paterson.", &g),
            pairs(&[
                ("entity", "Bank of England"),
                ("entity", "William Paterson")
            ])
        );
        // A capitalised first word alone is not a name; a connector does not end one.
        assert_eq!(
            tagged("Rivers of the world flow into the Atlantic Ocean of", &g),
            pairs(&[("entity", "Atlantic Ocean")])
        );
        assert_eq!(
            tagged("In the U.S. and AT&T's home, O'Neill met Jean-Paul.", &g),
            pairs(&[
                ("entity", "U.S."),
                ("entity", "AT&T"),
                ("entity", "O'Neill"),
                ("entity", "Jean-Paul")
            ])
        );
    }

    #[test]
    fn random_text_never_panics_and_spans_lie_on_char_boundaries() {
        let alphabet: Vec<char> = "aZ Mé.-'&\u{a0}日1 9Ju".chars().collect();
        let g = Gazetteer::from_titles(["Zé Ma", "M"]);
        let mut rng = crate::rng::SplitMix64::new(11);
        for _ in 0..2000 {
            let len = (rng.next_u64() % 40) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            let spans = salient_spans(&text, &g);
            for pair in spans.windows(2) {
                assert!(
                    pair[0].end <= pair[1].start,
                    "overlap in {text:?}: {spans:?}"
                );
            }
            for s in &spans {
                assert!(
                    text.is_char_boundary(s.start)
                        && text.is_char_boundary(s.end)
                        && s.start < s.end
                );
            }
        }
    }

    #[test]
    fn centuries_and_eras_before_the_year_are_dates() {
        let g = Gazetteer::default();
        assert_eq!(
            tagged(
                "Built in the 20th century and rebuilt in the mid-16th century, it fell in AD 609.",
                &g
            ),
            pairs(&[
                ("date", "20th century"),
                ("date", "mid-16th century"),
                ("date", "AD 609")
            ])
        );
        assert_eq!(
            tagged("It dates from the 5th century BC.", &g),
            pairs(&[("date", "5th century BC")])
        );
    }

    #[test]
    fn punctuation_ends_a_run_of_capitals() {
        let g = Gazetteer::default();
        assert_eq!(
            tagged(
                "It starred Claude Rains, Conrad Veidt and Peter Lorre in Athens, Greece.",
                &g
            ),
            pairs(&[
                ("entity", "Claude Rains"),
                ("entity", "Conrad Veidt"),
                ("entity", "Peter Lorre"),
                ("entity", "Athens"),
                ("entity", "Greece")
            ])
        );
        assert_eq!(
            tagged("the International System of Units (SI) is used", &g),
            pairs(&[
                ("entity", "International System of Units"),
                ("entity", "SI")
            ])
        );
    }

    #[test]
    fn a_title_opening_a_sentence_is_a_name_unless_the_corpus_writes_it_in_lower_case() {
        let texts = ["Beowulf is an Old English poem.", "Clean water is scarce."];
        let g = Gazetteer::from_titles(["Beowulf", "Water"]).with_common_words(texts);
        assert_eq!(
            tagged("Beowulf is an Old English poem.", &g),
            pairs(&[("entity", "Beowulf"), ("entity", "Old English")])
        );
        assert!(tagged("Water covers most of the planet.", &g).is_empty());
        // Without the corpus's text every one-word title is taken for a name.
        let bare = Gazetteer::from_titles(["Water"]);
        assert_eq!(
            tagged("Water covers most of the planet.", &bare),
            pairs(&[("entity", "Water")])
        );
    }

    #[test]
    fn a_title_with_a_disambiguation_is_matched_without_it() {
        let g = Gazetteer::from_titles(["Mercury (planet)"]);
        // The longer of a title and a run of capitals wins.
        let eras = Gazetteer::from_titles(["Paleozoic"]);
        assert_eq!(
            tagged("It is the first period of the Paleozoic Era.", &eras),
            pairs(&[("entity", "Paleozoic Era")])
        );
        assert_eq!(
            tagged("It orbits close to Mercury today", &g),
            pairs(&[("entity", "Mercury")])
        );
    }
}
