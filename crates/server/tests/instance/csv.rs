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
        err.contains("line 3: field") && err.contains("\"Сумма\""),
        "{err}"
    );
    assert!(
        err.contains("line 4: field") && err.contains("\"Дата\""),
        "{err}"
    );
    assert!(
        err.contains("line 6: field") && err.contains("\"Менеджер\""),
        "{err}"
    );
    assert!(
        err.contains("3 error(s) in 3 row(s); nothing was imported"),
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
    assert!(err.contains("line 2: cannot read the row"), "{err}");
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
    assert_eq!(body["rows"][0]["line"], 2);
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

/// Orders: Name (text), Status (select), ID (text): user fields named like system columns.
async fn orders_table(api: &Client, name: &str) -> (i64, [i64; 3]) {
    let table = api.create_table(name).await;
    let title = api.create_field(table, "Name", "text", json!({})).await;
    let status = api
        .create_field(
            table,
            "Status",
            "select",
            json!({ "choices": ["new", "paid", "shipped"] }),
        )
        .await;
    let code = api.create_field(table, "ID", "text", json!({})).await;
    (table, [title, status, code])
}

#[tokio::test]
async fn fields_named_like_system_columns_export_and_import_back_into_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let (orders, [title, status, code]) = orders_table(&api, "Orders").await;
    for (name, state, number) in [
        ("A", "new", "A-1"),
        ("B", "paid", "B-2"),
        ("C", "shipped", ""),
    ] {
        api.create_record(
            orders,
            json!({ title.to_string(): name, status.to_string(): state, code.to_string(): number }),
        )
        .await;
    }
    let exported = api
        .raw(Method::GET, &format!("/tables/{orders}/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), StatusCode::OK);
    let csv = exported.bytes().await.unwrap();
    // The field "ID" wins over the system id column, which the export then leaves out.
    assert_eq!(
        String::from_utf8_lossy(&csv),
        "Name,Status,ID\nA,new,A-1\nB,paid,B-2\nC,shipped,\n"
    );

    let (copy, [copy_title, copy_status, copy_code]) = orders_table(&api, "Orders copy").await;
    let response = api
        .raw(Method::POST, &format!("/tables/{copy}/import"))
        .body(csv.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["imported"], 3);
    assert_eq!(report["ignored_columns"], json!([]));
    // The same values, field by field, as in the original table.
    let values_in_order = |page: &Value, fields: [i64; 3]| -> Vec<Vec<Value>> {
        values_of(page)
            .iter()
            .map(|values| {
                fields
                    .iter()
                    .map(|no| match &values[no.to_string()] {
                        Value::String(s) if s.is_empty() => Value::Null,
                        value => value.clone(),
                    })
                    .collect()
            })
            .collect()
    };
    let original = api
        .ok(Method::GET, &format!("/tables/{orders}/records"), None)
        .await;
    let copied = api
        .ok(Method::GET, &format!("/tables/{copy}/records"), None)
        .await;
    let copied = values_in_order(&copied, [copy_title, copy_status, copy_code]);
    assert_eq!(copied, values_in_order(&original, [title, status, code]));
    assert_eq!(copied[1], vec![json!("B"), json!("paid"), json!("B-2")]);

    // A system column that names no field of the table is still skipped.
    let response = api
        .raw(Method::POST, &format!("/tables/{copy}/import"))
        .body("uid,Name,Status,updated_at\nx,D,new,2024-01-01\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["ignored_columns"], json!(["uid", "updated_at"]));
}

#[tokio::test]
async fn every_bad_value_is_reported_with_the_line_a_spreadsheet_shows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let api = server.admin();
    let (table, [_, amount, since, stage, manager]) = clients_table(&api).await;
    // Line 2 holds a cell over three text lines; a spreadsheet still shows it as one row.
    let text = "Имя,Сумма,Дата,Этап,Менеджер\n\"Иван\nИванов\nмладший\",1,2024-01-01,новый,olga\nПлохо,сто,2024-13-01,никакой,nobody\nOK,2,,,\nЕщё,3,вчера,новый,olga\n";
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, text).unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        "--table",
        &table.to_string(),
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    let reported: Vec<&str> = err.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(reported.len(), 5, "{err}");
    // Where the text file's line differs (the cell over three lines above), it is named too.
    for (line, field) in [
        ("line 3 (line 5 of the text file)", "Сумма"),
        ("line 3 (line 5 of the text file)", "Дата"),
        ("line 3 (line 5 of the text file)", "Этап"),
        ("line 3 (line 5 of the text file)", "Менеджер"),
        ("line 5 (line 7 of the text file)", "Дата"),
    ] {
        assert!(
            reported
                .iter()
                .any(|l| l.starts_with(&format!("{line}: field "))
                    && l.contains(&format!("\"{field}\""))),
            "{line} {field}: {err}"
        );
    }
    assert!(
        err.contains("5 error(s) in 2 row(s); nothing was imported"),
        "{err}"
    );

    let response = api
        .raw(Method::POST, &format!("/tables/{table}/import"))
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rows_rejected");
    let rows: Vec<(u64, i64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["field"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (3, amount),
            (3, since),
            (3, stage),
            (3, manager),
            (5, since)
        ],
        "{body}"
    );
    assert_eq!(body["rows"][0]["row"], 2);
    assert_eq!(body["rows"][0]["file_line"], 5);
    assert!(api.all_ids(table, "all").await.is_empty());
}
