//! Special tokens: which ids are BOS/EOS/EOT/..., which end generation, and how their text is cut
//! out of the input before the model's algorithm sees it (llama.cpp's `tokenizer_st_partition`).

use super::vocab::{attr, Vocab};
use super::TokenizerError;
use crate::gguf::Metadata;
use std::collections::BTreeSet;
use std::ops::Range;

/// Texts llama.cpp takes for an end-of-turn token when no `eot_token_id` is given.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that end generation wherever they are (llama.cpp's EOG list).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Selects one id of a [`SpecialIds`].
type Field = fn(&mut SpecialIds) -> &mut Option<u32>;

/// The special token ids of a vocabulary. `None` is llama.cpp's `LLAMA_TOKEN_NULL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
    /// Every token that ends generation.
    pub eog: BTreeSet<u32>,
}

impl SpecialIds {
    /// Resolves the ids as llama.cpp's vocabulary loader does, starting from the model type's
    /// defaults, and updates `vocab`'s attributes the way it does (tokens that look like control
    /// tokens become control tokens).
    ///
    /// Where a vocabulary holds several candidate texts for EOT (or a FIM token) and the metadata
    /// names none, llama.cpp takes the first it meets in hash-map order, which depends on its build;
    /// this takes the first in its candidate list (`<|im_end|>` before `<|endoftext|>`). Every
    /// candidate is end-of-generation either way, so `is_eog` agrees.
    pub(super) fn resolve(
        m: &Metadata,
        vocab: &mut Vocab,
        defaults: SpecialIds,
    ) -> Result<Self, TokenizerError> {
        let n = vocab.len() as u64;
        let mut s = defaults;
        let keys: [(&str, Field); 17] = [
            ("bos", |s| &mut s.bos),
            ("eos", |s| &mut s.eos),
            ("eot", |s| &mut s.eot),
            ("eom", |s| &mut s.eom),
            ("unknown", |s| &mut s.unk),
            ("seperator", |s| &mut s.sep),
            ("padding", |s| &mut s.pad),
            ("mask", |s| &mut s.mask),
            ("fim_pre", |s| &mut s.fim_pre),
            ("fim_suf", |s| &mut s.fim_suf),
            ("fim_mid", |s| &mut s.fim_mid),
            ("fim_pad", |s| &mut s.fim_pad),
            ("fim_rep", |s| &mut s.fim_rep),
            ("fim_sep", |s| &mut s.fim_sep),
            ("prefix", |s| &mut s.fim_pre),
            ("suffix", |s| &mut s.fim_suf),
            ("middle", |s| &mut s.fim_mid),
        ];
        for (name, field) in keys {
            let slot = field(&mut s);
            if slot.is_some_and(|id| u64::from(id) >= n) {
                *slot = None;
            }
            let key = format!("tokenizer.ggml.{name}_token_id");
            if let Some(id) = m.get_u64(&key)? {
                // An id past the vocabulary keeps the default, as in llama.cpp.
                if id < n {
                    *slot = Some(id as u32);
                }
            }
        }

        // Auto-detection by text of what the metadata did not name.
        let auto: [(&[&str], Field); 8] = [
            (EOT_TEXTS, |s| &mut s.eot),
            (EOM_TEXTS, |s| &mut s.eom),
            (FIM_PRE_TEXTS, |s| &mut s.fim_pre),
            (FIM_SUF_TEXTS, |s| &mut s.fim_suf),
            (FIM_MID_TEXTS, |s| &mut s.fim_mid),
            (FIM_PAD_TEXTS, |s| &mut s.fim_pad),
            (FIM_REP_TEXTS, |s| &mut s.fim_rep),
            (FIM_SEP_TEXTS, |s| &mut s.fim_sep),
        ];
        for (texts, field) in &auto {
            let slot = field(&mut s);
            if slot.is_none() {
                if let Some(id) = texts.iter().find_map(|t| vocab.id(t)) {
                    *slot = Some(id);
                    vocab.attrs[id as usize] |= attr::CONTROL;
                }
            }
        }

        let mut eog: BTreeSet<u32> = [s.fim_pad, s.fim_rep, s.fim_sep]
            .into_iter()
            .flatten()
            .collect();
        for id in 0..vocab.len() {
            let text = vocab.texts[id].as_str();
            if EOG_TEXTS.contains(&text) {
                eog.insert(id as u32);
                vocab.attrs[id] |= attr::CONTROL;
            }
            // gpt-oss: always rendered.
            if matches!(
                text,
                "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
            ) {
                vocab.attrs[id] = attr::USER_DEFINED;
            }
        }
        eog.extend([s.eos, s.eot, s.eom].into_iter().flatten());

        // o200k_harmony / solar-open: "<|end|>" is not end-of-generation there.
        let eog_id = |eog: &BTreeSet<u32>, t: &str| {
            eog.iter()
                .copied()
                .find(|&id| vocab.texts[id as usize] == t)
        };
        if let Some(end_id) = eog_id(&eog, "<|end|>") {
            let has = |t: &str| eog_id(&eog, t).is_some();
            let call = has("<|call|>") || has("<|calls|>");
            if call && (has("<|return|>") || has("<|flush|>")) {
                eog.remove(&end_id);
                vocab.attrs[end_id as usize] = attr::USER_DEFINED;
            }
        }
        // gemma4 / plamo: "</s>" is a normal token there.
        if let Some(s_id) = eog_id(&eog, "</s>") {
            let has = |t: &str| eog_id(&eog, t).is_some();
            if has("<|tool_response>") || has("<|plamo:eos|>") {
                eog.remove(&s_id);
                vocab.attrs[s_id as usize] = attr::NORMAL;
            }
        }
        s.eog = eog;
        Ok(s)
    }
}

