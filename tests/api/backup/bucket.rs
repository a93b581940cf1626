//! The off-machine copy against a real S3-compatible server: moto's
//! (PyPI `moto[server]`), started on a free port for the test and stopped
//! after it. Missing, the test is skipped with a notice, unless
//! `COMMANDES_REQUIRE_BROKERS=1` (CI sets it) makes that a failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use commandes::backup::{self, s3, Error};
use commandes::secret::Secret;
use rusty_s3::actions::{CreateBucket, ListObjectsV2, PutObject, S3Action};

use super::{close, fill, open};

pub const BUCKET: &str = "commandes-backups";
pub const KEY: &str = "test-access-key";
pub const SECRET: &str = "test-secret-key-not-to-be-shown";

/// A moto S3 server on 127.0.0.1, killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto's script, or its module where the script is not on the
    /// PATH; `None` (or a panic, when required) if neither answers.
    pub fn start() -> Option<Moto> {
        let mut failures = Vec::new();
        for (program, first) in [
            ("moto_server", &[][..]),
            ("python3", &["-m", "moto.server"][..]),
        ] {
            match Self::try_start(program, first) {
                Ok(moto) => return Some(moto),
                Err(why) => failures.push(format!("{program}: {why}")),
            }
        }
        missing(&failures.join("; "))
    }

    fn try_start(program: &str, first: &[&str]) -> Result<Moto, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .args(first)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Importing moto takes seconds on a busy machine.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("exited: {status}"));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(moto);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("did not answer within 30 s".into())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn missing(why: &str) -> Option<Moto> {
    if std::env::var("COMMANDES_REQUIRE_BROKERS").as_deref() == Ok("1") {
        panic!("no S3 stand-in: {why} (.ci/s3-standin installs it; COMMANDES_REQUIRE_BROKERS=1)");
    }
    eprintln!("SKIPPED: the bucket tests did not run: {why}");
    None
}

fn options(endpoint: &str, bucket: &str, prefix: &str) -> s3::S3Options {
    s3::S3Options {
        endpoint: endpoint.into(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        prefix: prefix.into(),
        access_key: KEY.into(),
        secret_key: Secret::new(SECRET),
        path_style: true,
        timeout: Duration::from_secs(10),
    }
}

/// Signed requests of our own, for what the module does not do (make the
/// bucket, put objects that are not backups, list everything).
pub struct Raw {
    target: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    http: reqwest::Client,
}

impl Raw {
    pub fn new(endpoint: &str) -> Raw {
        Raw {
            target: rusty_s3::Bucket::new(
                endpoint.parse().unwrap(),
                rusty_s3::UrlStyle::Path,
                BUCKET,
                "us-east-1",
            )
            .unwrap(),
            credentials: rusty_s3::Credentials::new(KEY, SECRET),
            http: reqwest::Client::new(),
        }
    }

    pub async fn create_bucket(&self) {
        let url = CreateBucket::new(&self.target, &self.credentials).sign(Duration::from_secs(60));
        let r = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }

    async fn put(&self, key: &str, body: &'static str) {
        let url = PutObject::new(&self.target, Some(&self.credentials), key)
            .sign(Duration::from_secs(60));
        let r = self.http.put(url).body(body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }

    pub async fn keys(&self) -> Vec<String> {
        let url =
            ListObjectsV2::new(&self.target, Some(&self.credentials)).sign(Duration::from_secs(60));
        let text = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut keys: Vec<_> = ListObjectsV2::parse_response(&text)
            .unwrap()
            .contents
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_keeps_exactly_n_backups_and_gives_them_back() {
    let Some(moto) = tokio::task::spawn_blocking(Moto::start).await.unwrap() else {
        return;
    };
    let raw = Raw::new(&moto.endpoint);
    raw.create_bucket().await;
    // Objects that are not backups of this prefix are never touched.
    raw.put("shop/db/notes.txt", "mine").await;
    raw.put("elsewhere/commandes-20200101T000000.000Z.db", "other")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    std::fs::create_dir(&backups).unwrap();
    let store = open(&db).await;
    let bucket = s3::Bucket::new(&options(&moto.endpoint, BUCKET, "/shop/db/")).unwrap();

    let mut names = Vec::new();
    let mut newest = None;
    for round in 0..4 {
        fill(store.as_ref(), &format!("B{round}"), 4).await;
        let file = backup::snapshot(&db, &backups).unwrap();
        let remote = bucket.upload(&file).await.unwrap();
        assert_eq!(remote.key, format!("shop/db/{}", file.name));
        assert_eq!(remote.size, file.info.size);
        let deleted = bucket.rotate(2, &remote).await.unwrap();
        names.push(file.name.clone());
        let expected: Vec<_> = if round >= 2 {
            vec![names[round - 2].clone()]
        } else {
            vec![]
        };
        assert_eq!(deleted, expected, "round {round}");
        let listed: Vec<_> = bucket
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.name, b.size))
            .collect();
        let kept = &names[names.len().saturating_sub(2)..];
        assert_eq!(
            listed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            kept,
            "round {round}"
        );
        assert!(listed.iter().all(|(_, size)| *size > 0));
        newest = Some(file);
    }
    let mut expected_keys = vec![
        "elsewhere/commandes-20200101T000000.000Z.db".to_string(),
        "shop/db/notes.txt".into(),
    ];
    expected_keys.extend(names[2..].iter().map(|n| format!("shop/db/{n}")));
    expected_keys.sort();
    assert_eq!(raw.keys().await, expected_keys);

    // Downloaded, it is the same file, and a restore takes it.
    let newest = newest.unwrap();
    let fetched = dir.path().join("fetched.db");
    let size = bucket.download(&newest.name, &fetched).await.unwrap();
    assert_eq!(size, newest.info.size);
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&newest.path).unwrap()
    );
    assert_eq!(backup::verify(&fetched).unwrap(), newest.info);
    let elsewhere = dir.path().join("elsewhere.db");
    assert_eq!(
        backup::restore(&fetched, &elsewhere).unwrap().info.orders,
        16
    );

    // Failures name the operation and S3's verdict, never a signed URL
    // or the secret.
    let gone = dir.path().join("gone.db");
    let err = bucket.download(&names[0], &gone).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::S3(_)), "{err:?}");
    assert!(text.contains("404") && text.contains("NoSuchKey"), "{text}");
    assert!(!gone.exists());
    let nowhere = s3::Bucket::new(&options(&moto.endpoint, "no-such-bucket", ""))
        .unwrap()
        .list()
        .await
        .unwrap_err()
        .to_string();
    assert!(nowhere.contains("NoSuchBucket"), "{nowhere}");
    let unreachable = s3::Bucket::new(&options("http://127.0.0.1:9", BUCKET, ""))
        .unwrap()
        .list()
        .await
        .unwrap_err()
        .to_string();
    for shown in [&text, &nowhere, &unreachable] {
        for hidden in [SECRET, "X-Amz-Signature", "X-Amz-Credential", "Signature="] {
            assert!(!shown.contains(hidden), "{shown}");
        }
    }
    // A name that is not a backup's reaches no object.
    assert!(bucket.delete("../notes.txt").await.is_err());
    assert!(bucket.delete("notes.txt").await.is_err());
    assert!(raw.keys().await.contains(&"shop/db/notes.txt".to_string()));
    close(store, &db).await;
}
