//! The commit of a written payload: entries in the way moved aside, the `..data` swap,
//! links for new top-level names, and all of it undone on failure.

use std::collections::BTreeSet;
use std::path::Path;

use cap_std::fs::Dir;

use super::{random_suffix, write_error, DATA_LINK};
use crate::ports::SinkError;

/// Why a commit failed, and whether `..data` could not be put back (then the new
/// payload directory must stay, since `..data` still points at it).
pub(super) struct CommitError {
    pub error: SinkError,
    pub data_still_new: bool,
}

/// Swaps `..data`, then links new top-level names. Undone on failure.
pub(super) fn commit(
    dir: &Dir,
    target: &Path,
    new_dir: &str,
    new_names: &BTreeSet<String>,
    old_names: &BTreeSet<String>,
    previous: Option<&str>,
) -> Result<(), CommitError> {
    let fail = |error: SinkError| CommitError {
        error,
        data_still_new: false,
    };
    // Entries in the way of a new top-level link (a file or link an older provider
    // wrote, a sub-directory) are moved aside first, so a failure can put them back.
    let mut moved: Vec<(String, String)> = Vec::new();
    let undo_moves = |moved: &[(String, String)]| {
        for (from, to) in moved.iter().rev() {
            let _ = dir.rename(to, dir, from);
        }
    };
    // A `..data` that is not a link (a directory, a file) is in the way like any other
    // entry; a link, ours or not, is replaced by the swap itself.
    let data_in_way = dir
        .symlink_metadata(DATA_LINK)
        .is_ok_and(|m| !m.file_type().is_symlink());
    let in_way = data_in_way
        .then_some(DATA_LINK)
        .into_iter()
        .chain(new_names.difference(old_names).map(String::as_str));
    for name in in_way {
        if dir.symlink_metadata(name).is_ok() {
            let aside = format!("..replaced_{}", random_suffix());
            if let Err(e) = dir.rename(name, dir, &aside) {
                undo_moves(&moved);
                return Err(fail(write_error(&target.join(name), e)));
            }
            moved.push((name.to_string(), aside));
        }
    }

    if let Err(e) = replace_with_link(dir, target, DATA_LINK, Path::new(new_dir)) {
        undo_moves(&moved);
        return Err(fail(e));
    }
    let mut linked = Vec::new();
    for name in new_names.difference(old_names) {
        // Whatever was in the way was moved aside above, so the name is free: one
        // symlink makes it (the rename of a temporary link only if someone raced us).
        if let Err(error) = link_free_name(dir, target, name, &Path::new(DATA_LINK).join(name)) {
            for done in &linked {
                let _ = dir.remove_file(done);
            }
            let restored = match previous {
                Some(old) => replace_with_link(dir, target, DATA_LINK, Path::new(old)).is_ok(),
                None => dir.remove_file(DATA_LINK).is_ok(),
            };
            undo_moves(&moved);
            return Err(CommitError {
                error,
                data_still_new: !restored,
            });
        }
        linked.push(name.clone());
    }
    for (_, aside) in &moved {
        match dir.symlink_metadata(aside) {
            Ok(m) if m.is_dir() => {
                let _ = dir.remove_dir_all(aside);
            }
            _ => {
                let _ = dir.remove_file(aside);
            }
        }
    }
    Ok(())
}

/// Makes the free `name` a link to `dest`; if it is taken after all, replaces it.
fn link_free_name(dir: &Dir, target: &Path, name: &str, dest: &Path) -> Result<(), SinkError> {
    match dir.symlink(dest, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            replace_with_link(dir, target, name, dest)
        }
        Err(e) => Err(write_error(&target.join(name), e)),
    }
}

/// Makes `name` a link to `dest` in one rename, whatever entry was there.
fn replace_with_link(dir: &Dir, target: &Path, name: &str, dest: &Path) -> Result<(), SinkError> {
    let tmp = format!("..tmp_{}", random_suffix());
    dir.symlink(dest, &tmp)
        .map_err(|e| write_error(&target.join(&tmp), e))?;
    dir.rename(&tmp, dir, name).map_err(|e| {
        let _ = dir.remove_file(&tmp);
        write_error(&target.join(name), e)
    })
}