/// Applies llama.cpp's per-model attribute rules that depend on `general.name` (Phi-3: special
/// tokens swallow the whitespace after them).
pub(super) fn apply_name_rules(
    m: &Metadata,
    vocab: &mut Vocab,
    special: &[u32],
) -> Result<(), TokenizerError> {
    let name = m.get_str("general.name")?.unwrap_or("").to_lowercase();
    if name.contains("phi-3") || name.contains("phi3") {
        for &id in special {
            vocab.attrs[id as usize] |= attr::RSTRIP;
        }
        if let Some(id) = vocab.id("</s>") {
            vocab.attrs[id as usize] |= attr::RSTRIP;
        }
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(id) = vocab.id(t) {
                vocab.attrs[id as usize] &= !attr::RSTRIP;
            }
        }
    }
    Ok(())
}

/// A piece of input after special tokens are cut out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fragment {
    /// Text for the model's algorithm, as a byte range of the input.
    Text(Range<usize>),
    /// A special token matched in the input.
    Token(u32),
}

/// The special tokens llama.cpp matches in input text: control, user-defined and unknown tokens,
/// longest first, with a byte trie to find which of them occur at all.
#[derive(Debug, Clone)]
pub(super) struct SpecialMatcher {
    /// Token ids by decreasing text length (ties by id).
    ordered: Vec<u32>,
    /// Rank of each token of `ordered`, by id (`u32::MAX` for other tokens).
    rank: Vec<u32>,
    trie: Trie,
}

