//! The Kubernetes manifests of `deploy/kubernetes/`, checked without a
//! cluster:
//!
//! - every resource passes `kubernetes-validate --strict` (PyPI; installed by
//!   `.ci/run`) against the oldest Kubernetes they need and the newest the
//!   tool knows; without the tool the test says it is skipped, and fails
//!   under CI (`CI=true`);
//! - the Deployment runs as written against the Supabase stand-in
//!   (`standin.rs`): its init container and its server, with the command,
//!   arguments and environment the manifests give them (the ConfigMap, the
//!   example Secret with the stand-in's host, port, password and CA put in
//!   place of the placeholders, the Secret's CA file where its volume is
//!   mounted), run as processes: the init container migrates through the
//!   session pooler (and finds nothing to do the second time), the server
//!   becomes ready through the transaction pooler with `verify-full`, the
//!   probes and `commandes healthcheck` pass, and without the right CA the
//!   init container stops with the reason the README names;
//! - `deploy/kubernetes/README.md`'s `kubectl create secret` makes the keys
//!   the Deployment reads, and no page still speaks of a migration Job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::process::{commandes, serve, terminate};
use crate::standin::{pooler_or_skip, Pooler, PASSWORD};

/// Where the manifests are.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// One manifest file (one YAML document), as JSON values.
fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The files `kubectl apply -k` applies, from kustomization.yaml.
fn resources() -> Vec<String> {
    manifest("kustomization.yaml")["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn required_under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[test]
fn kustomization_lists_every_manifest_but_the_secret_template() {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        // The Secret is a template; the ServiceMonitor needs the Prometheus
        // Operator's CRDs, so it is applied on its own where they exist.
        .filter(|n| {
            ![
                "kustomization.yaml",
                "secret.example.yaml",
                "servicemonitor.yaml",
            ]
            .contains(&n.as_str())
        })
        .collect();
    on_disk.sort();
    let mut listed = resources();
    listed.sort();
    assert_eq!(listed, on_disk);
}

#[test]
fn the_manifests_pass_kubernetes_validate() {
    let mut files = resources();
    files.push("secret.example.yaml".into());
    // 1.30: preStop's `sleep` action (beta, on by default) is the newest
    // field the Deployment uses.
    for version in ["1.30.0", "1.37.0"] {
        let out = Command::new("kubernetes-validate")
            .current_dir(dir())
            .args(["--strict", "--no-warn", "--kubernetes-version", version])
            .args(&files)
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if required_under_ci() {
                    panic!("CI=true but kubernetes-validate is missing: pip install kubernetes-validate");
                }
                eprintln!(
                    "SKIPPED: the manifests were not validated (kubernetes-validate is not \
                     installed: pip install kubernetes-validate)"
                );
                return;
            }
            Err(e) => panic!("kubernetes-validate: {e}"),
        };
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "against {version}:\n{report}");
        for file in &files {
            assert!(
                report.contains(&format!("{file} passed")),
                "{file} against {version}:\n{report}"
            );
        }
    }
}

#[test]
fn the_readme_makes_the_secret_the_deployment_reads() {
    let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
    // The first `kubectl create secret generic commandes` command, with its
    // continuation lines.
    let start = readme
        .find("kubectl create secret generic commandes")
        .expect("README.md creates the Secret");
    let mut command = String::new();
    for line in readme[start..].lines() {
        command.push_str(line.trim_end_matches('\\'));
        command.push(' ');
        if !line.trim_end().ends_with('\\') {
            break;
        }
    }
    let mut made = BTreeMap::new();
    for word in command.split_whitespace() {
        for flag in ["--from-literal=", "--from-file="] {
            if let Some(rest) = word.strip_prefix(flag) {
                let (key, value) = rest.split_once('=').unwrap();
                made.insert(key.to_string(), value.trim_matches('"').to_string());
            }
        }
    }
    let example = manifest("secret.example.yaml");
    let example_keys: BTreeSet<&String> =
        example["stringData"].as_object().unwrap().keys().collect();
    assert_eq!(
        made.keys().collect::<BTreeSet<_>>(),
        example_keys,
        "README.md's command and secret.example.yaml make different keys"
    );
    let deployment = manifest("deployment.yaml");
    let spec = &deployment["spec"]["template"]["spec"];
    for key in secret_keys(spec) {
        assert!(made.contains_key(&key), "README.md does not make {key}");
    }
    for key in ["database-url", "migration-database-url"] {
        assert!(
            made[key].ends_with("?sslmode=verify-full"),
            "README.md's {key}: {}",
            made[key]
        );
        assert!(
            example["stringData"][key]
                .as_str()
                .unwrap()
                .ends_with("?sslmode=verify-full"),
            "secret.example.yaml's {key}"
        );
    }
    // The migration step is the init container now.
    for page in [
        dir().join("README.md"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/supabase.md"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"),
    ] {
        let text = std::fs::read_to_string(&page).unwrap().to_lowercase();
        for stale in ["migrate-job", "migration job", "job/commandes-migrate"] {
            assert!(!text.contains(stale), "{} mentions {stale}", page.display());
        }
    }
}

