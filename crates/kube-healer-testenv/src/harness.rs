//! An end-to-end test harness: one local cluster per test binary, a namespace per test.
//!
//! Test binaries declare `harness = false` and call [`run`] from `main`. Trials run in parallel on
//! a shared tokio runtime; each gets a [`Ctx`] with an admin client and helpers. The cluster is torn
//! down after the last trial, whether trials passed or failed (and by the reaper if the process is
//! killed). Output and exit code are cargo test's, so `cargo test` and CI read them as usual.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use libtest_mimic::{Arguments, Failed, Trial};

use crate::cluster::{ClusterOptions, TestCluster};

type BoxFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One end-to-end test: a name and an async body.
pub struct E2eTest {
    name: String,
    body: Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>,
    ignored: bool,
}

/// Declares a test. `body` receives a [`Ctx`] and returns `anyhow::Result<()>`.
pub fn test<F, Fut>(name: &str, body: F) -> E2eTest
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    E2eTest {
        name: name.to_string(),
        body: Arc::new(move |ctx| Box::pin(body(ctx))),
        ignored: false,
    }
}

impl E2eTest {
    /// Slow tests: skipped by plain `cargo test`, run with `-- --include-ignored` (as CI does).
    pub fn ignored(mut self) -> Self {
        self.ignored = true;
        self
    }
}

/// What a test gets: the cluster, an admin client, and a unique prefix for the names it creates.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub cluster: Arc<TestCluster>,
    /// Short and unique per test: use it in node and namespace names.
    pub id: String,
}

impl Ctx {
    /// Creates a namespace `<id>-<suffix>` and waits for its default service account, without
    /// which the ServiceAccount admission plugin refuses pods.
    pub async fn namespace(&self, suffix: &str) -> anyhow::Result<String> {
        let name = format!("{}-{suffix}", self.id);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &name);
        crate::wait::until(
            &format!("default service account in {name}"),
            Duration::from_secs(60),
            || async { Ok(accounts.get_opt("default").await?.map(|_| ())) },
        )
        .await?;
        Ok(name)
    }

    /// A name unique to this test: `<id>-<suffix>`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }
}

/// Runs the tests on one freshly started cluster and returns the process exit code.
pub fn run(options: ClusterOptions, tests: Vec<E2eTest>) -> ExitCode {
    let args = Arguments::from_args();
    // kube's client logs every non-2xx answer at ERROR; readiness polling expects some of those.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let will_run = !args.list && tests.iter().any(|t| selected(&args, t));
    let cluster = if will_run {
        match runtime.block_on(TestCluster::start(options)) {
            Ok(c) => {
                eprintln!(
                    "local cluster ready in {:.1}s at {}",
                    c.started_in.as_secs_f64(),
                    c.dir().display()
                );
                Some(Arc::new(c))
            }
            Err(e) => {
                eprintln!("could not start the local cluster: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let trials = trials(tests, cluster.clone(), runtime.handle());
    let conclusion = libtest_mimic::run(&args, trials);
    let forbidden = cluster.as_deref().map(refused_or_secret).unwrap_or_default();
    for line in &forbidden {
        eprintln!("the operator's ServiceAccount: {line}");
    }
    if let Some(cluster) = cluster {
        match Arc::into_inner(cluster) {
            Some(c) => c.stop(),
            None => eprintln!("a test kept the cluster alive; the reaper will stop it at exit"),
        }
    }
    drop(runtime);
    if forbidden.is_empty() {
        conclusion.exit_code()
    } else {
        eprintln!(
            "{} requests of the operator were refused (403: the chart's RBAC misses them) or touched Secrets",
            forbidden.len()
        );
        ExitCode::FAILURE
    }
}

/// Each test as a trial on the shared cluster, with an id of its own and its time told.
fn trials(
    tests: Vec<E2eTest>,
    cluster: Option<Arc<TestCluster>>,
    handle: &tokio::runtime::Handle,
) -> Vec<Trial> {
    let counter = Arc::new(AtomicU32::new(0));
    tests
        .into_iter()
        .map(|t| {
            let cluster = cluster.clone();
            let handle = handle.clone();
            let counter = counter.clone();
            let body = t.body.clone();
            let name = t.name.clone();
            Trial::test(t.name, move || {
                let cluster = cluster.ok_or_else(|| Failed::from("no cluster"))?;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let id = format!("t{n}-{}", short(&name));
                let started = std::time::Instant::now();
                let result = handle.block_on(async move {
                    let client = cluster.client().map_err(|e| Failed::from(e.to_string()))?;
                    body(Ctx { client, cluster, id })
                        .await
                        .map_err(|e| Failed::from(format!("{e:#}")))
                });
                eprintln!("  {name}: {:.1}s", started.elapsed().as_secs_f64());
                result
            })
            .with_ignored_flag(t.ignored)
        })
        .collect()
}

/// The operator runs as its chart's ServiceAccount (impersonated): any refusal means the chart's
/// RBAC is not enough for what the tests made it do. It never touches Secrets, allowed or not.
fn refused_or_secret(cluster: &TestCluster) -> Vec<String> {
    let mut lines: Vec<String> = match cluster.forbidden_impersonated() {
        Ok(refused) => refused
            .into_iter()
            .map(|l| format!("refused (403): {l}"))
            .collect(),
        Err(e) => vec![e.to_string()],
    };
    lines.extend(
        cluster
            .impersonated_secret_requests()
            .unwrap_or_else(|e| vec![e.to_string()]),
    );
    lines
}

fn selected(args: &Arguments, test: &E2eTest) -> bool {
    // --ignored runs only the ignored tests; --include-ignored runs all of them.
    let ignored_ok = if args.ignored {
        test.ignored
    } else {
        !test.ignored || args.include_ignored
    };
    let filter_ok = match &args.filter {
        Some(f) if args.exact => &test.name == f,
        Some(f) => test.name.contains(f.as_str()),
        None => true,
    };
    let skipped = args.skip.iter().any(|s| test.name.contains(s.as_str()));
    ignored_ok && filter_ok && !skipped
}

/// A DNS-label-safe abbreviation of a test name.
fn short(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-')
        .chars()
        .take(24)
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}
