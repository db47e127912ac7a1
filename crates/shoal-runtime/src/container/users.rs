//! `-u user[:group]` resolved against the container's own /etc/passwd and /etc/group.

use std::path::Path;

use super::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Home directory from passwd, if the user is listed there.
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_passwd(rootfs: &Path) -> Vec<PasswdEntry> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn read_group(rootfs: &Path) -> Vec<GroupEntry> {
    let text = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) as Docker does: a
/// numeric uid need not be listed; a name must be.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_passwd(rootfs);
    let groups = read_group(rootfs);
    let user = if user.is_empty() { "0" } else { user };
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid),
        Err(_) => Some(passwd.iter().find(|p| p.name == user).ok_or_else(|| {
            Error::invalid(format!(
                "unable to find user {user}: no matching entries in passwd file"
            ))
        })?),
    };
    let uid = match (user.parse::<u32>(), entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(e)) => e.uid,
        (Err(_), None) => 0,
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    // Supplementary groups only apply when the primary group was not forced.
    if group.is_none()
        && let Some(e) = entry
    {
        for g in &groups {
            if g.members.contains(&e.name) && g.gid != gid {
                additional_gids.push(g.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_numbers_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nlogs:x:4:www,other\n",
        )
        .unwrap();
        let r = resolve_user(dir.path(), "www").unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids.clone()), (33, 33, vec![4]));
        assert_eq!(r.home.as_deref(), Some("/var/www"));
        let r = resolve_user(dir.path(), "1000:logs").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 4));
        let r = resolve_user(dir.path(), "").unwrap();
        assert_eq!((r.uid, r.gid), (0, 0));
        assert!(resolve_user(dir.path(), "nobody").is_err());
        assert!(resolve_user(dir.path(), "www:nogroup").is_err());
    }
}
