//! API faults on the real API server. A validating admission webhook served on 127.0.0.1 answers
//! the requests a test picks with an error code (409, 429, 500, ...) or holds them past the
//! webhook's timeout, so that the API server itself fails them. Every request is real: the API
//! server authenticates, authorizes, audits and answers it; only the admission verdict is
//! injected. Faults go only to one user's requests (the operator's): the controllers' updates of
//! the same objects pass, as does every request nobody picked.
//!
//! The webhook sees pod DELETEs and pod evictions in namespaces labelled [`NAMESPACE_LABEL`], and
//! UPDATEs (patches) of nodes labelled [`NODE_LABEL`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Pods in namespaces with this label (value "on") go through the webhook.
pub const NAMESPACE_LABEL: &str = "kube-healer.test/faults";
/// Nodes with this label (value "on") go through the webhook.
pub const NODE_LABEL: &str = "kube-healer.test/faults";

/// How long the API server waits for the webhook; a [`Fault::Hang`] outlasts it. Every call the
/// webhook lets through waits for its answer too, from a server on the test's own runtime: on a
/// loaded 2-core machine a short timeout would fail calls the test meant to pass (and break its
/// exact counts).
const WEBHOOK_TIMEOUT_SECONDS: i32 = 6;

/// What one request gets instead of being allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Refused with this HTTP code (as the API server's answer to the client).
    Code(u16),
    /// No verdict within the webhook's timeout: the API server fails the request itself.
    Hang,
}

/// Which requests: (operation, resource with "/subresource", namespace, name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub operation: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Request {
    pub fn delete_pod(namespace: &str, name: &str) -> Self {
        Self::new("DELETE", "pods", namespace, name)
    }

    pub fn evict_pod(namespace: &str, name: &str) -> Self {
        Self::new("CREATE", "pods/eviction", namespace, name)
    }

    pub fn update_node(name: &str) -> Self {
        Self::new("UPDATE", "nodes", "", name)
    }

    fn new(operation: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Request {
            operation: operation.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

struct Plan {
    /// Whose requests get faults.
    user: String,
    /// Faults given one each to the next requests, in order.
    next: HashMap<Request, VecDeque<Fault>>,
    /// A fault given to every request, after `next` runs out.
    always: HashMap<Request, Fault>,
    /// Requests seen: who made each and what it got (None: allowed).
    seen: HashMap<Request, Vec<(String, Option<Fault>)>>,
}

/// The webhook: registered with the API server and served until [`Faults::remove`] or drop.
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
    name: String,
    client: Client,
    server: tokio::task::JoinHandle<()>,
}

impl Faults {
    /// Serves the webhook on a free 127.0.0.1 port and registers it as `name`; faults go to the
    /// requests of `user` alone.
    pub async fn install(client: &Client, name: &str, user: &str) -> Result<Self> {
        let (certs, key, ca_pem) = certificate()?;
        let tls =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
                .map_err(|e| Error::Other(format!("webhook TLS: {e}")))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| Error::Other(format!("binding the webhook: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Other(e.to_string()))?
            .port();
        let plan = Arc::new(Mutex::new(Plan {
            user: user.into(),
            next: HashMap::new(),
            always: HashMap::new(),
            seen: HashMap::new(),
        }));
        let server = tokio::spawn(serve(listener, acceptor, plan.clone()));
        let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": name},
            "webhooks": [
                webhook("pods.faults.kube-healer.test", port, &ca_pem,
                    json!([{"operations": ["DELETE", "CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["pods", "pods/eviction"], "scope": "Namespaced"}]),
                    json!({"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "on"}}})),
                webhook("nodes.faults.kube-healer.test", port, &ca_pem,
                    json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["nodes"], "scope": "Cluster"}]),
                    json!({"objectSelector": {"matchLabels": {NODE_LABEL: "on"}}})),
            ],
        }))?;
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        api.create(&PostParams::default(), &configuration).await?;
        let faults = Faults {
            plan,
            name: name.into(),
            client: client.clone(),
            server,
        };
        faults.wait_active().await?;
        Ok(faults)
    }

    /// The next requests matching `request` get these faults, one each, in order.
    pub fn inject(&self, request: Request, faults: &[Fault]) {
        let mut plan = self.plan.lock().expect("fault plan");
        plan.next.entry(request).or_default().extend(faults);
    }

    /// Every request matching `request` gets `fault` (after any injected one by one).
    pub fn always(&self, request: Request, fault: Fault) {
        self.plan
            .lock()
            .expect("fault plan")
            .always
            .insert(request, fault);
    }

    /// The requests matching `request` in order: the user who made each, and what it got (None:
    /// allowed).
    pub fn seen(&self, request: &Request) -> Vec<(String, Option<Fault>)> {
        let plan = self.plan.lock().expect("fault plan");
        plan.seen.get(request).cloned().unwrap_or_default()
    }

    /// Unregisters the webhook and stops serving it.
    pub async fn remove(self) -> Result<()> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::default()).await?;
        Ok(())
    }

    /// The API server picks up a new webhook configuration within a second or so: wait until a
    /// request reaches the webhook (a dry-run delete of a namespace-labelled probe pod would do,
    /// but any admitted request shows the same; a node update of nothing is enough).
    async fn wait_active(&self) -> Result<()> {
        use k8s_openapi::api::core::v1::Node;
        let probe = format!("{}-probe", self.name);
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": probe, "labels": {NODE_LABEL: "on"}},
            "spec": {"unschedulable": true, "taints": [{"key": "kube-healer.test/probe", "effect": "NoSchedule"}]},
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        let seen = Request::update_node(&probe);
        let result = crate::wait::until(
            "the fault webhook to be called",
            Duration::from_secs(30),
            || async {
                let patch =
                    json!({"metadata": {"annotations": {"kube-healer.test/probe": nanos().to_string()}}});
                nodes
                    .patch(
                        &probe,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&patch),
                    )
                    .await?;
                Ok((!self.seen(&seen).is_empty()).then_some(()))
            },
        )
        .await;
        nodes.delete(&probe, &DeleteParams::default()).await?;
        result
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn webhook(name: &str, port: u16, ca_pem: &str, rules: Value, selector: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": {
            "url": format!("https://127.0.0.1:{port}/admit"),
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        },
        "rules": rules,
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
    });
    if let (Some(hook), Some(selector)) = (hook.as_object_mut(), selector.as_object()) {
        hook.extend(selector.clone());
    }
    hook
}

