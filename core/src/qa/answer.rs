//! Answer matching as ORQA and REALM evaluate: a prediction is right when, normalised as the
//! official SQuAD script does (after Unicode NFD, as ORQA adds), it equals any gold answer;
//! CuratedTrec's gold answers are regular expressions matched case-insensitively at the start
//! of the prediction (DrQA's `regex_match`).

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::Error;

/// The gold answers of one question.
#[derive(Debug, Clone)]
pub enum Gold {
    /// Any of these strings, compared after [`normalize_answer`].
    Strings(Vec<String>),
    /// A regular expression (CuratedTrec): the prediction must match at its start, ignoring case.
    Pattern(AnswerPattern),
}

/// A compiled CuratedTrec answer pattern and its source text.
#[derive(Debug, Clone)]
pub struct AnswerPattern {
    pub source: String,
    /// Anchored at the start: the correctness test.
    regex: Regex,
    /// Anywhere: where an answer occurs in a passage.
    anywhere: Regex,
}

impl AnswerPattern {
    /// Compiles `source` as DrQA does (`re.IGNORECASE | re.UNICODE | re.MULTILINE`, `match`:
    /// anchored at the start of the text, not at its end).
    pub fn new(source: &str) -> Result<Self, String> {
        let pattern = python_escapes(source);
        let regex = Regex::new(&format!(r"(?im)\A(?:{pattern})")).map_err(|e| e.to_string())?;
        // As DPR's `regex_match` compiles it for recall: `^` and `$` also at each line.
        let anywhere = Regex::new(&format!(r"(?im)(?:{pattern})")).map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_string(),
            regex,
            anywhere,
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// Whether the pattern matches a non-empty part of `text` anywhere.
    pub fn occurs_in(&self, text: &str) -> bool {
        self.anywhere.find_iter(text).any(|m| !m.is_empty())
    }

    /// Byte ranges of the pattern's non-empty matches anywhere in `text`.
    pub fn find_all(&self, text: &str) -> Vec<(usize, usize)> {
        self.anywhere
            .find_iter(text)
            .filter(|m| !m.is_empty())
            .map(|m| (m.start(), m.end()))
            .collect()
    }
}

/// Python's `re` reads a backslash before a non-ASCII character as that character
/// (CuratedTrec writes `Sn\ě\žka`); Rust's `regex` refuses the escape, so it is made literal.
fn python_escapes(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| !n.is_ascii()) {
            let literal = chars.next().expect("peeked");
            out.push_str(&regex::escape(&literal.to_string()));
        } else {
            out.push(c);
            if c == '\\'
                && let Some(n) = chars.next()
            {
                out.push(n);
            }
        }
    }
    out
}

impl Gold {
    /// Whether `prediction` is a correct answer (exact match, or the pattern).
    pub fn is_correct(&self, prediction: &str) -> bool {
        match self {
            Gold::Strings(answers) => {
                let p = normalize_answer(prediction);
                answers.iter().any(|a| normalize_answer(a) == p)
            }
            Gold::Pattern(pattern) => pattern.matches(prediction),
        }
    }

    /// Whether `passage` contains a gold answer: a normalised answer as whole words of the
    /// normalised passage, or the pattern anywhere (the answerability ceiling and recall@k).
    pub fn occurs_in(&self, passage: &str) -> bool {
        self.occurs_in_prepared(&PreparedPassage::new(passage))
    }

    /// [`Gold::occurs_in`] on a passage normalised once for many questions.
    pub fn occurs_in_prepared(&self, passage: &PreparedPassage) -> bool {
        match self {
            Gold::Strings(answers) => answers.iter().any(|a| {
                let a = normalize_answer(a);
                !a.is_empty() && passage.normalized.contains(&format!(" {a} "))
            }),
            Gold::Pattern(pattern) => pattern.occurs_in(&passage.text),
        }
    }

    /// DPR's `has_answer`, the test of retrieval recall@k: the passage and each answer string,
    /// after Unicode NFD, split into [`dpr_tokens`] and compared as lower-case token sequences
    /// (so "Tesla" is in "Tesla's" and "1856" in "1856–1943", and "The Who" is not in "who");
    /// a pattern is searched anywhere in the NFD passage, ignoring case, `^` and `$` also at
    /// each line. One difference: a pattern's empty match does not count (DPR counts it; no
    /// CuratedTrec test pattern has one).
    pub fn has_answer(&self, passage: &str) -> bool {
        let passage: String = passage.nfd().collect();
        match self {
            Gold::Strings(answers) => {
                let words = lower(dpr_tokens(&passage));
                answers.iter().any(|a| {
                    let answer = lower(dpr_tokens(&a.nfd().collect::<String>()));
                    !answer.is_empty() && words.windows(answer.len()).any(|w| w == answer)
                })
            }
            Gold::Pattern(pattern) => pattern.occurs_in(&passage),
        }
    }

