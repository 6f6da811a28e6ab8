//! Pre-tokenizers of byte-level BPE vocabularies: split text into words before merging, exactly as
//! llama.cpp does for each `tokenizer.ggml.pre`.
//!
//! llama.cpp runs a list of regexes per pre-tokenizer type, each one splitting the pieces the previous
//! one left (`unicode_regex_split`). The regexes it runs through hand-written matchers (GPT-2,
//! llama3, qwen2, qwen3.5) are transcribed here from those matchers, quirks included; the few it runs
//! through `std::regex` over its "collapsed" category text are simple character-class regexes,
//! written here as the equivalent scans. Positions are counted in code points, as llama.cpp counts.

use super::unicode::{ascii_lower, flags, Flags};
use super::TokenizerError;
use std::ops::Range;

/// One splitting pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (and `\s+`).
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// As `Llama3` with `\p{N}` for `\p{N}{1,3}`.
    Qwen2,
    /// As `Qwen2` with `[\p{L}\p{M}]` for `\p{L}`.
    Qwen35,
    /// `[\p{P}\$\+<=>\^~\|]+`.
    PunctuationRuns,
    /// `\p{N}`.
    EachNumber,
    /// `\p{N}+`.
    NumberRuns,
    /// `[0-9][0-9][0-9]`.
    AsciiDigitTriples,
}

/// The pre-tokenizer families implemented (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_*` with these regexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// `LLAMA_VOCAB_PRE_TYPE_DEFAULT`: punctuation runs, GPT-2, number runs, ASCII digit triples.
    Default,
    /// GPT-2's regex alone.
    Gpt2,
    /// Llama 3's regex (digits in groups of up to three).
    Llama3,
    /// Each digit alone, then GPT-2's regex (StarCoder, SmolLM, ...).
    Smollm,
    /// Qwen2's regex (each digit alone).
    Qwen2,
    /// Qwen3.5's regex (letters and marks together).
    Qwen35,
}

impl PreTokenizerKind {
    fn stages(self) -> &'static [Stage] {
        use Stage::*;
        match self {
            Self::Default => &[PunctuationRuns, Gpt2, NumberRuns, AsciiDigitTriples],
            Self::Gpt2 => &[Gpt2],
            Self::Llama3 => &[Llama3],
            Self::Smollm => &[EachNumber, Gpt2],
            Self::Qwen2 => &[Qwen2],
            Self::Qwen35 => &[Qwen35],
        }
    }
}

/// What a `tokenizer.ggml.pre` name sets besides the splitter (llama.cpp's `llama_vocab::impl::load`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreTokenizerConfig {
    pub kind: PreTokenizerKind,
    /// Detokenization removes spaces before `?!.,` and some apostrophes (`clean_up_tokenization_spaces`).
    pub clean_spaces: bool,
    /// A word that is itself a token is emitted whole, without merging.
    pub ignore_merges: bool,
    /// The default for `add_bos` before `tokenizer.ggml.add_bos_token` is read.
    pub add_bos: bool,
    /// The vocabulary has no BOS token whatever the metadata says (ChatGLM).
    pub no_bos: bool,
}

/// Pre-tokenizer names accepted, with the family each one selects. Names llama.cpp maps to the same
/// regexes and the same settings are accepted as aliases.
const NAMES: &[(&str, PreTokenizerKind, Flags3)] = {
    use PreTokenizerKind::*;
    const CLEAN: Flags3 = Flags3 {
        clean: true,
        ignore_merges: false,
        add_bos: false,
        no_bos: false,
    };
    const RAW: Flags3 = Flags3 {
        clean: false,
        ..CLEAN
    };
    const LLAMA3: Flags3 = Flags3 {
        ignore_merges: true,
        add_bos: true,
        ..CLEAN
    };
    const GLM: Flags3 = Flags3 {
        no_bos: true,
        ..CLEAN
    };
    const GLM4: Flags3 = Flags3 {
        ignore_merges: true,
        ..GLM
    };
    &[
        ("default", Default, CLEAN),
        ("llama3", Llama3, LLAMA3),
        ("llama-v3", Llama3, LLAMA3),
        ("llama-bpe", Llama3, LLAMA3),
        ("falcon3", Llama3, LLAMA3),
        ("falcon-h1", Llama3, LLAMA3),
        ("pixtral", Llama3, LLAMA3),
        ("midm-2.0", Llama3, LLAMA3),
        ("lfm2", Llama3, LLAMA3),
        ("jina-v5-nano", Llama3, LLAMA3),
        ("dbrx", Llama3, CLEAN),
        ("smaug-bpe", Llama3, CLEAN),
        ("chatglm-bpe", Llama3, GLM),
        ("glm4", Llama3, GLM4),
        ("glm5", Llama3, GLM4),
        ("gpt-2", Gpt2, CLEAN),
        ("phi-2", Gpt2, CLEAN),
        ("gigachat", Gpt2, CLEAN),
        ("a.x-4.0", Gpt2, CLEAN),
        ("mellum", Gpt2, CLEAN),
        ("mpt", Gpt2, CLEAN),
        ("olmo", Gpt2, CLEAN),
        ("jais", Gpt2, CLEAN),
        ("exaone4", Gpt2, CLEAN),
        ("trillion", Gpt2, RAW),
        ("granite-docling", Gpt2, RAW),
        ("smollm", Smollm, RAW),
        ("command-r", Smollm, RAW),
        ("starcoder", Smollm, CLEAN),
        ("refact", Smollm, CLEAN),
        ("codeshell", Smollm, CLEAN),
        ("exaone", Smollm, CLEAN),
        ("minerva-7b", Smollm, CLEAN),
        ("mellum2", Smollm, CLEAN),
        ("qwen2", Qwen2, RAW),
        ("deepseek-r1-qwen", Qwen2, RAW),
        ("kormo", Qwen2, RAW),
        ("f2llmv2", Qwen2, RAW),
        ("hunyuan", Qwen2, RAW),
        ("solar-open", Qwen2, RAW),
        ("grok-2", Qwen2, RAW),
        ("megrez", Qwen2, CLEAN),
        ("stablelm2", Qwen2, CLEAN),
        ("qwen35", Qwen35, RAW),
    ]
};