type Certs = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
    String,
);

/// A CA of its own and a serving certificate for 127.0.0.1 signed by it.
fn certificate() -> Result<Certs> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec!["localhost".to_string()])?;
    serving
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = serving.signed_by(&key, &issuer)?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((vec![cert.der().clone()], der, ca_pem))
}

async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, plan: Arc<Mutex<Plan>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, plan) = (acceptor.clone(), plan.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                let plan = plan.clone();
                async move {
                    let body = request.into_body().collect().await?.to_bytes();
                    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let answer = admit(&review, &plan).await;
                    Ok::<_, hyper::Error>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(answer.to_string())))
                            .expect("static response"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn admit(review: &Value, plan: &Mutex<Plan>) -> Value {
    let request = &review["request"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut resource = text(&request["resource"]["resource"]);
    if let Some(sub) = request["subResource"].as_str().filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    let key = Request {
        operation: text(&request["operation"]),
        resource,
        namespace: text(&request["namespace"]),
        name: text(&request["name"]),
    };
    let fault = {
        let mut plan = plan.lock().expect("fault plan");
        let user = text(&request["userInfo"]["username"]);
        let fault = if user == plan.user {
            plan.next
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                .or_else(|| plan.always.get(&key).copied())
        } else {
            None
        };
        plan.seen.entry(key).or_default().push((user, fault));
        fault
    };
    let response = match fault {
        None => json!({"allowed": true}),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(WEBHOOK_TIMEOUT_SECONDS as u64 + 3)).await;
            json!({"allowed": true})
        }
        Some(Fault::Code(code)) => json!({"allowed": false, "status": {
            "code": code, "reason": reason(code), "message": format!("injected fault: {code}")}}),
    };
    let mut response = response;
    response["uid"] = request["uid"].clone();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

fn reason(code: u16) -> &'static str {
    match code {
        409 => "Conflict",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}
