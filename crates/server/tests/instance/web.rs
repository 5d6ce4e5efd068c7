//! The web UI over plain HTTP, as a browser would speak it: sign-in sets an HttpOnly,
//! SameSite session cookie; a form without this session's token changes nothing; what
//! users typed is shown escaped; wrong passwords are refused and slowed down.

use crate::common::{ADMIN_PASSWORD, Server};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in; returns the session cookie ("name=value").
async fn sign_in(http: &reqwest::Client, url: &str, password: &str) -> Result<String, StatusCode> {
    let response = crate::common::web_sign_in(http, url, "admin", password, "/tables").await;
    if response.status() != StatusCode::SEE_OTHER {
        return Err(response.status());
    }
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap())
        .find(|c| c.starts_with("crmsync_session="))
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    Ok(cookie.split(';').next().unwrap().to_string())
}

async fn page(http: &reqwest::Client, url: &str, cookie: &str) -> (StatusCode, String) {
    let response = http.get(url).header(COOKIE, cookie).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a form token") + 20;
    html[at..at + 64].to_string()
}

#[tokio::test]
async fn the_web_ui_signs_in_refuses_forged_forms_and_escapes_what_users_typed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let record = api
        .create_record(
            table,
            json!({ name.to_string(): "<script>alert(1)</script> & Co" }),
        )
        .await;
    let id = record["id"].as_i64().unwrap();
    let http = browser();

    // Not signed in: to the sign-in page, coming back afterwards.
    let response = http
        .get(format!("{}/tables/{table}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        format!("/login?next=/tables/{table}")
    );
    assert_eq!(
        sign_in(&http, &server.url, "wrong").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let cookie = sign_in(&http, &server.url, ADMIN_PASSWORD).await.unwrap();

    // Escaped in the grid and in the form.
    let (status, grid) = page(&http, &format!("{}/tables/{table}", server.url), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        grid.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; Co")
            || grid.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"),
        "{grid}"
    );
    assert!(!grid.contains("<script>alert(1)"));

    // A form without the session's token (another site's) changes nothing.
    let edit = format!("{}/tables/{table}/{id}", server.url);
    let field = format!("f{name}");
    let response = http
        .post(&edit)
        .header(COOKIE, &cookie)
        .form(&[
            ("_csrf", "0".repeat(64).as_str()),
            (field.as_str(), "Forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, stored) = api.get(&format!("/tables/{table}/records/{id}")).await;
    assert_eq!(
        stored["values"][name.to_string()],
        "<script>alert(1)</script> & Co"
    );

    // With it, the change is written and its history says it came from the browser.
    let (_, form) = page(&http, &edit, &cookie).await;
    let token = csrf_of(&form);
    let response = http
        .post(&edit)
        .header(COOKIE, &cookie)
        .form(&[("_csrf", token.as_str()), (field.as_str(), "ООО Ромашка")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, history) = api
        .get(&format!("/tables/{table}/records/{id}/history"))
        .await;
    assert_eq!(history["history"][1]["origin"], "web", "{history}");

    // A bad value shows the form again with the message; nothing is written.
    let money = api.create_field(table, "Balance", "money", json!({})).await;
    let (_, form) = page(&http, &edit, &cookie).await;
    let response = http
        .post(&edit)
        .header(COOKIE, &cookie)
        .form(&[
            ("_csrf", csrf_of(&form).as_str()),
            (format!("f{money}").as_str(), "много"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("много"));
    let (_, stored) = api.get(&format!("/tables/{table}/records/{id}")).await;
    assert_eq!(stored["values"][money.to_string()], serde_json::Value::Null);

    // Signing out ends the session.
    let response = http
        .post(format!("{}/logout", server.url))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, _) = page(&http, &format!("{}/tables", server.url), &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Repeated wrong passwords are slowed down, as on the API.
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = sign_in(&http, &server.url, "wrong").await.unwrap_err();
    }
    let response =
        crate::common::web_sign_in(&http, &server.url, "admin", ADMIN_PASSWORD, "/tables").await;
    assert_eq!(last, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "paused even for the right password"
    );
}

/// Posts a form with the page's token; returns the status and where it leads.
async fn submit(
    http: &reqwest::Client,
    cookie: &str,
    page_url: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let (_, html) = page(http, page_url, cookie).await;
    let token = csrf_of(&html);
    let mut form = vec![("_csrf", token.as_str())];
    form.extend_from_slice(fields);
    let response = http
        .post(action)
        .header(COOKIE, cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location)
}

#[tokio::test]
async fn admins_manage_tables_fields_and_users_through_the_forms() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let http = browser();
    let cookie = sign_in(&http, &server.url, ADMIN_PASSWORD).await.unwrap();
    let url = |path: &str| format!("{}{path}", server.url);

    let (status, to) = submit(
        &http,
        &cookie,
        &url("/tables"),
        &url("/tables"),
        &[("name", "Счета")],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/tables/1/fields")
    );
    let fields_page = url("/tables/1/fields");
    for (name, kind, choices) in [
        ("Номер", "text", ""),
        ("Статус", "select", "новый\nоплачен"),
        ("Сумма", "money", ""),
    ] {
        let (status, _) = submit(
            &http,
            &cookie,
            &fields_page,
            &fields_page,
            &[("name", name), ("type", kind), ("choices", choices)],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{name}");
    }
    // A select without choices is refused with the reason on the page.
    let (status, _) = submit(
        &http,
        &cookie,
        &fields_page,
        &fields_page,
        &[("name", "Пусто"), ("type", "select")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, table) = api.get("/tables/1").await;
    let names: Vec<&str> = table["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Номер", "Статус", "Сумма"]);
    assert_eq!(
        table["fields"][1]["options"]["choices"],
        json!(["новый", "оплачен"])
    );
    // A field renamed and a choice added in place.
    let (status, _) = submit(
        &http,
        &cookie,
        &fields_page,
        &url("/tables/1/fields/2/edit"),
        &[("name", "Этап"), ("choices", "новый\nоплачен\nотгружен")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, field) = api.get("/fields/2").await;
    assert_eq!(field["name"], "Этап");
    assert_eq!(
        field["options"]["choices"],
        json!(["новый", "оплачен", "отгружен"])
    );

    let (status, _) = submit(
        &http,
        &cookie,
        &fields_page,
        &url("/tables/1/fields/3/delete"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = submit(
        &http,
        &cookie,
        &fields_page,
        &url("/tables/1/rename"),
        &[("name", "Invoices")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, table) = api.get("/tables/1").await;
    assert_eq!(
        (
            table["name"].as_str(),
            table["fields"].as_array().unwrap().len()
        ),
        (Some("Invoices"), 2)
    );

    // A record through the form: the select offers the choices, the value is stored.
    let (_, form) = page(&http, &url("/tables/1/new"), &cookie).await;
    assert!(form.contains("<option value=\"оплачен\""), "{form}");
    let (status, to) = submit(
        &http,
        &cookie,
        &url("/tables/1/new"),
        &url("/tables/1/new"),
        &[("f1", "A-17"), ("f2", "оплачен")],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/tables/1/1?notice=saved")
    );
    let (_, record) = api.get("/tables/1/records/1").await;
    assert_eq!(record["values"], json!({ "1": "A-17", "2": "оплачен" }));

    let users = url("/users");
    let (status, _) = submit(
        &http,
        &cookie,
        &users,
        &users,
        &[
            ("login", "anna"),
            ("full_name", "Анна Петрова"),
            ("password", "anna-secret-1"),
            ("role", "user"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, list) = api.get("/users").await;
    let anna = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "anna")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = submit(
        &http,
        &cookie,
        &users,
        &url(&format!("/users/{anna}/delete")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, list) = api.get("/users").await;
    assert!(
        !list["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["login"] == "anna" && u["active"] != false),
        "{list}"
    );

    // A number field numbered by this instance (B-06): assigned on save, shown read-only.
    let (status, _) = submit(
        &http,
        &cookie,
        &fields_page,
        &fields_page,
        &[("name", "№"), ("type", "number")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = submit(
        &http,
        &cookie,
        &fields_page,
        &url("/tables/1/fields/4/edit"),
        &[
            ("name", "№"),
            ("numbering", "here"),
            ("numbering_start", "500"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, field) = api.get("/fields/4").await;
    assert_eq!(field["options"]["numbering"], json!({ "start": 500 }));
    let (status, to) = submit(
        &http,
        &cookie,
        &url("/tables/1/new"),
        &url("/tables/1/new"),
        &[("f1", "A-1"), ("f4", "")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let id = to
        .trim_start_matches("/tables/1/")
        .trim_end_matches("?notice=saved");
    let (_, record) = api.get(&format!("/tables/1/records/{id}")).await;
    assert_eq!(record["values"]["4"], 500, "{record}");
    let (_, html) = page(&http, &url(&format!("/tables/1/{id}")), &cookie).await;
    assert!(html.contains(r#"name="f4" value="500" readonly"#), "{html}");
    // Typed by hand on the form: refused, nothing written.
    let before = api.all_ids(1, "all").await.len();
    let (status, _) = submit(
        &http,
        &cookie,
        &url("/tables/1/new"),
        &url("/tables/1/new"),
        &[("f1", "A-2"), ("f4", "7")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.all_ids(1, "all").await.len(), before);

    let (status, to) = submit(&http, &cookie, &fields_page, &url("/tables/1/delete"), &[]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/tables"));
    let (status, _) = api.get("/tables/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What a browser sends from the form with `id` in `html`: each named input that belongs
/// to it (checkboxes only when checked), each select's chosen option (the first when none
/// is marked, as a browser does), each textarea.
fn form_fields(html: &str, id: &str) -> Vec<(String, String)> {
    let start = html.find(&format!("id=\"{id}\"")).expect("the form");
    let form = &html[start..start + html[start..].find("</form>").expect("the form's end")];
    let attr = |tag: &str, name: &str| {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[at..at + tag[at..].find('"')?];
        Some(
            value
                .replace("&#34;", "\"")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let tag = &rest[..rest.find('>').unwrap()];
        let Some(name) = attr(tag, "name") else {
            continue;
        };
        if tag.starts_with("input") {
            let checkbox = attr(tag, "type").as_deref() == Some("checkbox");
            if attr(tag, "form").is_none() && (!checkbox || tag.contains(" checked")) {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
        } else if tag.starts_with("select") {
            let options = &rest[..rest.find("</select>").unwrap()];
            let tags: Vec<&str> = options.split("<option").skip(1).collect();
            let chosen = tags
                .iter()
                .find(|t| t[..t.find('>').unwrap()].contains(" selected"))
                .or(tags.first())
                .and_then(|t| attr(t, "value"))
                .unwrap_or_default();
            fields.push((name, chosen));
        } else if tag.starts_with("textarea") {
            let body = &rest[tag.len() + 1..];
            fields.push((name, body[..body.find("</textarea>").unwrap()].to_string()));
        }
    }
    fields
}

/// Issue 11, item 4: an order linked to a client far beyond the first page of clients
/// shows that client in its form, and saving the order's status keeps the link, even when
/// the link changed elsewhere after the page was opened; the picker finds clients by name.
#[tokio::test]
async fn saving_a_record_form_changes_only_what_the_person_changed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let shop = crate::common::orders_of_many_clients(&api, 600).await;
    let path = format!("/tables/{}/{}", shop.orders, shop.order);
    let order = || async {
        api.ok(
            reqwest::Method::GET,
            &format!("/tables/{}/records/{}", shop.orders, shop.order),
            None,
        )
        .await["values"]
            .clone()
    };
    let (status, client) = (shop.status.to_string(), shop.client.to_string());

    // The form sent back as the page holds it, with only the status changed.
    let html = server.web_page(&path, "en").await;
    let mut fields = form_fields(&html, "record-form");
    fields.retain(|(k, _)| k != "_csrf");
    for (name, value) in &mut fields {
        if *name == format!("f{status}") {
            *value = "Paid".into();
        }
    }
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (answer, _) = server.web_form(&path, &path, &form).await;
    assert_eq!(answer, StatusCode::SEE_OTHER);
    let values = order().await;
    assert_eq!(values[&status], "Paid");
    assert_eq!(values[&client], shop.far_client, "the link kept: {values}");
    assert!(
        html.contains(&format!("value=\"Client 0600 (#{})\"", shop.far_client)),
        "the picker shows the linked client's name"
    );

    // The link changed through the API after the page was opened: the stale page's save
    // of the status does not put the old client back.
    api.ok(
        reqwest::Method::PATCH,
        &format!("/tables/{}/records/{}", shop.orders, shop.order),
        Some(json!({ "values": { &client: shop.zebra } })),
    )
    .await;
    for (name, value) in &mut fields {
        if *name == format!("f{status}") {
            *value = "Shipped".into();
        }
    }
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    server.web_form(&path, &path, &form).await;
    let values = order().await;
    assert_eq!(values[&status], "Shipped");
    assert_eq!(values[&client], shop.zebra, "{values}");

    // A form that leaves the link out leaves it as it is; one that empties it clears it.
    server
        .web_form(&path, &path, &[(&format!("f{status}"), "New")])
        .await;
    assert_eq!(order().await[&client], shop.zebra);
    let was = shop.zebra.to_string();
    server
        .web_form(
            &path,
            &path,
            &[(&format!("f{client}"), ""), (&format!("o{client}"), &was)],
        )
        .await;
    assert_eq!(order().await[&client], serde_json::Value::Null);

    // The picker's search: by name, as typed; by number; a page at a time; hostile text
    // shown as text.
    let pick = |q: &str| format!("/tables/{}/pick?q={q}", shop.clients);
    let found = server.web_page(&pick("zeBRa"), "en").await;
    assert!(
        found.contains(&format!(
            "data-id=\"{0}\" data-label=\"Zebra Trading (#{0})\"",
            shop.zebra
        )),
        "{found}"
    );
    assert_eq!(found.matches("class=\"pick\"").count(), 1, "{found}");
    let by_number = server
        .web_page(&pick(&format!("%23{}", shop.far_client)), "en")
        .await;
    assert!(by_number.contains("Client 0600"), "{by_number}");
    let page = server.web_page(&pick("Client%2005"), "en").await;
    assert_eq!(page.matches("class=\"pick\"").count(), 20, "{page}");
    assert!(page.contains("More match"), "{page}");
    let hostile = server.web_page(&pick("%3Cscript%3E"), "en").await;
    assert!(
        hostile.contains("Nothing found") && !hostile.contains("<script>"),
        "{hostile}"
    );
}
