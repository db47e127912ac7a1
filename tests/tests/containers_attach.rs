//! The stock docker CLI's interactive container paths on one lab host: `run -d` returns (the
//! wait request answers before `start`), foreground `run` prints the output and exits with the
//! container's code, `run --rm` removes the container, `exec -i` carries stdin (docker's
//! hijacked connection and `shoal exec -i`), `exec -t` gets a terminal, `docker import` makes an
//! image, and nothing is left behind.

use shoal_e2e::{Host, Lab, LabOptions, test_images};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The docker CLI against the host's daemon with `input` on stdin, bounded by `timeout`.
fn docker_io(h: &Host, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("timeout")
        .args(["60", "docker", "-H"])
        .arg(h.host_uri())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running docker CLI");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .expect("writing docker's stdin");
    }
    child.wait_with_output().expect("waiting for docker CLI")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn docker_run_and_exec_with_stdin() {
    let lab = Lab::new(LabOptions {
        hosts: 1,
        daemon_args: Vec::new(),
    })
    .unwrap();
    lab.load_images("both.tar").unwrap();
    let images = test_images().unwrap();
    let h = lab.host(1);
    let image = "shoal-test/httpd:latest";

    // `run -d` prints the id and returns while the container keeps running.
    let out = docker_io(h, &["run", "-d", "--name", "bg", image, "sleep", "300"], "");
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let state = h
        .docker(&["inspect", "-f", "{{.State.Status}}", "bg"])
        .unwrap();
    assert_eq!(state.trim(), "running");

    // `exec -i` feeds stdin to the process and closes it at the end.
    let out = docker_io(h, &["exec", "-i", "bg", "cat"], "hi\nthere\n");
    assert!(out.status.success(), "exec -i: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\nthere\n");
    let out = docker_io(
        h,
        &["exec", "-i", "bg", "sh", "-c", "wc -l; exit 3"],
        "a\nb\n",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "2");
    let out = h
        .shoal_stdin(&["exec", "-i", "bg", "cat"], "from-shoal\n")
        .unwrap();
    assert!(out.status.success(), "shoal exec -i: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-shoal\n");
    // `-t` runs the process on a terminal; its output comes back raw (CR LF line ends).
    let out = docker_io(h, &["exec", "-t", "bg", "sh", "-c", "tty; echo tty-ok"], "");
    assert!(out.status.success(), "exec -t: {}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("/dev/pts/"), "{said:?}");
    assert!(said.contains("tty-ok\r\n"), "{said:?}");
    // Without -i the process gets no input.
    let out = docker_io(h, &["exec", "bg", "cat"], "ignored\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");

    // Foreground run: output, then the container's exit code.
    let out = docker_io(
        h,
        &[
            "run",
            "--name",
            "fg",
            image,
            "sh",
            "-c",
            "echo fg-out; exit 7",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("fg-out"),
        "{}",
        text(&out.stdout)
    );
    // `--rm` removes it once it exited.
    let out = docker_io(
        h,
        &["run", "--rm", "--name", "gone", image, "echo", "rm-out"],
        "",
    );
    assert!(out.status.success(), "run --rm: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rm-out"));
    let all = h.docker(&["ps", "-a", "--format", "{{.Names}}"]).unwrap();
    assert!(!all.contains("gone"), "{all}");

    // Waiting on a missing container is a 404, not an endless wait.
    let out = docker_io(h, &["wait", "no-such-container"], "");
    assert!(!out.status.success());

    // `docker import` sends the rootfs tarball as the body of `images/create?fromSrc=-`.
    let out = docker_io(
        h,
        &[
            "import",
            "--change",
            "CMD [\"echo\", \"docker-imported-ok\"]",
            &images.join("busybox-rootfs.tar").to_string_lossy(),
            "shoal-test/docker-imported:1",
        ],
        "",
    );
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sha256:"),
        "{}",
        text(&out.stdout)
    );
    let out = docker_io(h, &["run", "--rm", "shoal-test/docker-imported:1"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "docker-imported-ok");
    h.docker(&["rmi", "shoal-test/docker-imported:1"]).unwrap();

    h.docker(&["rm", "-f", "bg", "fg"]).unwrap();
    assert_eq!(h.docker(&["ps", "-aq"]).unwrap().trim(), "");
}
