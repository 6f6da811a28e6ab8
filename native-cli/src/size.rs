//! Byte sizes on the command line (`--device-mem 64MiB`, `--host-mem 1.5G`) and back to text.
//!
//! Bare `K/M/G/T` are powers of 1024, as docker and llama.cpp read them; `KB/MB/GB/TB` are powers
//! of 1000 and `KiB/MiB/GiB/TiB` powers of 1024. Units are case-insensitive.

/// The forms every error message lists, so a user can fix the flag without reading docs.
const ACCEPTED: &str = "expected a byte count like 1048576, 512K, 64MiB, 1.5GB or 2 TiB \
     (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000)";

/// Most digits after the decimal point; with at most 24, the arithmetic below is exact in u128.
const MAX_FRACTION_DIGITS: usize = 24;

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("empty size; {accepted}", accepted = ACCEPTED)]
    Empty,
    #[error("size '{0}' is negative; {accepted}", accepted = ACCEPTED)]
    Negative(String),
    #[error("size '{input}' is not a number ({reason}); {accepted}", accepted = ACCEPTED)]
    NotANumber { input: String, reason: &'static str },
    #[error("size '{input}' has unknown unit '{unit}'; {accepted}", accepted = ACCEPTED)]
    UnknownUnit { input: String, unit: String },
    #[error("size '{0}' is too large: the most is 16 EiB ({max} bytes)", max = u64::MAX)]
    Overflow(String),
}

/// Bytes per unit, for a unit already lower-cased; `None` for an unknown unit.
fn unit_bytes(unit: &str) -> Option<u64> {
    let (prefix, rest) = match unit.char_indices().nth(1) {
        Some((i, _)) => unit.split_at(i),
        None => (unit, ""),
    };
    let power = match prefix {
        "" | "b" if rest.is_empty() => return Some(1),
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => return None,
    };
    match rest {
        "" | "i" | "ib" => Some(1024u64.pow(power)),
        "b" => Some(1000u64.pow(power)),
        _ => None,
    }
}

/// Parses a byte size such as `1048576`, `512K`, `64MiB`, `1.5 GB` or `2tib`, rounding fractions
/// down to whole bytes. Usable directly as a clap `value_parser`.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(SizeError::Empty);
    }
    let not_a_number = |reason| SizeError::NotANumber {
        input: input.to_string(),
        reason,
    };
    if input.starts_with('-') {
        return Err(SizeError::Negative(input.to_string()));
    }
    let number_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(number_end);
    let unit = unit.trim_start().to_ascii_lowercase();
    if number.is_empty() {
        let lower = input.to_ascii_lowercase();
        return Err(not_a_number(
            if lower.starts_with("nan") || lower.starts_with("inf") {
                "NaN and infinity are not sizes"
            } else {
                "it must start with digits"
            },
        ));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err(not_a_number("more than one decimal point"));
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err(not_a_number("a lone decimal point"));
    }
    if fraction.len() > MAX_FRACTION_DIGITS {
        return Err(not_a_number("more than 24 digits after the decimal point"));
    }
    let multiplier = unit_bytes(&unit).ok_or_else(|| SizeError::UnknownUnit {
        input: input.to_string(),
        unit: unit.clone(),
    })?;
    let overflow = || SizeError::Overflow(input.to_string());

    // Digits only from here on, so the parses below fail only by overflowing.
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let whole_bytes = whole
        .checked_mul(u128::from(multiplier))
        .ok_or_else(overflow)?;
    // fraction < 10^24 and multiplier <= 2^40, so the product fits in u128 and the division is the
    // exact floor of the fractional bytes.
    let fraction_bytes = if fraction.is_empty() {
        0
    } else {
        let digits: u128 = fraction.parse().map_err(|_| overflow())?;
        digits * u128::from(multiplier) / 10u128.pow(fraction.len() as u32)
    };
    let total = whole_bytes
        .checked_add(fraction_bytes)
        .ok_or_else(overflow)?;
    u64::try_from(total).map_err(|_| overflow())
}

