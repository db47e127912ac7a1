//! shoal-monitor: the small per-container process that outlives the daemon (like conmon).
//!
//! Usage:
//!   shoal-monitor --dir DIR --pidfile FILE [--cgroup PATH] -- RUNTIME-ARGV...
//!
//! The process the daemon spawns forks the real monitor and exits as soon as the runtime
//! (`runc run --detach …`) has finished starting the container: status 0 when it started,
//! 1 with the runtime's error text on stderr when it did not. The daemon therefore never
//! waits on the long-lived monitor, which lives in its own session.
//!
//! The monitor then:
//! * holds the read ends of the container's stdout/stderr pipes and appends one JSON line
//!   per output line to `DIR/log`: `{"t":"<RFC3339Nano UTC>","s":"stdout|stderr","l":"<line>"}`
//!   (lines longer than 16 KiB are split into several records; the newline is not kept);
//! * is a child subreaper, so the container's init becomes its child once the runtime exits,
//!   and reaps it;
//! * writes `DIR/exit` atomically (write + rename) when the container ends:
//!   `{"exit_code":N,"signal":S,"oom_killed":B,"finished_at":"…","error":"…"}`;
//! * writes its own pid to `DIR/monitor.pid` (atomically) before starting the runtime.
//!
//! It forwards no signals and talks to the daemon only through these files.

use std::ffi::CString;
use std::os::raw::c_int;

/// Longest log record body; longer lines are split.
const MAX_LINE: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shoal-monitor: {e}");
            eprintln!(
                "usage: shoal-monitor --dir DIR --pidfile FILE [--cgroup PATH] -- RUNTIME-ARGV..."
            );
            std::process::exit(2);
        }
    };
    std::process::exit(launch(&opts));
}

struct Opts {
    dir: String,
    pidfile: String,
    cgroup: Option<String>,
    argv: Vec<String>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut dir = None;
        let mut pidfile = None;
        let mut cgroup = None;
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            if a == "--" {
                let argv: Vec<String> = args[i + 1..].to_vec();
                if argv.is_empty() {
                    return Err("no runtime command after --".into());
                }
                return Ok(Opts {
                    dir: dir.ok_or("--dir is required")?,
                    pidfile: pidfile.ok_or("--pidfile is required")?,
                    cgroup,
                    argv,
                });
            }
            let val = args
                .get(i + 1)
                .ok_or_else(|| format!("{a} needs a value"))?
                .clone();
            match a {
                "--dir" => dir = Some(val),
                "--pidfile" => pidfile = Some(val),
                "--cgroup" => cgroup = Some(val),
                _ => return Err(format!("unknown option {a}")),
            }
            i += 2;
        }
        Err("missing -- RUNTIME-ARGV".into())
    }
}

fn cstr(s: &str) -> CString {
    // Arguments come from argv, which cannot hold NUL bytes.
    CString::new(s.as_bytes()).unwrap_or_default()
}

