//! What every `dezky bench` command shares: a scratch database or directory that is gone
//! afterwards, a run id, and the machine line printed with every figure.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Cores and load average, printed with every comparison: on a shared machine another
/// process's compile can take half the CPU, and a reader of the numbers must know.
pub(crate) fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .map_or_else(String::new, |load| format!(", load average {load}"));
    format!("machine: {cores} cores{load}")
}

/// A short random id for scratch names.
pub(crate) fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// The URL of another database on the same PostgreSQL server.
pub(crate) fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base
        .find("://")
        .map(|i| i + 3)
        .context("the database URL has no scheme")?;
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    // A `dbname=` parameter would override the path; drop it, keep the others (sslmode, …).
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("dbname="))
        .collect();
    let mut out = format!("{}/{database}", &base[..path]);
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok(out)
}

/// A directory removed, with everything in it, when dropped.
pub(crate) struct ScratchDir(pub(crate) PathBuf);

impl ScratchDir {
    /// Creates `parent/{prefix}-{run id}`, refusing to adopt an existing directory.
    pub(crate) fn create(parent: &Path, prefix: &str) -> anyhow::Result<Self> {
        let path = parent.join(format!("{prefix}-{}", new_run_id()));
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // create_dir (not _all) fails on an existing directory: never adopt someone else's.
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!(
                "warning: could not remove scratch directory {}: {error}",
                self.0.display()
            );
        }
    }
}
