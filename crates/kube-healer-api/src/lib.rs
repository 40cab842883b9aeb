//! kube-healer's custom resources: HealingPolicy and HealingAction (healing.kubehealer.io/v1alpha1)
