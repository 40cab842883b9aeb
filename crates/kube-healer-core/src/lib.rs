//! kube-healer's pure logic: classify, match policies, gate and decide. No client, no clock.