    /// Byte ranges of `passage` where a gold answer occurs, for the reader's weak supervision
    /// on retrieved passages: each answer string ignoring case at word boundaries, or each
    /// match of the pattern. Sorted, without repeats.
    pub fn find_in(&self, passage: &str) -> Vec<(usize, usize)> {
        let mut found = match self {
            Gold::Strings(answers) => answers
                .iter()
                .map(|a| a.trim())
                .filter(|a| !a.is_empty())
                .filter_map(|a| Regex::new(&format!(r"(?i)\b{}\b", regex::escape(a))).ok())
                .flat_map(|re| {
                    re.find_iter(passage)
                        .map(|m| (m.start(), m.end()))
                        .collect::<Vec<_>>()
                })
                .collect(),
            Gold::Pattern(pattern) => pattern.find_all(passage),
        };
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// DPR's `SimpleTokenizer`: runs of letters, digits and combining marks, and every other
/// character that is neither a separator nor a control, one token each.
pub fn dpr_tokens(text: &str) -> Vec<&str> {
    static TOKEN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| Regex::new(r"[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]").expect("a valid pattern"))
        .find_iter(text)
        .map(|m| m.as_str())
        .collect()
}

fn lower(tokens: Vec<&str>) -> Vec<String> {
    tokens.into_iter().map(str::to_lowercase).collect()
}

/// A passage and its normalised text between spaces, for whole-word answer checks.
#[derive(Debug, Clone)]
pub struct PreparedPassage {
    pub text: String,
    normalized: String,
}

impl PreparedPassage {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            normalized: format!(" {} ", normalize_answer(text)),
        }
    }
}

