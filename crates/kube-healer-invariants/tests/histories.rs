//! Generated histories through the operator's engine: every invariant whose rule is built holds
//! at every step (the quick run of the README's test command; `kube-healer-bench invariants`
//! runs long). The histories that broke an invariant while it was built are kept in
//! tests/histories/ and run again here.

use kube_healer_invariants::{Scope, Setup, check, history};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 400, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_generated_histories(steps in history::history(Scope::ALL, 5..40)) {
        let outcome = check(Setup::default(), &steps);
        let broken: Vec<String> = outcome.binding().iter().map(|v| format!("{:?} at +{}s: {}", v.invariant, v.at - kube_healer_invariants::harness::T0, v.what)).collect();
        prop_assert!(broken.is_empty(), "{}", broken.join("\n"));
    }
}
