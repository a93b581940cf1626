//! The whole story with the binary, over HTTP: a backup taken while the
//! server writes, a restore refused while it runs, and after the restore
//! a new server that answers exactly what was backed up, its event feed
//! going on from the backup's last number.

use std::path::Path;

use commandes::backup::{self, Error};
use serde_json::{json, Value};

use crate::process::{commandes, serve, terminate, Served};

pub const TOKEN: &str = "backup-token-0123456789";

pub fn start(dir: &Path, db: &Path) -> Served {
    serve(
        commandes(dir)
            .env("COMMANDES_API_TOKENS", TOKEN)
            .env(
                "COMMANDES_DATABASE_URL",
                format!("sqlite://{}", db.display()),
            )
            .arg("--no-demo-data"),
        false,
    )
}

/// Starts a server on the restored `db` and checks that it serves exactly
/// `backed_up` (orders, histories, `/stats`) and that the feed goes on
/// from the backup's last number `last`. The server is left running.
pub async fn serves_the_backup(dir: &Path, db: &Path, backed_up: &Value, last: i64) -> Served {
    let served = start(dir, db);
    let client = Client {
        http: reqwest::Client::new(),
        base: served.base(),
    };
    assert_eq!(&client.state().await, backed_up);
    client.create("AFTER", 4200).await;
    let next = client.get(&format!("/events?after={last}")).await;
    assert_eq!(next[0]["data"]["sequence"].as_i64(), Some(last + 1));
    assert_eq!(next[0]["data"]["order_id"], "AFTER");
    served
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        if r.status() == 204 {
            return Value::Null;
        }
        r.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn create(&self, order_id: &str, cents: u32) -> i64 {
        let body = json!({
            "order_id": order_id,
            "customer_id": format!("C{}", cents % 3),
            "total_amount": format!("{}.{:02}", cents / 100, cents % 100),
        });
        let made = self
            .send(reqwest::Method::POST, "/commandes", Some(body))
            .await;
        made["id"].as_i64().unwrap()
    }

    /// What a reader sees: the orders, every order's history, the feed
    /// and the figures.
    pub async fn state(&self) -> Value {
        let orders = self.get("/commandes?limit=1000&sort=id").await;
        let mut histories = serde_json::Map::new();
        for order in orders.as_array().unwrap() {
            let id = order["id"].as_i64().unwrap();
            histories.insert(
                id.to_string(),
                self.get(&format!("/commandes/{id}/history")).await,
            );
        }
        json!({
            "orders": orders,
            "histories": histories,
            "feed": self.get("/events?limit=1000").await,
            "stats": self.get("/stats").await,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_database_serves_exactly_what_was_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    std::fs::create_dir(&backups).unwrap();
    let served = start(dir.path(), &db);
    let client = Client {
        http: reqwest::Client::new(),
        base: served.base(),
    };
    for i in 0..30 {
        let id = client.create(&format!("S-{i}"), 1000 + i * 37).await;
        if i % 4 == 0 {
            let path = format!("/commandes/{id}");
            let body = json!({"status": "processing"});
            client.send(reqwest::Method::PUT, &path, Some(body)).await;
        }
    }
    let doomed = client.create("S-GONE", 500).await;
    client
        .send(
            reqwest::Method::DELETE,
            &format!("/commandes/{doomed}"),
            None,
        )
        .await;

    // Taken from outside the server while it runs, as `commandes backup` will.
    let file = backup::snapshot(&db, &backups).unwrap();
    let backed_up = client.state().await;
    let feed = backed_up["feed"].as_array().unwrap();
    let last = feed.last().unwrap()["data"]["sequence"].as_i64().unwrap();
    assert_eq!(file.info.last_event_sequence, last);
    assert_eq!(file.info.orders, 30);

    // Later changes, lost by the restore (that is the point of it).
    for i in 0..5 {
        client.create(&format!("LATER-{i}"), 100 + i).await;
    }
    let later = client.state().await;

    // Refused while the server runs, and nothing changes.
    let err = backup::restore(&file.path, &db).unwrap_err();
    assert!(matches!(err, Error::InUse(_)), "{err:?}");
    assert_eq!(client.state().await, later);
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");

    let restored = backup::restore(&file.path, &db).unwrap();
    assert_eq!(restored.info.orders, 30);
    assert_eq!(backup::verify(&restored.kept.unwrap()).unwrap().orders, 35);

    let served = serves_the_backup(dir.path(), &db, &backed_up, last).await;
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
}
