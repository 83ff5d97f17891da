//! Persistence behind a trait: `sled` embedded by default. Calls and registrations
//! are written here so they survive a restart (DESIGN.md invariant 4).

use std::path::Path;

/// A key-value store with prefix scans; keys are namespaced like `call/<id>`.
pub trait Store: Send + Sync {
    /// Writes or replaces a value.
    fn put(&self, key: &str, value: &[u8]) -> anyhow::Result<()>;
    /// Reads a value.
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Removes a value (absent is fine).
    fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Every (key, value) whose key starts with `prefix`.
    fn scan(&self, prefix: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>>;
    /// Makes every write so far durable.
    fn flush(&self) -> anyhow::Result<()>;
}

/// The embedded default: one sled database in the node's data_dir.
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (creating if missing) the store under `dir`. sled flushes on its own
    /// every 200 ms, which bounds what a crash can lose; callers flush explicitly
    /// where a write must not be lost.
    pub fn open(dir: &Path) -> anyhow::Result<SledStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", dir.display()))?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .flush_every_ms(Some(200))
            .open()
            .map_err(|e| anyhow::anyhow!("cannot open store in {}: {e}", dir.display()))?;
        Ok(SledStore { db })
    }
}

impl Store for SledStore {
    fn put(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.db.insert(key.as_bytes(), value)?;
        Ok(())
    }

    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.db.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.db.remove(key.as_bytes())?;
        Ok(())
    }

    fn scan(&self, prefix: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn flush(&self) -> anyhow::Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_scan_delete_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("sipveil-store-{}", std::process::id()));
        {
            let s = SledStore::open(&dir).unwrap();
            s.put("call/1", b"a").unwrap();
            s.put("call/2", b"b").unwrap();
            s.put("reg/x", b"c").unwrap();
            s.delete("call/2").unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(&dir).unwrap();
        let calls = s.scan("call/").unwrap();
        assert_eq!(calls, vec![("call/1".to_string(), b"a".to_vec())]);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