impl SpecialMatcher {
    pub fn new(vocab: &Vocab) -> Self {
        let mut ordered: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&id| vocab.has_attr(id, attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN))
            .collect();
        // llama.cpp's std::sort leaves equal lengths in no defined order; equal-length tokens can
        // only compete where one text overlaps another, which real vocabularies avoid.
        ordered.sort_by_key(|&id| std::cmp::Reverse(vocab.texts[id as usize].len()));
        let mut rank = vec![u32::MAX; vocab.len()];
        let mut trie = Trie::default();
        for (r, &id) in ordered.iter().enumerate() {
            rank[id as usize] = r as u32;
            trie.insert(vocab.texts[id as usize].as_bytes(), id);
        }
        Self {
            ordered,
            rank,
            trie,
        }
    }

    /// The ids this matcher considers, longest text first.
    pub fn ids(&self) -> &[u32] {
        &self.ordered
    }

    /// Cuts special tokens out of `text`, as llama.cpp's `tokenizer_st_partition`: each token in
    /// turn, longest first, splits every text fragment at each of its occurrences. Without
    /// `parse_special`, control and unknown tokens stay text; user-defined ones are still cut.
    pub fn partition(&self, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut frags = vec![Fragment::Text(0..text.len())];
        // Only tokens occurring somewhere in the text can occur in a fragment of it.
        let mut present: Vec<u32> = self.trie.occurring(text.as_bytes());
        present.sort_by_key(|&id| self.rank[id as usize]);
        present.dedup();
        let bytes = text.as_bytes();
        for id in present {
            if !parse_special && vocab.has_attr(id, attr::CONTROL | attr::UNKNOWN) {
                continue;
            }
            let tok = vocab.texts[id as usize].as_bytes();
            let a = vocab.attrs[id as usize];
            let mut next = Vec::with_capacity(frags.len() + 2);
            for frag in frags {
                let Fragment::Text(range) = frag else {
                    next.push(frag);
                    continue;
                };
                let (mut base, end) = (range.start, range.end);
                while let Some(at) = find(&bytes[base..end], tok).map(|p| base + p) {
                    let mut left_end = at;
                    if a & attr::LSTRIP != 0 {
                        while left_end > base && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > base {
                        next.push(Fragment::Text(base..left_end));
                    }
                    next.push(Fragment::Token(id));
                    base = at + tok.len();
                    if a & attr::RSTRIP != 0 {
                        while base < end && is_c_space(bytes[base]) {
                            base += 1;
                        }
                    }
                }
                if base < end {
                    next.push(Fragment::Text(base..end));
                }
            }
            frags = next;
        }
        frags
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// First occurrence of `needle` (non-empty) in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let p = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if &hay[p..p + needle.len()] == needle {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// A byte trie over the special token texts.
#[derive(Debug, Clone, Default)]
struct Trie {
    /// Children of each node, sorted by byte; node 0 is the root.
    children: Vec<Vec<(u8, u32)>>,
    /// The token ending at each node.
    value: Vec<Option<u32>>,
}

impl Trie {
    fn insert(&mut self, key: &[u8], id: u32) {
        if self.children.is_empty() {
            self.children.push(Vec::new());
            self.value.push(None);
        }
        let mut node = 0usize;
        for &b in key {
            node = match self.children[node].binary_search_by_key(&b, |&(c, _)| c) {
                Ok(i) => self.children[node][i].1 as usize,
                Err(i) => {
                    let new = self.children.len();
                    self.children.push(Vec::new());
                    self.value.push(None);
                    self.children[node].insert(i, (b, new as u32));
                    new
                }
            };
        }
        // Texts are unique (the vocabulary checks), so no value is overwritten.
        self.value[node] = Some(id);
    }

    /// Every token whose text occurs in `hay` (with repeats).
    fn occurring(&self, hay: &[u8]) -> Vec<u32> {
        let mut found = Vec::new();
        if self.children.is_empty() {
            return found;
        }
        for start in 0..hay.len() {
            let mut node = 0usize;
            for &b in &hay[start..] {
                match self.children[node].binary_search_by_key(&b, |&(c, _)| c) {
                    Ok(i) => node = self.children[node][i].1 as usize,
                    Err(_) => break,
                }
                if let Some(id) = self.value[node] {
                    found.push(id);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_matches_str_find() {
        for (hay, needle) in [
            ("abcabc", "ca"),
            ("aaa", "aa"),
            ("x", "xy"),
            ("<|a|><|b|>", "<|b|>"),
        ] {
            assert_eq!(find(hay.as_bytes(), needle.as_bytes()), hay.find(needle));
        }
    }

    #[test]
    fn trie_reports_every_occurring_text() {
        let mut t = Trie::default();
        t.insert(b"<a>", 1);
        t.insert(b"<ab>", 2);
        t.insert(b"\n", 3);
        let mut found = t.occurring(b"x<ab>\n<a>");
        found.sort();
        found.dedup();
        assert_eq!(found, [1, 2, 3]);
    }
}
