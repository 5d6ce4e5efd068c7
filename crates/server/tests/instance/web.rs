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
    let response = http
        .post(format!("{url}/login"))
        .form(&[
            ("login", "admin"),
            ("password", password),
            ("next", "/tables"),
        ])
        .send()
        .await
        .unwrap();
    if response.status() != StatusCode::SEE_OTHER {
        return Err(response.status());
    }
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
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
    let response = http
        .post(format!("{}/login", server.url))
        .form(&[("login", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(last, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "paused even for the right password"
    );
}
