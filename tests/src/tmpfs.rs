//! [`Tmpfs`]: a small tmpfs mounted for one test (a filesystem the test can fill up), unmounted on drop. Needs root
//! (the tests run as root here and in CI); a mount that fails is an error that says why, never a skip.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// A tmpfs of a few MiB on a fresh temporary directory.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB.
    pub fn mount(mib: u32) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .context("running mount(8)")?;
        if !out.status.success() {
            bail!(
                "mount -t tmpfs on {} failed (these tests need root, or CAP_SYS_ADMIN): {}",
                dir.path().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file of zeros until the filesystem is full (`ENOSPC`); returns its path.
    pub fn fill(&self) -> anyhow::Result<PathBuf> {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e).context("filling the tmpfs"),
            }
        }
        // Smaller writes for the last partial chunk, so no page is left free.
        loop {
            match f.write(&[0u8; 512]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e).context("filling the tmpfs"),
            }
        }
        Ok(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, should a process still hold a file on it: it goes once the last one is closed.
        let _ = std::process::Command::new("umount").arg("--lazy").arg(self.dir.path()).status();
    }
}
