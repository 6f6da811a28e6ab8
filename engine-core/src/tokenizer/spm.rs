//! SentencePiece (`tokenizer.ggml.model = "llama"`), as llama.cpp's `llm_tokenizer_spm_session`:
//! the text (spaces already escaped to `▁`) starts as one symbol per UTF-8 character; the adjacent
//! pair whose concatenation is the token with the highest score is merged (leftmost first on ties)
//! until no pair forms a token. Symbols that are not tokens fall back to `<0xXX>` byte tokens.

use super::vocab::Vocab;
use super::TokenizerError;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Appends the tokens of `text` (already escaped) to `out`.
pub(super) fn encode(vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    let n_chars = text.chars().count();
    for (i, (start, c)) in text.char_indices().enumerate() {
        syms.push(Sym {
            start,
            len: c.len_utf8(),
            prev: i as i64 - 1,
            next: if i + 1 == n_chars { -1 } else { i as i64 + 1 },
        });
    }
    let mut heap = BinaryHeap::new();
    for i in 1..syms.len() {
        push_pair(vocab, text, &syms, &mut heap, i as i64 - 1, i as i64);
    }
    while let Some(p) = heap.pop() {
        let (l, r) = (p.left as usize, p.right as usize);
        if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != p.size {
            continue;
        }
        syms[l].len += syms[r].len;
        syms[r].len = 0;
        let next = syms[r].next;
        syms[l].next = next;
        if next >= 0 {
            syms[next as usize].prev = p.left as i64;
        }
        push_pair(vocab, text, &syms, &mut heap, syms[l].prev, p.left as i64);
        push_pair(vocab, text, &syms, &mut heap, p.left as i64, next);
    }
    let mut i = if syms.is_empty() { -1 } else { 0 };
    while i >= 0 {
        let s = syms[i as usize];
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for &b in piece.as_bytes() {
                    out.push(byte_token(vocab, b)?);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}

/// llama.cpp's `byte_to_token` for SentencePiece: `<0xXX>`, else the byte itself as a token.
pub(super) fn byte_token(vocab: &Vocab, b: u8) -> Result<u32, TokenizerError> {
    vocab
        .id(&format!("<0x{b:02X}>"))
        .or_else(|| std::str::from_utf8(&[b]).ok().and_then(|t| vocab.id(t)))
        .ok_or(TokenizerError::NoByteToken(b))
}

fn push_pair(
    vocab: &Vocab,
    text: &str,
    syms: &[Sym],
    heap: &mut BinaryHeap<Pair>,
    left: i64,
    right: i64,
) {
    if left < 0 || right < 0 {
        return;
    }
    let (l, r) = (syms[left as usize], syms[right as usize]);
    let size = l.len + r.len;
    if let Some(id) = vocab.id(&text[l.start..l.start + size]) {
        heap.push(Pair {
            score: sortable(vocab.scores[id as usize]),
            left: left as u32,
            right: right as u32,
            size,
        });
    }
}

/// Scores as a total order that agrees with llama.cpp's `<` on every non-NaN value (-0 equals 0);
/// NaN, which C++ cannot order, sorts lowest.
fn sortable(score: f32) -> f32 {
    if score.is_nan() {
        f32::NEG_INFINITY
    } else if score == 0.0 {
        0.0
    } else {
        score
    }
}

#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: i64,
    next: i64,
}

/// A candidate merge: the highest score pops first, then the leftmost.
#[derive(Debug, Clone, Copy)]
struct Pair {
    score: f32,
    left: u32,
    right: u32,
    size: usize,
}

impl Ord for Pair {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
            .then_with(|| other.right.cmp(&self.right))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}
