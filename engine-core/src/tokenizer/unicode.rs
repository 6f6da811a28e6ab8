//! Code point classes as llama.cpp's pre-tokenizers see them: one general-category group per code
//! point (from llama.cpp's own table, see `unicode_data.rs`) and a whitespace flag.

use super::unicode_data::{CATEGORY_RANGES, WHITESPACE};

/// The category groups, as bits (llama.cpp's `unicode_cpt_flags` low byte).
pub(super) mod category {
    /// Outside every range (past U+10FFFF): no flag at all.
    pub const X: u8 = 0x00;
    /// Unassigned (`Cn`).
    pub const U: u8 = 0x01;
    /// `\p{N}`.
    pub const N: u8 = 0x02;
    /// `\p{L}`.
    pub const L: u8 = 0x04;
    /// `\p{Z}`.
    pub const Z: u8 = 0x08;
    /// `\p{M}`.
    pub const M: u8 = 0x10;
    /// `\p{P}`.
    pub const P: u8 = 0x20;
    /// `\p{S}`.
    pub const S: u8 = 0x40;
    /// `\p{C}` but `Cn`.
    pub const C: u8 = 0x80;
}

/// What the splitters ask of a code point. `Flags::default()` is llama.cpp's "no flags", which its
/// splitters also use for positions past the end of a fragment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Flags {
    category: u8,
    whitespace: bool,
}

impl Flags {
    pub fn is_letter(self) -> bool {
        self.category == category::L
    }
    pub fn is_number(self) -> bool {
        self.category == category::N
    }
    pub fn is_mark(self) -> bool {
        self.category == category::M
    }
    pub fn is_punctuation(self) -> bool {
        self.category == category::P
    }
    pub fn is_whitespace(self) -> bool {
        self.whitespace
    }
    /// llama.cpp's `flags.as_uint() != 0`: any category or flag at all.
    pub fn any(self) -> bool {
        self.category != category::X || self.whitespace
    }
}

/// Flags of ASCII code points, looked up without a search.
static ASCII: [Flags; 128] = {
    let mut table = [Flags {
        category: category::X,
        whitespace: false,
    }; 128];
    let mut cp = 0;
    while cp < 128 {
        table[cp] = Flags {
            category: search(cp as u32),
            whitespace: matches!(cp, 0x09..=0x0D | 0x20),
        };
        cp += 1;
    }
    table
};

/// Category of `cp` by binary search over the ranges (a `const fn` so the ASCII table can use it).
const fn search(cp: u32) -> u8 {
    // The last entry (0x110000, X) bounds the table, so every cp below it has a range.
    let (mut lo, mut hi) = (0usize, CATEGORY_RANGES.len());
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if CATEGORY_RANGES[mid].0 <= cp {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    CATEGORY_RANGES[lo].1
}

/// The flags of one code point.
pub(super) fn flags(c: char) -> Flags {
    let cp = c as u32;
    if cp < 128 {
        return ASCII[cp as usize];
    }
    Flags {
        category: search(cp),
        whitespace: WHITESPACE.binary_search(&cp).is_ok(),
    }
}

/// llama.cpp's `unicode_tolower`, as far as the contraction rules need it: the only code points
/// whose lowercase is one of the ASCII letters those rules test (s t m d r e v l) are ASCII.
pub(super) fn ascii_lower(c: char) -> char {
    c.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_sample_code_points() {
        assert!(flags('a').is_letter() && flags('Z').is_letter() && flags('é').is_letter());
        assert!(flags('中').is_letter() && flags('ツ').is_letter());
        assert!(flags('7').is_number() && flags('½').is_number() && flags('٣').is_number());
        assert!(flags('.').is_punctuation() && flags('、').is_punctuation());
        assert!(!flags('$').is_punctuation() && flags('$').any());
        assert!(flags('\u{301}').is_mark());
        for ws in [
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{3000}',
        ] {
            assert!(flags(ws).is_whitespace(), "{ws:?}");
        }
        assert!(!flags('\u{200b}').is_whitespace());
        // Unassigned code points still have a flag (`Cn`); nothing is flagless below U+110000.
        assert!(flags('\u{378}').any());
        assert!(flags('\u{10ffff}').any());
        assert!(!Flags::default().any());
    }

    #[test]
    fn ranges_are_sorted() {
        assert!(CATEGORY_RANGES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(WHITESPACE.windows(2).all(|w| w[0] < w[1]));
    }
}
