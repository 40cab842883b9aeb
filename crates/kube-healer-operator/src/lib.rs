//! kube-healer's I/O shell: watches, stores, timers, executors, records, metrics, leader election