/// The Secret keys a pod spec reads, from env and from volumes.
fn secret_keys(spec: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for container in spec[list].as_array().unwrap() {
            for var in container["env"].as_array().into_iter().flatten() {
                let reference = &var["valueFrom"]["secretKeyRef"];
                if reference.is_object() {
                    keys.insert(reference["key"].as_str().unwrap().to_string());
                }
            }
        }
    }
    for volume in spec["volumes"].as_array().unwrap() {
        for item in volume["secret"]["items"].as_array().into_iter().flatten() {
            keys.insert(item["key"].as_str().unwrap().to_string());
        }
    }
    keys
}

// ---------------------------------------------------------------------------
// The Deployment as processes

/// A pod's pieces on this machine: the example Secret with the stand-in's
/// values, and a local directory for each of its volumes.
struct Pod {
    spec: Value,
    configmap: Value,
    secret: Value,
    /// mountPath → the local directory standing in for it.
    volumes: BTreeMap<String, PathBuf>,
    _root: tempfile::TempDir,
}

impl Pod {
    /// The Deployment's pod, its Secret's URLs pointed at `pooler`'s
    /// database `db`, its CA the file at `ca`.
    fn new(pooler: &Pooler, db: &str, ca: &Path) -> Pod {
        let deployment = manifest("deployment.yaml");
        let spec = deployment["spec"]["template"]["spec"].clone();
        let configmap = manifest("configmap.yaml");
        let mut secret = manifest("secret.example.yaml");
        let data = secret["stringData"].as_object_mut().unwrap();
        for (key, port) in [
            ("database-url", pooler.transaction_port),
            ("migration-database-url", pooler.session_port),
        ] {
            // The placeholders are replaced, the rest (user form, query) is
            // kept as the example has it.
            let mut url = url::Url::parse(data[key].as_str().unwrap()).unwrap();
            assert!(
                url.query().is_some_and(|q| !q.contains("sslrootcert")),
                "{key}: the CA comes from COMMANDES_DATABASE_CA_FILE"
            );
            url.set_host(Some("localhost")).unwrap();
            url.set_port(Some(port)).unwrap();
            // The stand-in's role is `postgres`; Supabase's pooler spells it
            // postgres.PROJECT_REF.
            assert!(url.username().starts_with("postgres"));
            url.set_username("postgres").unwrap();
            url.set_password(Some(PASSWORD)).unwrap();
            url.set_path(db);
            data[key] = json!(url.to_string());
        }
        assert!(data["database-ca.crt"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        data["database-ca.crt"] = json!(std::fs::read_to_string(ca).unwrap());

        let root = tempfile::tempdir().unwrap();
        let mut volumes = BTreeMap::new();
        for (i, volume) in spec["volumes"].as_array().unwrap().iter().enumerate() {
            let local = root.path().join(format!("volume-{i}"));
            std::fs::create_dir(&local).unwrap();
            if volume["secret"].is_object() {
                assert_eq!(volume["secret"]["secretName"], secret["metadata"]["name"]);
                for item in volume["secret"]["items"].as_array().unwrap() {
                    let key = item["key"].as_str().unwrap();
                    let value = secret["stringData"][key]
                        .as_str()
                        .unwrap_or_else(|| panic!("the Secret has no {key}"));
                    std::fs::write(local.join(item["path"].as_str().unwrap()), value).unwrap();
                }
            } else {
                assert!(volume["emptyDir"].is_object(), "{volume}");
            }
            let name = volume["name"].as_str().unwrap();
            for list in ["initContainers", "containers"] {
                for container in spec[list].as_array().unwrap() {
                    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                        if mount["name"] == name {
                            volumes
                                .insert(mount["mountPath"].as_str().unwrap().into(), local.clone());
                        }
                    }
                }
            }
        }
        Pod {
            spec,
            configmap,
            secret,
            volumes,
            _root: root,
        }
    }

    fn container(&self, list: &str, name: &str) -> &Value {
        self.spec[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {list} {name}"))
    }

    /// The environment the kubelet gives `container`: envFrom, then env
    /// (which wins), mounted paths replaced by their local directories.
    fn env(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            assert_eq!(
                source["configMapRef"]["name"],
                self.configmap["metadata"]["name"]
            );
            for (k, v) in self.configmap["data"].as_object().unwrap() {
                env.insert(k.clone(), v.as_str().unwrap().to_string());
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap().to_string();
            if let Some(value) = var["value"].as_str() {
                env.insert(name, self.local_path(value));
                continue;
            }
            let reference = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(reference["name"], self.secret["metadata"]["name"]);
            let key = reference["key"].as_str().unwrap();
            match self.secret["stringData"][key].as_str() {
                Some(value) => {
                    env.insert(name, value.to_string());
                }
                None => assert_eq!(
                    reference["optional"], true,
                    "{name}: the Secret has no {key}, and the pod would not start"
                ),
            }
        }
        env
    }

    /// `value` with a mount path replaced by its local directory.
    fn local_path(&self, value: &str) -> String {
        for (mount, local) in &self.volumes {
            if let Some(rest) = value.strip_prefix(mount.as_str()) {
                return format!("{}{rest}", local.display());
            }
        }
        value.to_string()
    }

    /// The container as a process: the image's entrypoint (this build's
    /// binary) with the container's args, in an empty directory (the
    /// image's /data), with nothing in its environment but the pod's.
    fn process(&self, container: &Value, workdir: &Path) -> Command {
        assert!(
            container["command"].is_null(),
            "the image's ENTRYPOINT runs: {container}"
        );
        let mut cmd = commandes(workdir);
        cmd.env_clear().envs(self.env(container));
        for arg in container["args"].as_array().unwrap() {
            cmd.arg(arg.as_str().unwrap());
        }
        cmd
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_runs_as_written_against_the_standin() {
    let Some(pooler) = pooler_or_skip() else {
        return;
    };
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/commandes"]"#),
        "the containers' args are given to the binary"
    );
    let db = pooler.cluster.database().await;
    let workdir = tempfile::tempdir().unwrap();

    // A CA that did not sign the stand-in's certificates, where the Secret's
    // goes: the init container stops, with the reason the README names.
    let wrong = Pod::new(pooler, &db, &pooler.cluster.other_ca);
    let migrate = wrong.container("initContainers", "migrate");
    let out = wrong.process(migrate, workdir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not signed by a CA trusted here"),
        "{}",
        text(&out)
    );

    let pod = Pod::new(pooler, &db, &pooler.cluster.ca);
    let migrate = pod.container("initContainers", "migrate");
    let ca_file = &pod.env(migrate)["COMMANDES_DATABASE_CA_FILE"];
    assert!(Path::new(ca_file).is_file(), "{ca_file} is mounted");

    // The first pod's init container migrates; the next pod's finds
    // nothing to do.
    let out = pod.process(migrate, workdir.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("migrated schema from version 0 to"),
        "{}",
        text(&out)
    );
    let out = pod.process(migrate, workdir.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("schema already at version"),
        "{}",
        text(&out)
    );

    // The server: the ConfigMap's port is the containerPort its probes use.
    let server = pod.container("containers", "commandes");
    let env = pod.env(server);
    let port = &server["ports"][0];
    assert_eq!(port["containerPort"].to_string(), env["COMMANDES_PORT"]);
    assert_eq!(env["COMMANDES_DATABASE_CA_FILE"], *ca_file);
    // The pod's own network namespace is this machine's: a free port on the
    // loopback stands in for it.
    let served = serve(&mut pod.process(server, workdir.path()), false);
    let base = served.base();
    let client = reqwest::Client::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &server[probe]["httpGet"];
        assert_eq!(get["port"], port["name"], "{probe}");
        let path = get["path"].as_str().unwrap();
        // The kubelet tries every periodSeconds; a few seconds is plenty.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = client
                .get(format!("{base}{path}"))
                .timeout(Duration::from_secs(
                    server[probe]["timeoutSeconds"].as_u64().unwrap(),
                ))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if status.as_ref().is_ok_and(|s| *s == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "{probe} {path}: {status:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // `commandes healthcheck` with the container's environment, as an exec
    // probe or the image's HEALTHCHECK runs it.
    for args in [&["healthcheck"][..], &["healthcheck", "--live"]] {
        let out = commandes(workdir.path())
            .env_clear()
            .envs(&env)
            .env("COMMANDES_PORT", served.port.to_string())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }

    // It serves through the transaction pooler with a token of the Secret.
    let token = env["COMMANDES_API_TOKENS"].split(',').next().unwrap();
    let created = client
        .post(format!("{base}/commandes"))
        .bearer_auth(token)
        .json(&json!({"order_id": "K8S-1", "customer_id": "C1", "total_amount": "12.50"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Stopped, it is not ready any more.
    let served_port = served.port;
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    let out = commandes(workdir.path())
        .env_clear()
        .envs(&env)
        .env("COMMANDES_PORT", served_port.to_string())
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
