//! The API server, and the forwarder probegate reaches it through.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::settings::{TOGGLE_KEY, TOGGLE_NAMESPACE, root};

pub struct ApiServer {
    workdir: PathBuf,
    pub kubeconfig: PathBuf,
    pub port: u16,
    /// How it was started, to start it again on the same port, data and certificates.
    command: Vec<String>,
    pid: u32,
    /// Set once this process started it (after a restart), to reap it.
    child: Option<Child>,
}

impl ApiServer {
    pub fn start(work: &Path) -> ApiServer {
        let workdir = work.join("apiserver");
        let out = Command::new(root().join("tests/e2e/start-apiserver.sh"))
            .arg(&workdir)
            .stderr(Stdio::inherit())
            .output()
            .expect("tests/e2e/start-apiserver.sh runs");
        assert!(
            out.status.success(),
            "the kube-apiserver did not start (see tests/e2e/README.md)"
        );
        let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        let port = text
            .split("https://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .and_then(|p| p.trim().parse().ok())
            .expect("the kubeconfig names the server's port");
        let pid: u32 = std::fs::read_to_string(workdir.join("apiserver.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let command = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        ApiServer {
            workdir,
            kubeconfig,
            port,
            command,
            pid,
            child: None,
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn annotate_toggle(&self, value: &str) {
        self.kubectl(&[
            "annotate",
            "namespace",
            TOGGLE_NAMESPACE,
            "--overwrite",
            &format!("{TOGGLE_KEY}={value}"),
        ]);
    }

    fn alive(&self) -> bool {
        std::fs::read(format!("/proc/{}/cmdline", self.pid)).is_ok_and(|c| !c.is_empty())
    }

    /// SIGTERM to its process group, as stop-apiserver.sh does, keeping its data.
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.pid)])
            .status();
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
        while self.alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The same command line: same port, etcd data and serving certificate.
    pub fn restart(&mut self) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.workdir.join("apiserver.log"))
            .unwrap();
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the kube-apiserver restarts");
        self.pid = child.id();
        std::fs::write(self.workdir.join("apiserver.pid"), self.pid.to_string()).unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["--request-timeout=5s", "get", "--raw", "/readyz"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the kube-apiserver did not come back"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn stop(&mut self) {
        let _ = Command::new(root().join("tests/e2e/stop-apiserver.sh"))
            .arg(&self.workdir)
            .status();
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.alive() {
            self.stop();
        }
    }
}

/// TCP forwarder to the API server; closed, it drops every forwarded connection and
/// refuses new ones, so probegate sees the API server gone.
pub struct Forwarder {
    pub port: u16,
    open: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(upstream: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, _) = tokio::sync::watch::channel(true);
        let state = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = state.subscribe();
                if !*state.borrow_and_update() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Forwarder { port, open, task }
    }

    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