/// A size for people: `512 B` below 1 KiB, else one decimal in the largest binary unit (`64.0 MiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the value would print as 1024.0 or more, so 1 MiB - 1 reads `1024.0 KiB` never.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KI: u64 = 1024;
    const MI: u64 = KI * KI;
    const GI: u64 = MI * KI;
    const TI: u64 = GI * KI;

    #[test]
    fn plain_byte_counts() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(MI));
        assert_eq!(parse_size("  42  "), Ok(42));
        assert_eq!(parse_size("42B"), Ok(42));
        assert_eq!(parse_size("42 b"), Ok(42));
        assert_eq!(parse_size(&u64::MAX.to_string()), Ok(u64::MAX));
    }

    #[test]
    fn decimal_units_are_powers_of_1000() {
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1tb"), Ok(1_000_000_000_000));
    }

    #[test]
    fn binary_and_bare_units_are_powers_of_1024() {
        assert_eq!(parse_size("1KiB"), Ok(KI));
        assert_eq!(parse_size("64MiB"), Ok(64 * MI));
        assert_eq!(parse_size("2 GiB"), Ok(2 * GI));
        assert_eq!(parse_size("1TiB"), Ok(TI));
        assert_eq!(parse_size("512K"), Ok(512 * KI));
        assert_eq!(parse_size("64M"), Ok(64 * MI));
        assert_eq!(parse_size("8g"), Ok(8 * GI));
        assert_eq!(parse_size("1T"), Ok(TI));
        assert_eq!(parse_size("3Gi"), Ok(3 * GI));
    }

    #[test]
    fn units_are_case_insensitive() {
        for s in ["64mib", "64MIB", "64MiB", "64mIb", "64 Mib"] {
            assert_eq!(parse_size(s), Ok(64 * MI), "{s}");
        }
        assert_eq!(parse_size("5kb"), parse_size("5KB"));
    }

    #[test]
    fn fractions_round_down_to_whole_bytes() {
        assert_eq!(parse_size("1.5GiB"), Ok(GI + GI / 2));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size(".25 MiB"), Ok(MI / 4));
        assert_eq!(parse_size("2."), Ok(2));
        assert_eq!(parse_size("1.9"), Ok(1));
        assert_eq!(parse_size("1.0001KB"), Ok(1000));
        assert_eq!(parse_size("0.001K"), Ok(1), "1.024 bytes");
        assert_eq!(parse_size("0.1TiB"), Ok(TI / 10));
        assert_eq!(parse_size("1.999999999999999999999999T"), Ok(2 * TI - 1));
    }

    #[test]
    fn empty_input_is_rejected() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("   "), Err(SizeError::Empty));
    }

    #[test]
    fn negative_sizes_are_rejected() {
        assert!(matches!(parse_size("-1"), Err(SizeError::Negative(_))));
        assert!(matches!(parse_size(" -2GiB"), Err(SizeError::Negative(_))));
    }

    #[test]
    fn nan_infinity_and_non_numbers_are_rejected() {
        for s in [
            "NaN", "nan", "inf", "Infinity", "abc", "GiB", "+5", ".", "1.2.3", "1.5.GiB",
        ] {
            assert!(
                matches!(parse_size(s), Err(SizeError::NotANumber { .. })),
                "{s}: {:?}",
                parse_size(s)
            );
        }
        let err = parse_size("NaN").unwrap_err().to_string();
        assert!(err.contains("NaN") && err.contains("64MiB"), "{err}");
        let too_fine = format!("1.{}K", "1".repeat(25));
        assert!(matches!(
            parse_size(&too_fine),
            Err(SizeError::NotANumber { .. })
        ));
    }

    #[test]
    fn unknown_units_are_rejected() {
        for (s, unit) in [
            ("5X", "x"),
            ("5 PB", "pb"),
            ("5kbit", "kbit"),
            ("1e9", "e9"),
            ("5 MiBs", "mibs"),
            ("5bb", "bb"),
        ] {
            assert_eq!(
                parse_size(s),
                Err(SizeError::UnknownUnit {
                    input: s.trim().to_string(),
                    unit: unit.to_string()
                }),
                "{s}"
            );
        }
        let err = parse_size("5X").unwrap_err().to_string();
        assert!(
            err.contains("'x'") && err.contains("KiB/MiB/GiB/TiB"),
            "{err}"
        );
    }

    #[test]
    fn sizes_past_u64_overflow() {
        for s in [
            "18446744073709551616",
            "16777216TiB",
            "20000000TB",
            "99999999999999999999999999999999999999999999",
            "17179869184GiB",
        ] {
            assert!(
                matches!(parse_size(s), Err(SizeError::Overflow(_))),
                "{s}: {:?}",
                parse_size(s)
            );
        }
        // Just below the limit still fits.
        assert_eq!(parse_size("16777215TiB"), Ok(16_777_215 * TI));
        let err = parse_size("20000000TB").unwrap_err().to_string();
        assert!(err.contains("too large") && err.contains("16 EiB"), "{err}");
    }

    #[test]
    fn format_size_picks_the_largest_binary_unit() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(KI), "1.0 KiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(64 * MI), "64.0 MiB");
        assert_eq!(format_size(MI - 1), "1.0 MiB");
        assert_eq!(format_size(GI + GI / 2), "1.5 GiB");
        assert_eq!(format_size(3 * TI), "3.0 TiB");
        assert_eq!(format_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn formatted_sizes_parse_back_close_to_the_original() {
        for bytes in [0, 512, 1536, 64 * MI, 5 * GI + 123_456_789, 7 * TI] {
            let back = parse_size(&format_size(bytes)).unwrap();
            // One decimal place loses at most 0.05 of a unit, i.e. under 5% of the value.
            assert!(back.abs_diff(bytes) <= bytes / 20, "{bytes} -> {back}");
        }
    }

    #[test]
    fn works_as_a_clap_value_parser() {
        use clap::Parser;

        #[derive(Parser, Debug)]
        struct Cli {
            #[arg(long, value_parser = parse_size)]
            device_mem: u64,
        }
        let cli = Cli::try_parse_from(["sluice", "--device-mem", "64MiB"]).unwrap();
        assert_eq!(cli.device_mem, 64 * MI);
        let err = Cli::try_parse_from(["sluice", "--device-mem", "64 furlongs"]).unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }
}