fn write_all(fd: c_int, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The first process: fork the monitor, relay its start result, exit.
fn launch(opts: &Opts) -> i32 {
    let mut sync = [0 as c_int; 2];
    if unsafe { libc::pipe2(sync.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("shoal-monitor: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("shoal-monitor: fork: {}", std::io::Error::last_os_error());
        return 1;
    }
    if pid == 0 {
        unsafe { libc::close(sync[0]) };
        let code = monitor(opts, sync[1]);
        unsafe { libc::_exit(code) };
    }
    unsafe { libc::close(sync[1]) };
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = unsafe { libc::read(sync[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        msg.extend_from_slice(&buf[..n as usize]);
    }
    match msg.first() {
        Some(b'0') => 0,
        Some(_) => {
            write_all(2, &msg[1..]);
            1
        }
        None => {
            eprintln!("shoal-monitor: monitor process ended before the container started");
            1
        }
    }
}

/// Write `data` to `path` through a temporary file and a rename, so readers never see half.
fn write_atomic(path: &str, data: &[u8]) -> bool {
    let tmp = format!("{path}.tmp");
    if std::fs::write(&tmp, data).is_err() {
        return false;
    }
    std::fs::rename(&tmp, path).is_ok()
}

struct Stream {
    fd: c_int,
    name: &'static str,
    buf: Vec<u8>,
    open: bool,
}

struct Log {
    fd: c_int,
    rec: Vec<u8>,
}

impl Log {
    fn record(&mut self, stream: &str, line: &[u8]) {
        self.rec.clear();
        self.rec.extend_from_slice(b"{\"t\":\"");
        push_time(&mut self.rec, now());
        self.rec.extend_from_slice(b"\",\"s\":\"");
        self.rec.extend_from_slice(stream.as_bytes());
        self.rec.extend_from_slice(b"\",\"l\":\"");
        let text = String::from_utf8_lossy(line);
        push_json_str(&mut self.rec, &text);
        self.rec.extend_from_slice(b"\"}\n");
        if self.fd >= 0 {
            write_all(self.fd, &self.rec);
        }
    }
}

impl Stream {
    /// Read what is available; marks the stream closed at EOF.
    fn pump(&mut self, log: Option<&mut Log>, hold: &mut Vec<(usize, Vec<u8>)>, idx: usize) {
        let mut buf = [0u8; 8192];
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if errno() == libc::EINTR || errno() == libc::EAGAIN {
                return;
            }
            self.open = false;
            return;
        }
        if n == 0 {
            self.open = false;
            return;
        }
        let data = &buf[..n as usize];
        match log {
            Some(log) => self.feed(log, data),
            None => hold.push((idx, data.to_vec())),
        }
    }

    fn feed(&mut self, log: &mut Log, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = self.buf[start..end].to_vec();
            for chunk in line.chunks(MAX_LINE) {
                log.record(self.name, chunk);
            }
            if line.is_empty() {
                log.record(self.name, b"");
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        while self.buf.len() >= MAX_LINE {
            let chunk: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
            log.record(self.name, &chunk);
        }
    }

    fn flush(&mut self, log: &mut Log) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            log.record(self.name, &rest);
        }
    }
}

struct Exit {
    code: i32,
    signal: i32,
}

fn decode_status(status: c_int) -> Exit {
    if libc::WIFEXITED(status) {
        Exit {
            code: libc::WEXITSTATUS(status),
            signal: 0,
        }
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        Exit {
            code: 128 + sig,
            signal: sig,
        }
    } else {
        Exit {
            code: -1,
            signal: 0,
        }
    }
}

/// The long-lived monitor. `sync` is the pipe back to the launcher.
fn monitor(opts: &Opts, sync: c_int) -> i32 {
    let mut sync = sync;
    let fail = |sync: c_int, msg: &str| {
        let mut m = vec![b'1'];
        m.extend_from_slice(msg.as_bytes());
        write_all(sync, &m);
        1
    };
    // Let go of the launcher's stdio (the daemon waits for EOF on it); errors go through
    // the sync pipe from here on.
    let devnull_path = cstr("/dev/null");
    unsafe {
        let nul = libc::open(devnull_path.as_ptr(), libc::O_RDWR);
        if nul >= 0 {
            libc::dup2(nul, 0);
            libc::dup2(nul, 1);
            libc::dup2(nul, 2);
            if nul > 2 {
                libc::close(nul);
            }
        }
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let dir = opts.dir.trim_end_matches('/');
    // Do not hold the daemon's cwd (possibly a mount) busy.
    if std::env::set_current_dir(dir).is_err() {
        return fail(sync, &format!("cannot enter {dir}"));
    }
    let _ = std::env::set_current_dir("/");
    if !write_atomic(
        &format!("{dir}/monitor.pid"),
        format!("{}\n", std::process::id()).as_bytes(),
    ) {
        return fail(sync, &format!("cannot write {dir}/monitor.pid"));
    }
    let _ = std::fs::remove_file(format!("{dir}/exit"));

    let logpath = cstr(&format!("{dir}/log"));
    let logfd = unsafe {
        libc::open(
            logpath.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o640,
        )
    };
    if logfd < 0 {
        return fail(sync, &format!("cannot open {dir}/log"));
    }
    let mut log = Log {
        fd: logfd,
        rec: Vec::with_capacity(512),
    };

    // SIGCHLD through a signalfd, so one poll() waits for output and exits alike.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut oldmask: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &mask, &mut oldmask);
    }
    let sfd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if sfd < 0 {
        return fail(sync, "signalfd failed");
    }

    let mut out = [0 as c_int; 2];
    let mut err = [0 as c_int; 2];
    unsafe {
        if libc::pipe2(out.as_mut_ptr(), libc::O_CLOEXEC) != 0
            || libc::pipe2(err.as_mut_ptr(), libc::O_CLOEXEC) != 0
        {
            return fail(sync, "pipe failed");
        }
    }

    let argv_c: Vec<CString> = opts.argv.iter().map(|a| cstr(a)).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let devnull = cstr("/dev/null");

    let rpid = unsafe { libc::fork() };
    if rpid < 0 {
        return fail(sync, "fork failed");
    }
    if rpid == 0 {
        unsafe {
            let nul = libc::open(devnull.as_ptr(), libc::O_RDONLY);
            if nul >= 0 {
                libc::dup2(nul, 0);
            }
            libc::dup2(out[1], 1);
            libc::dup2(err[1], 2);
            libc::sigprocmask(libc::SIG_SETMASK, &oldmask, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::execvp(argv_p[0], argv_p.as_ptr());
            let msg = b"shoal-monitor: cannot execute the container runtime\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    unsafe {
        libc::close(out[1]);
        libc::close(err[1]);
    }
    let mut streams = [
        Stream {
            fd: out[0],
            name: "stdout",
            buf: Vec::new(),
            open: true,
        },
        Stream {
            fd: err[0],
            name: "stderr",
            buf: Vec::new(),
            open: true,
        },
    ];

    // Phase 1: the runtime is starting the container. Output is held back so that, if the
    // start fails, the runtime's error goes to the daemon instead of the container log.
    let mut hold: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut runtime_status: Option<c_int> = None;
    while runtime_status.is_none() {
        poll_once(&mut streams, sfd, None, &mut hold, -1);
        let mut st: c_int = 0;
        let r = unsafe { libc::waitpid(rpid, &mut st, libc::WNOHANG) };
        if r == rpid {
            runtime_status = Some(st);
        } else if r < 0 && errno() != libc::EINTR {
            runtime_status = Some(-1);
        }
    }
    // Collect whatever the runtime wrote just before exiting.
    while poll_once(&mut streams, sfd, None, &mut hold, 0) {}
    let rs = runtime_status.unwrap_or(-1);
    let runtime_ok = rs >= 0 && libc::WIFEXITED(rs) && libc::WEXITSTATUS(rs) == 0;
    let cpid: i32 = if runtime_ok {
        std::fs::read_to_string(&opts.pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    if cpid <= 0 {
        let mut text = String::new();
        for (_, chunk) in &hold {
            text.push_str(&String::from_utf8_lossy(chunk));
        }
        let mut text = text.trim().to_string();
        if text.is_empty() {
            text = if runtime_ok {
                format!("runtime did not write the pid file {}", opts.pidfile)
            } else {
                format!("container runtime failed (status {rs})")
            };
        }
        write_exit(
            dir,
            &Exit {
                code: 127,
                signal: 0,
            },
            false,
            Some(&text),
        );
        return fail(sync, &text);
    }
    for (idx, chunk) in std::mem::take(&mut hold) {
        streams[idx].feed(&mut log, &chunk);
    }
    write_all(sync, b"0");
    unsafe { libc::close(sync) };
    sync = -1;
    let _ = sync;

    // Phase 2: log output until the container's init is reaped.
    let mut exit: Option<Exit> = None;
    let mut gone_checks = 0;
    while exit.is_none() {
        let had_event = poll_once(&mut streams, sfd, Some(&mut log), &mut hold, 1000);
        loop {
            let mut st: c_int = 0;
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r == cpid {
                exit = Some(decode_status(st));
                break;
            }
            if r <= 0 {
                if r < 0 && errno() == libc::ECHILD {
                    // Not our child (should not happen with the subreaper): notice it is gone.
                    if unsafe { libc::kill(cpid, 0) } != 0 {
                        gone_checks += 1;
                        if gone_checks > 1 {
                            exit = Some(Exit {
                                code: -1,
                                signal: 0,
                            });
                        }
                    }
                }
                break;
            }
        }
        let _ = had_event;
    }
    // Drain what the container wrote before it ended; every writer is gone once the pid
    // namespace died, but bound the wait in case something escaped it.
    let deadline = now_secs() + 2;
    while streams.iter().any(|s| s.open) && now_secs() <= deadline {
        poll_once(&mut streams, sfd, Some(&mut log), &mut hold, 200);
    }
    for s in streams.iter_mut() {
        s.flush(&mut log);
    }
    let oom = opts.cgroup.as_deref().map(oom_killed).unwrap_or(false);
    let exit = exit.unwrap_or(Exit {
        code: -1,
        signal: 0,
    });
    write_exit(dir, &exit, oom, None);
    0
}

/// One poll round over the open pipes and the signalfd. Returns true if anything happened.
fn poll_once(
    streams: &mut [Stream; 2],
    sfd: c_int,
    mut log: Option<&mut Log>,
    hold: &mut Vec<(usize, Vec<u8>)>,
    timeout_ms: c_int,
) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: if streams[0].open { streams[0].fd } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: if streams[1].open { streams[1].fd } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout_ms) };
    if n <= 0 {
        return false;
    }
    for i in 0..2 {
        if fds[i].revents != 0 {
            streams[i].pump(log.as_deref_mut(), hold, i);
        }
    }
    if fds[2].revents != 0 {
        let mut info = [0u8; 128];
        while unsafe { libc::read(sfd, info.as_mut_ptr().cast(), info.len()) } > 0 {}
    }
    true
}

/// Whether the kernel OOM-killed anything in the container's memory cgroup (v1 or v2).
fn oom_killed(cgroup: &str) -> bool {
    let cg = cgroup.trim_start_matches('/');
    let candidates = [
        (
            format!("/sys/fs/cgroup/memory/{cg}/memory.oom_control"),
            "oom_kill ",
        ),
        (format!("/sys/fs/cgroup/{cg}/memory.events"), "oom_kill "),
        (
            format!("/sys/fs/cgroup/unified/{cg}/memory.events"),
            "oom_kill ",
        ),
    ];
    for (path, key) in candidates.iter() {
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix(key)
                    && v.trim().parse::<u64>().unwrap_or(0) > 0
                {
                    return true;
                }
            }
        }
    }
    false
}

fn write_exit(dir: &str, exit: &Exit, oom: bool, error: Option<&str>) {
    let mut s = Vec::with_capacity(256);
    s.extend_from_slice(
        format!(
            "{{\"exit_code\":{},\"signal\":{},\"oom_killed\":{},\"finished_at\":\"",
            exit.code, exit.signal, oom
        )
        .as_bytes(),
    );
    push_time(&mut s, now());
    s.extend_from_slice(b"\"");
    if let Some(e) = error {
        s.extend_from_slice(b",\"error\":\"");
        push_json_str(&mut s, e);
        s.extend_from_slice(b"\"");
    }
    s.extend_from_slice(b"}\n");
    write_atomic(&format!("{dir}/exit"), &s);
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

fn now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts
}

fn now_secs() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec
}

/// RFC 3339 with nanoseconds, UTC (days-to-civil from Howard Hinnant's algorithm).
fn push_time(out: &mut Vec<u8>, ts: libc::timespec) {
    let secs = ts.tv_sec;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    out.extend_from_slice(
        format!(
            "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}Z",
            ts.tv_nsec
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_epoch_and_leap_day() {
        let mut v = Vec::new();
        push_time(
            &mut v,
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 5,
            },
        );
        assert_eq!(v, b"1970-01-01T00:00:00.000000005Z");
        v.clear();
        // 2024-02-29T12:34:56Z
        push_time(
            &mut v,
            libc::timespec {
                tv_sec: 1_709_210_096,
                tv_nsec: 0,
            },
        );
        assert_eq!(v, b"2024-02-29T12:34:56.000000000Z");
    }

    #[test]
    fn json_escaping() {
        let mut v = Vec::new();
        push_json_str(&mut v, "a\"b\\c\td\u{1}é");
        assert_eq!(String::from_utf8(v).unwrap(), "a\\\"b\\\\c\\td\\u0001é");
    }

    #[test]
    fn options_parse() {
        let args: Vec<String> = ["--dir", "/x", "--pidfile", "/x/pid", "--", "runc", "run"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = Opts::parse(&args).unwrap();
        assert_eq!(o.dir, "/x");
        assert_eq!(o.argv, vec!["runc", "run"]);
        assert!(Opts::parse(&args[..4]).is_err());
    }
}
