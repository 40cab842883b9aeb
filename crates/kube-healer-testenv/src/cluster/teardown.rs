//! Teardown: the cluster's processes killed in reverse start order (by PID, exactly those it
//! started), the reaper disarmed, the directory removed or kept; on a panic, each component's
//! last log lines first.

use super::TestCluster;

impl TestCluster {
    /// Tears the cluster down now (Drop does the same).
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        // Reverse start order: kwok and the controllers first, etcd last.
        let processes = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
        while let Some(mut p) = processes.pop() {
            p.kill();
        }
        self.reaper.get_mut().unwrap_or_else(|e| e.into_inner()).disarm();
        if let Some(dir) = self.dir.take() {
            if self.options.keep_dir {
                let kept = dir.keep();
                eprintln!("kube-healer-testenv: kept {}", kept.display());
            } else {
                let _ = dir.close();
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let processes = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
            for p in processes.iter() {
                eprintln!(
                    "--- {} (last lines of {}):\n{}",
                    p.name,
                    p.log.display(),
                    p.log_tail(15)
                );
            }
        }
        self.teardown();
    }
}