#[derive(Debug, Clone, Copy)]
struct Flags3 {
    clean: bool,
    ignore_merges: bool,
    add_bos: bool,
    no_bos: bool,
}

impl PreTokenizerConfig {
    /// The settings for a `tokenizer.ggml.pre` value; `None` (key absent) is `default`, as in
    /// llama.cpp.
    pub fn from_name(name: Option<&str>) -> Result<Self, TokenizerError> {
        let name = name.unwrap_or("default");
        let (_, kind, f) = NAMES.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
            TokenizerError::UnsupportedPreTokenizer {
                name: name.to_string(),
                supported: Self::supported_names().join(", "),
            }
        })?;
        Ok(Self {
            kind: *kind,
            clean_spaces: f.clean,
            ignore_merges: f.ignore_merges,
            add_bos: f.add_bos,
            no_bos: f.no_bos,
        })
    }

    /// Every accepted `tokenizer.ggml.pre` name.
    pub fn supported_names() -> Vec<&'static str> {
        NAMES.iter().map(|(n, _, _)| *n).collect()
    }
}

/// Splits `text` into words: byte ranges that cover it, in order.
pub(super) fn split(kind: PreTokenizerKind, text: &str) -> Vec<Range<usize>> {
    let cpts: Vec<char> = text.chars().collect();
    if cpts.is_empty() {
        return Vec::new();
    }
    let fl: Vec<Flags> = cpts.iter().map(|&c| flags(c)).collect();
    let mut segments = vec![cpts.len()];
    for &stage in kind.stages() {
        segments = run_stage(stage, &cpts, &fl, &segments);
    }
    // Code point lengths to byte ranges.
    let mut out = Vec::with_capacity(segments.len());
    let (mut byte, mut cp) = (0usize, 0usize);
    for len in segments {
        let start = byte;
        for c in &cpts[cp..cp + len] {
            byte += c.len_utf8();
        }
        cp += len;
        out.push(start..byte);
    }
    out
}

fn run_stage(stage: Stage, cpts: &[char], fl: &[Flags], segments: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(segments.len() * 2);
    let mut start = 0;
    for &len in segments {
        let seg = Segment {
            cpts,
            fl,
            ini: start,
            end: start + len,
        };
        match stage {
            Stage::Gpt2 => seg.gpt2(&mut out),
            Stage::Llama3 => seg.llama3_family(Digits::UpToThree, false, &mut out),
            Stage::Qwen2 => seg.llama3_family(Digits::One, false, &mut out),
            Stage::Qwen35 => seg.llama3_family(Digits::One, true, &mut out),
            Stage::PunctuationRuns => seg.class_matches(is_default_punct, true, &mut out),
            Stage::EachNumber => seg.class_matches(is_number_class, false, &mut out),
            Stage::NumberRuns => seg.class_matches(is_number_class, true, &mut out),
            Stage::AsciiDigitTriples => seg.digit_triples(&mut out),
        }
        start += len;
    }
    out
}