/// The official SQuAD normalisation with ORQA's NFD first: Unicode NFD, lower case, ASCII
/// punctuation removed, the articles a/an/the removed as whole words, whitespace collapsed.
pub fn normalize_answer(text: &str) -> String {
    let lower: String = text.nfd().collect::<String>().to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // Python's `\b(a|an|the)\b` on Unicode text: words are runs of alphanumerics and `_`.
    let mut out = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compiles a CuratedTrec pattern, naming the file and line on failure.
pub fn compile_pattern(source: &str, file: &str, line: usize) -> Result<AnswerPattern, Error> {
    AnswerPattern::new(source).map_err(|message| Error::Data {
        file: file.to_string(),
        line,
        message: format!("answer pattern does not compile: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(answers: &[&str]) -> Gold {
        Gold::Strings(answers.iter().map(|s| s.to_string()).collect())
    }

    // Cases follow the official SQuAD v1.1 evaluate script's normalize_answer.
    #[test]
    fn normalisation_follows_the_squad_script() {
        assert_eq!(normalize_answer("The Beatles"), "beatles");
        assert_eq!(
            normalize_answer("  a   cat, an owl and THE dog. "),
            "cat owl and dog"
        );
        assert_eq!(normalize_answer("Tesla's"), "teslas");
        assert_eq!(normalize_answer("U.S.A."), "usa");
        assert_eq!(normalize_answer("theory"), "theory"); // articles only as whole words
        assert_eq!(normalize_answer("Anthem"), "anthem");
        assert_eq!(normalize_answer("1,000"), "1000");
        assert_eq!(normalize_answer("rock-and-roll"), "rockandroll");
        assert_eq!(normalize_answer("\tnew\nyork "), "new york");
        assert_eq!(normalize_answer("the"), "");
        // Non-ASCII punctuation stays, as string.punctuation is ASCII only.
        assert_eq!(normalize_answer("£5—10"), "£5—10");
    }

    #[test]
    fn unicode_is_compared_after_nfd() {
        // Composed and decomposed forms of the same text match; accents are not dropped.
        assert_eq!(normalize_answer("Café"), normalize_answer("Cafe\u{301}"));
        assert_eq!(normalize_answer("CAFÉ"), normalize_answer("café"));
        assert_ne!(normalize_answer("café"), normalize_answer("cafe"));
    }

    #[test]
    fn exact_match_takes_any_gold_answer() {
        let gold = strings(&["Denver Broncos", "the Broncos"]);
        assert!(gold.is_correct("broncos"));
        assert!(gold.is_correct("Denver Broncos."));
        assert!(!gold.is_correct("Denver"));
        assert!(strings(&["a"]).is_correct("")); // both normalise to ""
    }

    #[test]
    fn answers_are_found_in_passages_at_word_boundaries() {
        let passage = "The Broncos beat the Panthers; broncos fans cheered. Broncosaurus.";
        let found = strings(&["Broncos", "the Panthers", " "]).find_in(passage);
        let texts: Vec<&str> = found.iter().map(|&(s, e)| &passage[s..e]).collect();
        assert_eq!(texts, ["Broncos", "the Panthers", "broncos"]);
        let years = Gold::Pattern(AnswerPattern::new(r"19[0-9]{2}").unwrap());
        assert_eq!(years.find_in("from 1943 to 1961"), [(5, 9), (13, 17)]);
        assert!(strings(&["Denver"]).find_in(passage).is_empty());
    }

    // Cases worked through DPR's `has_answer` (dpr/data/qa_validation.py) by hand.
    #[test]
    fn recall_finds_answers_as_dpr_token_sequences() {
        assert_eq!(
            dpr_tokens("Tesla's coil (1856–1943), Franco-Prussian."),
            [
                "Tesla", "'", "s", "coil", "(", "1856", "–", "1943", ")", ",", "Franco", "-",
                "Prussian", "."
            ]
        );
        let passage = "Nikola Tesla's coil (1856–1943) and the Franco-Prussian War; who knew? US.";
        assert!(strings(&["Nikola Tesla"]).has_answer(passage));
        assert!(strings(&["1856"]).has_answer(passage));
        assert!(strings(&["prussian"]).has_answer(passage));
        assert!(strings(&["Franco-Prussian war"]).has_answer(passage));
        // The SQuAD normalisation makes these "who" and "us"; DPR keeps the article and dots.
        assert!(!strings(&["The Who"]).has_answer(passage));
        assert!(!strings(&["U.S."]).has_answer(passage));
        assert!(!strings(&["Tesla coil"]).has_answer(passage)); // "'s" lies between
        assert!(!strings(&["", " "]).has_answer(passage));
        // Composed and decomposed forms meet after NFD.
        assert!(strings(&["Café"]).has_answer("the cafe\u{301} opened"));
        // A pattern anywhere, `^` and `$` at each line; an empty match does not count.
        let nine = Gold::Pattern(AnswerPattern::new(r"^\s*9\s*$").unwrap());
        assert!(nine.has_answer("Players per side:\n9\nInnings: 9 or more"));
        assert!(!nine.has_answer("Innings: 9 or more"));
        assert!(!Gold::Pattern(AnswerPattern::new("x?").unwrap()).has_answer("abc"));
    }

    #[test]
    fn patterns_match_at_the_start_ignoring_case() {
        let p = AnswerPattern::new(r"After the Fall|Finishing the Play").unwrap();
        let gold = Gold::Pattern(p);
        assert!(gold.is_correct("after the fall"));
        assert!(gold.is_correct("After the Fall, a play")); // match, not fullmatch
        assert!(!gold.is_correct("the play After the Fall")); // anchored at the start
        // A backslash before a non-ASCII letter is that letter, as in Python (CuratedTrec 159).
        let czech = AnswerPattern::new(r"Sne[zž]ka|Sn\ě\žka").unwrap();
        assert!(czech.matches("Sněžka") && czech.matches("snezka"));
        assert!(AnswerPattern::new(r"a\\ě").unwrap().matches("a\\ě")); // an escaped backslash stays one
        let tab = AnswerPattern::new("a\tb").unwrap();
        assert!(tab.matches("A\tB"));
        assert!(AnswerPattern::new("(unclosed").is_err());
    }

    #[test]
    fn occurrences_are_whole_words_or_pattern_matches_anywhere() {
        let gold = strings(&["Tesla"]);
        assert!(gold.occurs_in("Nikola Tesla was born in 1856."));
        assert!(!gold.occurs_in("Teslas are cars.")); // "teslas" is another word
        let pattern = Gold::Pattern(AnswerPattern::new(r"18\d\d").unwrap());
        assert!(pattern.occurs_in("born 1856, died 1943")); // anywhere, not only at the start
        assert!(!pattern.occurs_in("born 1956"));
    }
}
