use crate::common::{Client, Server, cli};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Clients: Name (text), Amount (money), Since (date), Stage (select), Manager (user).
async fn clients_table(api: &Client) -> (i64, [i64; 5]) {
    let table = api.create_table("Клиенты").await;
    let name = api.create_field(table, "Имя", "text", json!({})).await;
    let amount = api.create_field(table, "Сумма", "money", json!({})).await;
    let since = api.create_field(table, "Дата", "date", json!({})).await;
    let stage = api
        .create_field(
            table,
            "Этап",
            "select",
            json!({ "choices": ["новый", "оплачен"] }),
        )
        .await;
    let manager = api.create_field(table, "Менеджер", "user", json!({})).await;
    api.post(
        "/users",
        json!({ "login": "olga", "full_name": "Ольга Петрова", "password": "olga-pass-1" }),
    )
    .await;
    (table, [name, amount, since, stage, manager])
}

fn values_of(page: &Value) -> Vec<Value> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["values"].clone())
        .collect()
}

#[tokio::test]
async fn cli_imports_windows_1251_with_semicolons_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let (table, [name, amount, since, stage, manager]) = clients_table(&api).await;
    let text = "Имя;Сумма;Дата;Этап;Менеджер\r\nИван Иванов;1 500,50;01.02.2024;новый;olga\r\n\"Пётр; младший\";0,1;2024-03-05;оплачен;Ольга Петрова\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(text);
    assert!(!unmappable);
    let file = dir.path().join("clients.csv");
    std::fs::write(&file, &bytes).unwrap();

    let (ok, out, err) = cli(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        "--table",
        "клиенты",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("imported 2 records into \"Клиенты\" (windows-1251, delimiter ;)"),
        "{out}"
    );

    let page = api
        .ok(Method::GET, &format!("/tables/{table}/records"), None)
        .await;
    assert_eq!(
        values_of(&page),
        vec![
            json!({ name.to_string(): "Иван Иванов", amount.to_string(): "1500.50", since.to_string(): "2024-02-01", stage.to_string(): "новый", manager.to_string(): 2 }),
            json!({ name.to_string(): "Пётр; младший", amount.to_string(): "0.10", since.to_string(): "2024-03-05", stage.to_string(): "оплачен", manager.to_string(): 2 }),
        ]
    );
    let history = api
        .ok(
            Method::GET,
            &format!("/tables/{table}/records/1/history"),
            None,
        )
        .await;
    assert_eq!(history["history"][0]["origin"], "import");
    assert_eq!(history["history"][0]["user"]["login"], "admin");
}

#[tokio::test]
async fn a_file_with_bad_rows_imports_nothing_and_reports_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let (table, _) = clients_table(&api).await;
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "Имя,Сумма,Дата,Этап,Менеджер\nГод,100,2024-01-01,новый,olga\nПлохая сумма,сто,2024-01-01,новый,olga\nПлохая дата,1,2024-13-01,новый,olga\nOK,2,,,\nЧужой,3,2024-01-01,новый,nobody\n",
    )
    .unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        "--table",
        &table.to_string(),
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("row 2: field") && err.contains("\"Сумма\""),
        "{err}"
    );
    assert!(
        err.contains("row 3: field") && err.contains("\"Дата\""),
        "{err}"
    );
    assert!(
        err.contains("row 5: field") && err.contains("\"Менеджер\""),
        "{err}"
    );
    assert!(
        err.contains("3 row(s) rejected; nothing was imported"),
        "{err}"
    );
    assert!(
        api.all_ids(table, "all").await.is_empty(),
        "nothing half-imported"
    );

    std::fs::write(&file, "Имя,Телефон\nA,1\n").unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        "--table",
        &table.to_string(),
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("column 2 \"Телефон\" matches no field"),
        "{err}"
    );
    std::fs::write(&file, "Имя,Сумма\nA,1,extra\n").unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        "--table",
        &table.to_string(),
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("row 1: cannot read the row"), "{err}");
    assert!(api.all_ids(table, "all").await.is_empty());
}

#[tokio::test]
async fn the_api_imports_and_exports_and_the_export_imports_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let (table, _) = clients_table(&api).await;
    let import = |body: Vec<u8>, query: &str| {
        api.raw(Method::POST, &format!("/tables/{table}/import{query}"))
            .body(body)
            .send()
    };
    let text = "id;Имя;Сумма;Дата;Этап;Менеджер\n77;Анна;10;2024-01-02;новый;olga\n78;Борис;;;;\n";
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
    let response = import(bytes.into_owned(), "").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        report,
        json!({ "imported": 2, "encoding": "windows-1251", "delimiter": ";", "ignored_columns": ["id"] })
    );

    let response = import(b"\xC8\xEC\xFF\n".to_vec(), "?encoding=utf-8")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("windows-1251"),
        "{body}"
    );
    let response = import(b"x\n".to_vec(), "?encoding=koi8").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = import("Имя,Сумма\nX,bad\n".as_bytes().to_vec(), "")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rows_rejected");
    assert_eq!(body["rows"][0]["row"], 1);
    assert_eq!(api.all_ids(table, "all").await.len(), 2);

    let exported = api
        .raw(
            Method::GET,
            &format!("/tables/{table}/export?encoding=windows-1251&delimiter=;"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), StatusCode::OK);
    assert_eq!(
        exported.headers()["content-type"],
        "text/csv; charset=windows-1251"
    );
    let bytes = exported.bytes().await.unwrap();
    let (text, _, _) = encoding_rs::WINDOWS_1251.decode(&bytes);
    assert_eq!(
        text,
        "id;Имя;Сумма;Дата;Этап;Менеджер\n1;Анна;10.00;2024-01-02;новый;olga\n2;Борис;;;;\n"
    );

    // The CLI export of the same table, imported again, doubles it exactly.
    let out = dir.path().join("out.csv");
    let (ok, _, err) = cli(&[
        "export",
        "--data",
        data.to_str().unwrap(),
        "--table",
        "Клиенты",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let response = import(std::fs::read(&out).unwrap(), "").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = api
        .ok(Method::GET, &format!("/tables/{table}/records"), None)
        .await;
    let values = values_of(&page);
    assert_eq!(values.len(), 4);
    assert_eq!(values[0], values[2]);
    assert_eq!(values[1], values[3]);
}
