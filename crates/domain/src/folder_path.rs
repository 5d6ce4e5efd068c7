//! One spelling per sync folder (S-30), so that two spellings of the same folder are
//! recognised as one: `dir/./up`, `dir/up/`, `up/../up` and a symlink to `dir/up`.

use std::path::{Component, Path, PathBuf};

/// How many symlinks to folders not made yet are followed (a loop ends here).
const MAX_DANGLING_LINKS: u32 = 8;

/// A local folder as an absolute path with `.`, `..`, doubled and trailing slashes gone
/// and symlinks resolved. A folder that does not exist yet is its longest existing
/// ancestor, resolved, with the rest appended. A relative folder is taken from the
/// server's working directory, as the exchange takes it.
pub fn local_folder_key(dir: &str) -> String {
    canonical(Path::new(dir.trim()), MAX_DANGLING_LINKS)
        .to_string_lossy()
        .into_owned()
}

/// An FTP folder with `.`, `..`, doubled and trailing slashes gone; symlinks on the
/// server cannot be seen from here.
pub fn ftp_folder_key(dir: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.trim().split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

fn canonical(path: &Path, links_left: u32) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    // `components` already drops `.` and doubled or trailing slashes.
    let parts: Vec<Component> = absolute.components().collect();
    for existing in (1..=parts.len()).rev() {
        let ancestor: PathBuf = parts[..existing].iter().collect();
        let rest = &parts[existing..];
        let base = match std::fs::canonicalize(&ancestor) {
            Ok(base) => base,
            // A symlink to a folder not made yet: where it points.
            Err(_) => match std::fs::read_link(&ancestor) {
                Ok(target) if links_left > 0 => {
                    let parent = ancestor.parent().unwrap_or(Path::new("/"));
                    canonical(&parent.join(target), links_left - 1)
                }
                _ => continue,
            },
        };
        let joined = append(base, rest);
        // A `..` after a folder not made yet may lead back into existing folders (and
        // their symlinks): resolve the result once more.
        if links_left > 0 && rest.contains(&Component::ParentDir) {
            return canonical(&joined, links_left - 1);
        }
        return joined;
    }
    append(PathBuf::from("/"), &parts)
}

/// `base` with `rest` appended, `..` taken lexically (the rest does not exist).
fn append(mut base: PathBuf, rest: &[Component]) -> PathBuf {
    for part in rest {
        match part {
            Component::ParentDir => {
                base.pop();
            }
            Component::Normal(name) => base.push(name),
            _ => {}
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftp_folders_are_spelled_one_way() {
        for dir in [
            "/cb/up",
            "/cb/up/",
            "/cb//up",
            "/cb/./up",
            "/cb/x/../up",
            " /cb/up/. ",
        ] {
            assert_eq!(ftp_folder_key(dir), "/cb/up", "{dir}");
        }
        assert_eq!(ftp_folder_key("/../.."), "/");
    }

    #[test]
    fn local_folders_are_spelled_one_way() {
        let dir = std::env::temp_dir().join(format!("crmsync-folder-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = std::fs::canonicalize(&dir).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("later"), root.join("dangling")).unwrap();
        let key = |rest: &str| local_folder_key(&format!("{}/{rest}", dir.display()));
        let expected = root.join("real/up").to_string_lossy().into_owned();
        for rest in [
            "real/up",
            "real/./up/",
            "link/up",
            "x/../real/up",
            "link/../real//up",
        ] {
            assert_eq!(key(rest), expected, "{rest}");
        }
        assert_eq!(
            key("dangling/up"),
            root.join("later/up").to_string_lossy().into_owned()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