/// `[\p{P}\$\+<=>\^~\|]` as llama.cpp evaluates it: ASCII by its own class list, other code points
/// by category (non-ASCII whitespace never matches).
fn is_default_punct(c: char, f: Flags) -> bool {
    if c.is_ascii() {
        matches!(c, '!'..='#' | '%'..='*' | ','..='/' | ':' | ';' | '?' | '@' | '['..=']' | '_' | '{' | '}'
            | '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
    } else {
        !f.is_whitespace() && f.is_punctuation()
    }
}

/// `\p{N}` as llama.cpp evaluates it: ASCII digits, or a non-ASCII number.
fn is_number_class(c: char, f: Flags) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        !f.is_whitespace() && f.is_number()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Digits {
    One,
    UpToThree,
}

/// One piece being split further; positions are absolute code point indices.
struct Segment<'a> {
    cpts: &'a [char],
    fl: &'a [Flags],
    ini: usize,
    end: usize,
}

/// Emits piece lengths, remembering where the previous piece ended (llama.cpp's `_add_token`).
struct Emitter<'o> {
    out: &'o mut Vec<usize>,
    prev_end: usize,
}

impl Emitter<'_> {
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

impl Segment<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cpts[pos])
    }

    fn flags(&self, pos: usize) -> Flags {
        if self.ini <= pos && pos < self.end {
            self.fl[pos]
        } else {
            Flags::default()
        }
    }

    /// `'s|'t|'m|'d` (2) or `'re|'ve|'ll` (3) at `pos`, case-folded if `fold`.
    fn contraction(&self, pos: usize, fold: bool) -> Option<usize> {
        if self.cpt(pos) != Some('\'') || pos + 1 >= self.end {
            return None;
        }
        let f = |c: char| if fold { ascii_lower(c) } else { c };
        let next = f(self.cpts[pos + 1]);
        if matches!(next, 's' | 't' | 'm' | 'd') {
            return Some(2);
        }
        if pos + 2 < self.end {
            let nn = f(self.cpts[pos + 2]);
            if matches!((next, nn), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return Some(3);
            }
        }
        None
    }

    /// llama.cpp's `unicode_regex_split_custom_gpt2`.
    fn gpt2(&self, out: &mut Vec<usize>) {
        let mut e = Emitter {
            out,
            prev_end: self.ini,
        };
        let mut pos = self.ini;
        while pos < self.end {
            let cpt = self.cpts[pos];
            let flags = self.fl[pos];
            if let Some(n) = self.contraction(pos, false) {
                pos += e.add(pos + n);
                continue;
            }
            let space = usize::from(cpt == ' ');
            let mut f2 = if cpt == ' ' {
                self.flags(pos + 1)
            } else {
                flags
            };
            // <space>?\p{L}+
            if f2.is_letter() {
                pos += space;
                while f2.is_letter() {
                    pos += 1;
                    f2 = self.flags(pos);
                }
                e.add(pos);
                continue;
            }
            // <space>?\p{N}+
            if f2.is_number() {
                pos += space;
                while f2.is_number() {
                    pos += 1;
                    f2 = self.flags(pos);
                }
                e.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+
            let other =
                |f: Flags| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.any();
            if other(f2) {
                pos += space;
                while other(f2) {
                    pos += 1;
                    f2 = self.flags(pos);
                }
                e.add(pos);
                continue;
            }
            let mut n_ws = 0;
            while self.flags(pos + n_ws).is_whitespace() {
                n_ws += 1;
            }
            // \s+(?!\S)
            if n_ws > 1 && self.cpt(pos + n_ws).is_some() {
                pos += n_ws - 1;
                e.add(pos);
                continue;
            }
            // \s+
            if n_ws > 0 {
                pos += n_ws;
                e.add(pos);
                continue;
            }
            pos += 1;
            e.add(pos);
        }
    }

    /// llama.cpp's `unicode_regex_split_custom_llama3`, `_qwen2` (one digit per piece) and `_qwen35`
    /// (`marks`: combining marks count as letters).
    fn llama3_family(&self, digits: Digits, marks: bool, out: &mut Vec<usize>) {
        let mut e = Emitter {
            out,
            prev_end: self.ini,
        };
        let letter = |f: Flags| f.is_letter() || (marks && f.is_mark());
        let mut pos = self.ini;
        while pos < self.end {
            let cpt = self.cpts[pos];
            let flags = self.fl[pos];
            if let Some(n) = self.contraction(pos, true) {
                pos += e.add(pos + n);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cpt == '\r' || cpt == '\n' || flags.is_number())
                && (letter(flags) || letter(self.flags(pos + 1)))
            {
                pos += 1;
                while letter(self.flags(pos)) {
                    pos += 1;
                }
                e.add(pos);
                continue;
            }
            // \p{N}{1,3} or \p{N}
            if flags.is_number() {
                match digits {
                    Digits::One => {
                        pos += 1;
                        e.add(pos);
                    }
                    Digits::UpToThree => {
                        let mut ini = pos;
                        while self.flags(pos).is_number() {
                            pos += 1;
                            if pos - ini >= 3 {
                                e.add(pos);
                                ini = pos;
                            }
                        }
                        e.add(pos);
                    }
                }
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let other = |f: Flags| !(f.is_whitespace() || letter(f) || f.is_number()) && f.any();
            let mut f2 = if cpt == ' ' {
                self.flags(pos + 1)
            } else {
                flags
            };
            // llama.cpp tests the first code point's own flags for "any" here, not `f2`'s.
            if !(f2.is_whitespace() || letter(f2) || f2.is_number()) && flags.any() {
                pos += usize::from(cpt == ' ');
                while other(f2) {
                    pos += 1;
                    f2 = self.flags(pos);
                }
                while matches!(self.cpt(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                e.add(pos);
                continue;
            }
            let mut n_ws = 0;
            let mut last_newline_end = 0;
            while self.flags(pos + n_ws).is_whitespace() {
                if matches!(self.cpt(pos + n_ws), Some('\r' | '\n')) {
                    last_newline_end = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            // \s*[\r\n]+
            if last_newline_end > 0 {
                pos = last_newline_end;
                e.add(pos);
                continue;
            }
            // \s+(?!\S)
            if n_ws > 1 && self.cpt(pos + n_ws).is_some() {
                pos += n_ws - 1;
                e.add(pos);
                continue;
            }
            // \s+
            if n_ws > 0 {
                pos += n_ws;
                e.add(pos);
                continue;
            }
            pos += 1;
            e.add(pos);
        }
    }

    /// A one-class regex (`[class]` or `[class]+` when `runs`) as `std::regex_iterator` splits: each
    /// match is a piece, and so is each gap between matches.
    fn class_matches(&self, class: fn(char, Flags) -> bool, runs: bool, out: &mut Vec<usize>) {
        let mut gap_start = self.ini;
        let mut pos = self.ini;
        while pos < self.end {
            if !class(self.cpts[pos], self.fl[pos]) {
                pos += 1;
                continue;
            }
            let m_start = pos;
            pos += 1;
            if runs {
                while pos < self.end && class(self.cpts[pos], self.fl[pos]) {
                    pos += 1;
                }
            }
            if m_start > gap_start {
                out.push(m_start - gap_start);
            }
            out.push(pos - m_start);
            gap_start = pos;
        }
        if self.end > gap_start {
            out.push(self.end - gap_start);
        }
    }

    /// `[0-9][0-9][0-9]`, leftmost and non-overlapping, as `std::regex_iterator` splits.
    fn digit_triples(&self, out: &mut Vec<usize>) {
        let mut gap_start = self.ini;
        let mut pos = self.ini;
        while pos + 3 <= self.end {
            if self.cpts[pos..pos + 3].iter().all(char::is_ascii_digit) {
                if pos > gap_start {
                    out.push(pos - gap_start);
                }
                out.push(3);
                pos += 3;
                gap_start = pos;
            } else {
                pos += 1;
            }
        }
        if self.end > gap_start {
            out.push(self.end - gap_start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreTokenizerKind, text: &str) -> Vec<&str> {
        split(kind, text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_splits_words_spaces_and_contractions() {
        use PreTokenizerKind::Gpt2;
        assert_eq!(
            words(Gpt2, "Hello world, it's 2024!  ok  "),
            ["Hello", " world", ",", " it", "'s", " 2024", "!", " ", " ok", "  "]
        );
        assert!(words(Gpt2, "").is_empty());
    }

    #[test]
    fn llama3_groups_digits_by_three_and_keeps_newlines_together() {
        use PreTokenizerKind::Llama3;
        assert_eq!(words(Llama3, "1234567"), ["123", "456", "7"]);
        assert_eq!(words(Llama3, "a \n\nb"), ["a", " \n\n", "b"]);
        assert_eq!(words(Llama3, "IT'S (x)"), ["IT", "'S", " (", "x", ")"]);
        assert_eq!(words(PreTokenizerKind::Qwen2, "x123"), ["x", "1", "2", "3"]);
    }

    #[test]
    fn default_splits_punctuation_and_digit_triples() {
        use PreTokenizerKind::Default;
        assert_eq!(words(Default, "a, 12345"), ["a", ",", " ", "123", "45"]);
        assert_eq!(words(PreTokenizerKind::Smollm, "ab12"), ["ab", "1", "2"]);
    }

    #[test]
    fn unknown_names_list_the_supported_ones() {
        let err = PreTokenizerConfig::from_name(Some("nope")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'nope'") && msg.contains("llama-bpe") && msg.contains("smollm"));
        assert_eq!(
            PreTokenizerConfig::from_name(None).unwrap().kind,
            PreTokenizerKind::Default
        );
    }
}
