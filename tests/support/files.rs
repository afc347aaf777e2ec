//! The project's files, walked in sorted order, for tests that read every file of a kind.

use std::path::{Path, PathBuf};

/// Every file under `dir` that `keep` takes, in sorted order, not going into folders
/// whose name `skip` lists.
pub fn under(dir: &Path, skip: &[&str], keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, skip: &[&str], keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if !skip.contains(&name.as_ref()) {
                    walk(&path, skip, keep, out);
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, skip, keep, &mut out);
    out
}
