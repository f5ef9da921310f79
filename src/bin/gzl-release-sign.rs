//! Signs gzl release archives, for `.ci/release` (docs/releasing.md).
//!
//! ```text
//! gzl-release-sign keygen PRIVATE PUBLIC      a new key pair; prints the public key in base64
//! gzl-release-sign sign ARCHIVE PRIVATE...    signs a .tar.gz in place, with every key given
//! ```
//!
//! Several keys sign one archive while the project moves from one key to another: gzl takes
//! an archive any of its keys signed.
//!
//! Keys and signatures are zipsign's (ed25519ph over the archive, the archive's file name as
//! context, the signature in a gzip member appended to it): what gzl checks through
//! self_update, and what the `zipsign` command line tool reads and writes too.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use zipsign_api::SigningKey;

const USAGE: &str = "usage: gzl-release-sign keygen PRIVATE PUBLIC | sign ARCHIVE PRIVATE...";

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let result = match arguments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["keygen", private, public] => keygen(Path::new(private), Path::new(public)),
        ["sign", archive, ref keys @ ..] if !keys.is_empty() => sign(Path::new(archive), keys),
        _ => Err(USAGE.into()),
    };
    if let Err(message) = result {
        eprintln!("gzl-release-sign: {message}");
        std::process::exit(2);
    }
}

fn keygen(private: &Path, public: &Path) -> Result<(), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    // The private key is created for its owner only, and never over an existing file.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(private)
            .map_err(|e| format!("cannot create {}: {e}", private.display()))?
    };
    file.write_all(&key.to_keypair_bytes())
        .map_err(|e| format!("cannot write {}: {e}", private.display()))?;
    std::fs::write(public, key.verifying_key().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
    );
    Ok(())
}

fn sign(archive: &Path, private: &[&str]) -> Result<(), String> {
    let keys = zipsign_api::sign::read_signing_keys(private.iter().map(std::fs::File::open))
        .map_err(|e| format!("{} are not signing keys: {e}", private.join(", ")))?;
    // gzl verifies with the archive's file name as context, so a signature cannot be moved to
    // another archive (another version or target).
    let context = archive
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{} has no file name", archive.display()))?;
    let mut input = std::fs::File::open(archive)
        .map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let dir = archive.parent().unwrap_or(Path::new("."));
    let mut signed = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    zipsign_api::sign::copy_and_sign_tar(
        &mut input,
        signed.as_file_mut(),
        &keys,
        Some(context.as_bytes()),
    )
    .map_err(|e| format!("cannot sign {}: {e}", archive.display()))?;
    signed
        .persist(archive)
        .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
    Ok(())
}
