//! `docker top`: the container's processes read from /proc (columns of `ps -ef`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TopOutput {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

fn clock_ticks() -> u64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn host_user(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

fn row(pid: i32, ticks: u64, btime: u64, now: u64) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head
        .split_once('(')
        .map(|(_, c)| c.to_string())
        .unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after "comm)": state(0) ppid(1) … utime(11) stime(12) … starttime(19)
    let ppid = f.get(1)?.to_string();
    let cpu: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let start_ticks: u64 = f.get(19)?.parse().ok()?;
    let start = btime + start_ticks / ticks;
    let elapsed = now.saturating_sub(start).max(1);
    let c = (cpu / ticks) * 100 / elapsed;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let secs = start % 86_400;
    let stime = format!("{:02}:{:02}", secs / 3600, (secs % 3600) / 60);
    let t = cpu / ticks;
    let time = format!("{:02}:{:02}:{:02}", t / 3600, (t % 3600) / 60, t % 60);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(vec![
        host_user(uid),
        pid.to_string(),
        ppid,
        c.to_string(),
        stime,
        "?".into(),
        time,
        cmd,
    ])
}

/// Rows for the given host pids (processes that vanished meanwhile are skipped).
pub fn top(pids: &[i32]) -> TopOutput {
    let ticks = clock_ticks();
    let btime = boot_time();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    TopOutput {
        titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        processes: pids
            .iter()
            .filter_map(|p| row(*p, ticks, btime, now))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id() as i32;
        let t = top(&[me, -5]);
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.processes[0][1], me.to_string());
        assert_eq!(t.titles.len(), t.processes[0].len());
    }
}
