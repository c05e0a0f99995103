//! Native execution of model-written Python for HumanEval. Each program runs in a
//! `python3` child process in a temporary folder, with an empty environment and time,
//! memory and file-size limits. The child leads its own process group, killed whole on
//! timeout, and gets a network namespace of its own where the kernel allows one. The
//! dangerous `os`, `shutil`, `subprocess` and `socket` functions are removed first.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::tasks::humaneval::{CodeExecutor, ExecOutcome};

/// Runs `program.py` after disabling what could change the machine or reach out, and
/// writes `passed` or `failed: <exception>` to the result file it opened first.
const RUNNER: &str = r#"import sys
result = open("result.txt", "w")
source = open("program.py").read()

def disable(module, names):
    for name in names:
        if hasattr(module, name):
            setattr(module, name, None)

import builtins, os, shutil, socket, subprocess
disable(os, ["system", "popen", "fork", "forkpty", "kill", "killpg", "remove", "removedirs",
             "rmdir", "unlink", "rename", "renames", "replace", "truncate", "chmod", "fchmod",
             "chown", "fchown", "lchown", "chroot", "chdir", "fchdir", "putenv", "unsetenv",
             "setuid", "execv", "execve", "execvp", "spawnv", "spawnve", "posix_spawn"])
disable(shutil, ["rmtree", "move", "chown", "copytree"])
disable(subprocess, ["Popen", "run", "call", "check_call", "check_output", "getoutput"])
disable(socket, ["socket", "create_connection", "socketpair", "fromfd"])
disable(builtins, ["exit", "quit"])
for name in ["resource", "psutil", "ctypes", "multiprocessing"]:
    sys.modules[name] = None

try:
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
    result.write("passed")
except BaseException as error:
    result.write("failed: " + str(error))
result.close()
"#;

/// Executes programs with `python3` under the limits above.
pub struct PythonProcess {
    pub python: String,
    pub memory_bytes: u64,
}

impl Default for PythonProcess {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            memory_bytes: 2 << 30,
        }
    }
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl PythonProcess {
    /// Runs one program to completion or until `timeout_ms` has passed.
    pub fn run(&self, program: &str, timeout_ms: u64) -> Result<ExecOutcome> {
        let folder = std::env::temp_dir().join(format!(
            "seedling-exec-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(folder.display(), e))?;
        let outcome = self.run_in(&folder, program, timeout_ms);
        let _ = std::fs::remove_dir_all(&folder);
        outcome
    }

    fn run_in(&self, folder: &PathBuf, program: &str, timeout_ms: u64) -> Result<ExecOutcome> {
        for (name, text) in [("runner.py", RUNNER), ("program.py", program)] {
            let path = folder.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
        }

        let memory = self.memory_bytes;
        let cpu_seconds = timeout_ms.div_ceil(1000) + 1;
        let mut command = Command::new(&self.python);
        command
            .args(["-I", "-B", "runner.py"])
            .current_dir(folder)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe libc calls run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                libc::setsid();
                // Without a network namespace the runner's socket removal is the only barrier.
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET);
                }
                let limit = |resource, value: u64| {
                    let bound = libc::rlimit {
                        rlim_cur: value as libc::rlim_t,
                        rlim_max: value as libc::rlim_t,
                    };
                    libc::setrlimit(resource, &bound);
                };
                limit(libc::RLIMIT_AS, memory);
                limit(libc::RLIMIT_CPU, cpu_seconds);
                limit(libc::RLIMIT_FSIZE, 16 << 20);
                limit(libc::RLIMIT_CORE, 0);
                Ok(())
            });
        }

        let mut child = command.spawn().map_err(|e| {
            Error::Execution(format!(
                "cannot start {} to run the generated code ({e}); install Python 3 or pass its path",
                self.python
            ))
        })?;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| Error::io(&self.python, e))? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                // The child leads its own process group; kill it with anything it started.
                unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };

        let Some(status) = status else {
            return Ok(ExecOutcome::timed_out());
        };
        match std::fs::read_to_string(folder.join("result.txt")) {
            Ok(result) if result == "passed" => Ok(ExecOutcome::passed()),
            Ok(result) if result.starts_with("failed:") => Ok(ExecOutcome {
                passed: false,
                result,
            }),
            _ => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
                }
                let last = stderr.lines().last().unwrap_or("").to_string();
                Ok(ExecOutcome::failed(&format!(
                    "the interpreter ended with {status} {last}"
                )))
            }
        }
    }
}

impl CodeExecutor for PythonProcess {
    fn execute(
        &self,
        program: &str,
        timeout_ms: u64,
    ) -> impl std::future::Future<Output = Result<ExecOutcome>> {
        std::future::ready(self.run(program, timeout_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: &str) -> ExecOutcome {
        PythonProcess::default().run(program, 3_000).unwrap()
    }

    #[test]
    fn passing_and_failing_programs() {
        assert_eq!(run("assert 1 + 1 == 2"), ExecOutcome::passed());
        assert_eq!(
            run("assert 1 + 1 == 3, 'wrong sum'").result,
            "failed: wrong sum"
        );
        assert!(run("def f(:\n").result.starts_with("failed: "));
    }

    #[test]
    fn infinite_loop_times_out_and_is_killed() {
        let start = Instant::now();
        let outcome = PythonProcess::default()
            .run("while True:\n    pass\n", 500)
            .unwrap();
        assert_eq!(outcome, ExecOutcome::timed_out());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn memory_bomb_fails_inside_the_limit() {
        let executor = PythonProcess {
            memory_bytes: 512 << 20,
            ..Default::default()
        };
        let outcome = executor.run("x = bytearray(1 << 33)\n", 3_000).unwrap();
        assert!(!outcome.passed, "{outcome:?}");
    }

    #[test]
    fn shell_and_network_are_unavailable() {
        let marker = std::env::temp_dir().join(format!("seedling-shell-{}", std::process::id()));
        let program = format!("import os\nos.system('touch {}')\n", marker.display());
        assert!(run(&program).result.starts_with("failed: "));
        assert!(!marker.exists());
        let outcome = run("import socket\nsocket.socket()\n");
        assert!(!outcome.passed, "{outcome:?}");
        let outcome = run("import subprocess\nsubprocess.run(['true'])\n");
        assert!(!outcome.passed, "{outcome:?}");
    }

    #[test]
    fn missing_interpreter_is_named() {
        let executor = PythonProcess {
            python: "/nonexistent/python3".into(),
            ..Default::default()
        };
        let message = executor.run("pass", 1_000).unwrap_err().to_string();
        assert!(message.contains("/nonexistent/python3"), "{message}");
    }
}
