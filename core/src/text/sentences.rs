//! Sentences of a passage, for REALM's salient-span masking (a query is one sentence with one
//! span masked): a sentence ends at `.`, `!` or `?` (closing quotes and brackets kept with it)
//! followed by white space and an upper-case letter, a digit or an opening quote, unless the
//! word before the stop is an abbreviation or an initial ("Dr. Smith", "J. R. R. Tolkien").

/// Words that end in a period without ending a sentence (compared without the period, case
/// kept: "No." is an abbreviation, "no." ends a sentence).
const ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Dr", "Prof", "Sr", "Jr", "St", "Mt", "Ft", "Gen", "Col", "Lt", "Sgt",
    "Capt", "Cmdr", "Adm", "Gov", "Sen", "Rep", "Rev", "Hon", "Pres", "Inc", "Ltd", "Co", "Corp",
    "Bros", "No", "Nos", "vs", "etc", "e.g", "i.e", "cf", "al", "ca", "approx", "Jan", "Feb",
    "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "U.S", "U.K", "U.N",
    "D.C", "Ph.D", "B.C", "A.D", "a.m", "p.m", "Fig", "Vol", "pp", "Ed", "Eds",
];

/// Byte ranges of the sentences of `text`, trimmed, in order; together they cover every
/// non-blank character.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b'.' | b'!' | b'?') {
            // The stop and any closing quotes or brackets right after it.
            let mut end = i + 1;
            while end < bytes.len() && matches!(bytes[end], b'"' | b'\'' | b')' | b']') {
                end += 1;
            }
            // Then white space, then something that opens a sentence.
            let mut next = end;
            while next < bytes.len() && bytes[next].is_ascii_whitespace() {
                next += 1;
            }
            let opens = next < bytes.len()
                && text[next..].chars().next().is_some_and(|n| {
                    n.is_uppercase() || n.is_ascii_digit() || n == '"' || n == '“'
                });
            if next > end && opens && !(c == b'.' && abbreviation_before(text, i)) {
                push_trimmed(text, start, end, &mut out);
                start = next;
                i = next;
                continue;
            }
        }
        i += 1;
    }
    push_trimmed(text, start, text.len(), &mut out);
    out
}

/// Whether the word ending at the period at `dot` is an abbreviation or an initial.
fn abbreviation_before(text: &str, dot: usize) -> bool {
    let word_start = text[..dot]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || c == '(' || c == '"')
        .map_or(0, |(p, c)| p + c.len_utf8());
    let word = &text[word_start..dot];
    let mut chars = word.chars();
    let initial = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
    initial || ABBREVIATIONS.contains(&word)
}

fn push_trimmed(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let piece = &text[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    if lead + trail < piece.len() {
        out.push((start + lead, end - trail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        sentences(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    #[test]
    fn sentences_end_at_stops_before_a_capital() {
        assert_eq!(
            split("It rained. Then it snowed! Did it stop? \"Yes,\" he said."),
            [
                "It rained.",
                "Then it snowed!",
                "Did it stop?",
                "\"Yes,\" he said."
            ]
        );
        assert_eq!(
            split("Founded in 1851. 1852 was worse."),
            ["Founded in 1851.", "1852 was worse."]
        );
        assert_eq!(
            split("  one line without a stop  "),
            ["one line without a stop"]
        );
        assert!(split("   ").is_empty());
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        assert_eq!(
            split("Dr. Smith met J. R. R. Tolkien in the U.S. in 1950. They spoke."),
            [
                "Dr. Smith met J. R. R. Tolkien in the U.S. in 1950.",
                "They spoke."
            ]
        );
        assert_eq!(
            split("It was 3.5 m long. It sank."),
            ["It was 3.5 m long.", "It sank."]
        );
        assert_eq!(
            split("He left (in 1990.) She stayed."),
            ["He left (in 1990.)", "She stayed."]
        );
        // A lower-case word after the stop continues the sentence.
        assert_eq!(
            split("See the Fig. below. Done."),
            ["See the Fig. below.", "Done."]
        );
    }

    #[test]
    fn non_ascii_white_space_and_letters_around_the_stops() {
        assert_eq!(
            split("Die Straße\u{a0}St. Élysée. Été\u{a0}vient. Ça va."),
            ["Die Straße\u{a0}St. Élysée.", "Été\u{a0}vient.", "Ça va."]
        );
    }

    #[test]
    fn random_text_never_panics_and_sentences_lie_on_char_boundaries() {
        let alphabet: Vec<char> = "aZ .!?\"'()\u{a0}é€日\n1".chars().collect();
        let mut rng = crate::rng::SplitMix64::new(7);
        for _ in 0..2000 {
            let len = (rng.next_u64() % 40) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            for (s, e) in sentences(&text) {
                assert!(
                    text.is_char_boundary(s) && text.is_char_boundary(e) && s < e,
                    "{text:?}"
                );
            }
        }
    }
}
