//! The tables are closed to Supabase's public roles. On Supabase the Data
//! API (PostgREST) serves the `public` schema as `anon` (anyone holding the
//! project's public key) and `authenticated` (any signed-in user), and the
//! project grants those roles everything on every new table. The service's
//! tables must not be reachable that way, around its own checks.
//!
//! On the test cluster: the two roles with the grants Supabase gives them, a
//! database owned by a role that is neither superuser nor `BYPASSRLS` (as
//! Supabase's `postgres`), migrated fresh or adopting the original table;
//! then each public role is refused every read and change on every table
//! and sequence of the schema, and the service, connected as the owner,
//! still works.

use serde_json::json;
use tokio_postgres::{Client, NoTls};

use crate::support::{Backend, TestApp, TestDatabase};

/// The role that owns the test databases here, as Supabase's `postgres`
/// owns a project's tables: no superuser, no `BYPASSRLS`.
const OWNER: &str = "commandes_test_owner";
const PUBLIC_ROLES: [&str; 2] = ["anon", "authenticated"];

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// `url` with its user replaced by `user`.
fn as_user(url: &str, user: &str) -> String {
    let scheme = url.find("://").unwrap() + 3;
    let at = url.find('@').unwrap();
    format!("{}{user}{}", &url[..scheme], &url[at..])
}

/// Creates a role unless it exists. Roles are cluster-wide and tests run
/// at once: a concurrent creation is as good as ours.
async fn ensure_role(admin: &Client, name: &str, options: &str) {
    admin
        .batch_execute(&format!(
            "do $$ begin
                 create role {name} {options};
             exception when duplicate_object or unique_violation then null;
             end $$"
        ))
        .await
        .unwrap();
}

/// A new database owned by [`OWNER`], with `anon` and `authenticated` and
/// the privileges a Supabase project gives them: usage of `public`, and
/// everything on what the owner creates there. Returns the database, an
/// administrator's connection to it and the owner's URL.
async fn supabase_like() -> Option<(TestDatabase, Client, String)> {
    let db = TestDatabase::create().await?;
    let admin = connect(&db.direct_url()).await;
    for role in PUBLIC_ROLES {
        ensure_role(&admin, role, "nologin noinherit").await;
    }
    ensure_role(&admin, OWNER, "login nosuperuser nobypassrls").await;
    let name: String = admin
        .query_one("select current_database()", &[])
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "alter database {name} owner to {OWNER};
             alter schema public owner to {OWNER};
             grant usage on schema public to anon, authenticated;
             alter default privileges for role {OWNER} in schema public
                 grant all on tables to anon, authenticated;
             alter default privileges for role {OWNER} in schema public
                 grant all on sequences to anon, authenticated;
             alter default privileges for role {OWNER} in schema public
                 grant all on functions to anon, authenticated;"
        ))
        .await
        .unwrap();
    let owner_url = as_user(&db.direct_url(), OWNER);
    Some((db, admin, owner_url))
}

async fn migrate(url: &str) {
    let store = commandes::storage::open(&url.parse().unwrap(), &Default::default())
        .await
        .unwrap();
    store.migrate().await.expect("the migrations apply");
    store.close().await;
}

/// Every table and sequence of the schema: row level security on every
/// table, no privilege for the public roles, and each read and change
/// refused when tried as them.
async fn assert_closed(admin: &Client) {
    let open = open_doors(admin).await;
    assert!(open.is_empty(), "open to the public roles: {open:#?}");
}

/// What [`assert_closed`] finds open, one line per door. Every table and
/// sequence of the schema is looked at, not a list: this is the rule for
/// every later migration too, and a new table left open shows here.
async fn open_doors(admin: &Client) -> Vec<String> {
    let mut open = Vec::new();
    let tables: Vec<(String, bool, String)> = admin
        .query(
            "select c.relname::text, c.relrowsecurity,
                    (select quote_ident(attname) from pg_attribute
                     where attrelid = c.oid and attnum > 0 and not attisdropped
                       and attidentity = '' and attgenerated = ''
                     order by attnum limit 1)
             from pg_class c
             where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let names: Vec<&str> = tables.iter().map(|t| t.0.as_str()).collect();
    for expected in [
        "commandes",
        "commandes_events",
        "commandes_idempotency_keys",
        "commandes_schema_migrations",
        "commandes_stats",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    let sequences: Vec<String> = admin
        .query(
            "select relname::text from pg_class
             where relnamespace = 'public'::regnamespace and relkind = 'S'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!sequences.is_empty());
    for (table, rls, column) in &tables {
        if !rls {
            open.push(format!("{table} has no row level security"));
        }
        for role in PUBLIC_ROLES {
            let granted: bool = admin
                .query_one(
                    "select has_table_privilege($1, $2::text::regclass,
                        'select, insert, update, delete, truncate, references, trigger')",
                    &[&role, table],
                )
                .await
                .unwrap()
                .get(0);
            if granted {
                open.push(format!("{role} holds a privilege on {table}"));
            }
            admin
                .batch_execute(&format!("set role {role}"))
                .await
                .unwrap();
            for sql in [
                format!("select * from {table}"),
                format!("insert into {table} default values"),
                format!("update {table} set {column} = {column}"),
                format!("delete from {table}"),
            ] {
                match admin.batch_execute(&sql).await {
                    Ok(()) => open.push(format!("{role} may {sql}")),
                    Err(e) => assert_eq!(
                        e.code(),
                        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                        "{role}: {sql}: {e}"
                    ),
                }
            }
            admin.batch_execute("reset role").await.unwrap();
        }
    }
    for sequence in &sequences {
        for role in PUBLIC_ROLES {
            admin
                .batch_execute(&format!("set role {role}"))
                .await
                .unwrap();
            match admin
                .batch_execute(&format!("select nextval('{sequence}')"))
                .await
            {
                Ok(()) => open.push(format!("{role} may use the sequence {sequence}")),
                Err(e) => assert_eq!(
                    e.code(),
                    Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                    "{role}: {sequence}: {e}"
                ),
            }
            admin.batch_execute("reset role").await.unwrap();
        }
    }
    open
}

/// The service, connected as the owner, reads and writes as before: row
/// level security without policies binds every role but the owner.
async fn the_owner_still_works(owner_url: &str, orders_before: usize) {
    let url = owner_url.to_string();
    let app = TestApp::spawn_with(Backend::Postgres, move |s| {
        s.database.url = url.parse().unwrap()
    })
    .await
    .expect("PostgreSQL is there");
    let created = app.create("RLS-1", "C1", "12.50", "pending").await;
    let id = created["id"].as_i64().unwrap();
    let r = app
        .put(
            &format!("/commandes/{id}/status"),
            &json!({"status": "processing"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = app.get("/commandes").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), orders_before + 1, "{list}");
    let stats: serde_json::Value = app.get("/stats").await.json().await.unwrap();
    assert_eq!(stats["total_orders"], orders_before + 1, "{stats}");
    let history: serde_json::Value = app
        .get(&format!("/commandes/{id}/history"))
        .await
        .json()
        .await
        .unwrap();
    assert!(history.to_string().contains("processing"), "{history}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_install_is_closed_to_the_public_roles() {
    let Some((_db, admin, owner_url)) = supabase_like().await else {
        return;
    };
    migrate(&owner_url).await;
    assert_closed(&admin).await;
    the_owner_still_works(&owner_url, 0).await;
    // A second run changes nothing and stays closed.
    migrate(&owner_url).await;
    assert_closed(&admin).await;

    // A later migration that creates a table and forgets to close it is
    // caught: the project's default privileges open it to both roles.
    connect(&owner_url)
        .await
        .batch_execute(
            "create table commandes_forgotten (id bigint generated always as identity, note text)",
        )
        .await
        .unwrap();
    let open = open_doors(&admin).await;
    for door in [
        "commandes_forgotten has no row level security",
        "anon holds a privilege on commandes_forgotten",
        "authenticated may select * from commandes_forgotten",
        "anon may use the sequence commandes_forgotten_id_seq",
    ] {
        assert!(open.iter().any(|o| o == door), "{door:?} not in {open:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_table_is_closed_to_the_public_roles() {
    let Some((_db, admin, owner_url)) = supabase_like().await else {
        return;
    };
    // The original service's table, made by the owner, open to everyone
    // as a Supabase table is until someone closes it.
    let owner = connect(&owner_url).await;
    owner
        .batch_execute(
            "create table commandes (
                id           serial primary key,
                order_id     varchar(50) unique,
                customer_id  varchar(50),
                created_at   timestamp,
                status       varchar(50),
                total_amount decimal(10,2),
                updated_at   timestamp
            );
            insert into commandes (order_id, customer_id, created_at, status, total_amount, updated_at)
            values ('CMD001', 'CLIENT1', '2024-01-15 10:30:00', 'pending', 150.00, '2024-01-15 10:30:00'),
                   ('CMD002', 'CLIENT2', '2024-01-16 14:20:00', 'completed', 275.50, null);",
        )
        .await
        .unwrap();
    admin
        .batch_execute(
            "grant all on all tables in schema public to anon, authenticated;
             grant all on all sequences in schema public to anon, authenticated;",
        )
        .await
        .unwrap();
    admin.batch_execute("set role anon").await.unwrap();
    let open = admin.query("select * from commandes", &[]).await.unwrap();
    assert_eq!(open.len(), 2, "before: anyone with the anon key reads it");
    admin.batch_execute("reset role").await.unwrap();

    migrate(&owner_url).await;
    assert_closed(&admin).await;
    the_owner_still_works(&owner_url, 2).await;
}
