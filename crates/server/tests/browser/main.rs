//! The web UI driven as a person would, in headless Chromium through chromedriver
//! (Debian's `chromium` and `chromium-driver`, installed by scripts/test-prerequisites.sh):
//! the help page's whole setup between two real instances, in Russian and in English,
//! with screenshots of the main screens (target/screenshots/, or CRMSYNC_SCREENSHOTS_DIR).

#[path = "../common/mod.rs"]
mod common;

use common::{Client, Server, eventually};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Browser {
    client: fantoccini::Client,
    driver: Child,
    lang: &'static str,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Chromium whose preferred language is `lang`; screenshots are named after it.
    async fn start(lang: &'static str) -> Browser {
        for program in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: run scripts/test-prerequisites.sh (make test does)"
            );
        }
        // Port 0: chromedriver takes a free port itself and says which.
        let mut driver = Command::new("/usr/bin/chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = std::io::BufReader::new(driver.stdout.take().expect("stdout"));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = sender.send(port);
                }
            }
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("chromedriver says its port");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--lang={lang}")],
                "prefs": { "intl.accept_languages": lang },
            }),
        );
        let client = eventually(30, "chromedriver to start a browser", || async {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .ok()
        })
        .await;
        Browser {
            client,
            driver,
            lang,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("page opens");
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
    }

    /// The element if the page has it now (for polling loops, which reload and retry).
    async fn try_find(&self, css: &str) -> Option<fantoccini::elements::Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{value} in {css}: {e}"));
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn sign_in(&self, base: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("input[name=login]", "admin").await;
        self.fill("input[name=password]", common::ADMIN_PASSWORD)
            .await;
        self.click("#sign-in").await;
        self.find("header.top").await;
    }

    /// Saves the current screen as LANG-NAME.png in target/screenshots, or in
    /// CRMSYNC_SCREENSHOTS_DIR (`docs/screenshots` refreshes the README's).
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = std::env::var("CRMSYNC_SCREENSHOTS_DIR").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/screenshots").to_string()
        });
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{}-{name}.png", self.lang), png).unwrap();
    }
}

/// Sample tables on both instances (data, not the subject here): Clients with Name and
/// Phone, and on main three clients to bring across with the initial sync.
async fn clients(api: &Client, rows: &[&str]) -> (i64, i64, i64) {
    let table = api.create_table("Clients").await;
    let name = api.create_field(table, "Name", "text", json!({})).await;
    let phone = api.create_field(table, "Phone", "text", json!({})).await;
    for (i, row) in rows.iter().enumerate() {
        api.create_record(
            table,
            json!({ name.to_string(): row, phone.to_string(): format!("+7 900 000-00-0{i}") }),
        )
        .await;
    }
    (table, name, phone)
}

/// Words on the screens, per language, that the walk checks.
struct Words {
    connected: &'static str,
    done: &'static str,
    queued: &'static str,
    saved: &'static str,
}

async fn walk_through_the_setup(lang: &'static str, words: Words) {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, main_name, main_phone) =
        clients(&main_api, &["ООО Ромашка", "ИП Петров", "Acme Ltd"]).await;
    let (aux_table, aux_name, aux_phone) = clients(&aux_api, &[]).await;
    // Two host names, so the browser keeps one session cookie for each instance.
    let main_url = main.url.clone();
    let aux_url = aux.url.replace("127.0.0.1", "localhost");
    // The Russian walk takes the browser's language; the English one starts from a Russian
    // browser and switches by hand (remembered per instance).
    let mut browser = Browser::start("ru").await;
    browser.lang = lang;
    if lang == "en" {
        for base in [&main_url, &aux_url] {
            browser.goto(&format!("{base}/login")).await;
            assert_eq!(browser.text("#sign-in").await, "Войти");
            browser.click("p.lang a").await;
            assert_eq!(browser.text("#sign-in").await, "Sign in");
        }
    }

    // 1. The passive side first: its address is what the active side needs.
    browser.sign_in(&aux_url).await;
    browser.screenshot("tables-empty").await;
    browser.click("#nav-syncs").await;
    browser.click("#add-sync").await;
    browser.fill("input[name=name]", "Main office").await;
    browser.choose("select[name=mode]", "passive").await;
    browser.choose("select[name=transport]", "http").await;
    browser.fill("input[name=password]", "123456").await;
    browser.click("#create-sync").await;
    let endpoint = browser
        .find("#endpoint-url")
        .await
        .prop("value")
        .await
        .unwrap()
        .expect("the passive sync shows its address");
    assert!(endpoint.contains("/sync/v1/"), "{endpoint}");
    let passive_page = browser.client.current_url().await.unwrap().to_string();

    // 2. The active side, pointing at that address; the form shows HTTP settings only.
    browser.sign_in(&main_url).await;
    browser.goto(&format!("{main_url}/syncs/new")).await;
    assert!(
        !browser
            .find("fieldset[data-transport=ftp]")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "FTP settings appear only for FTP"
    );
    browser.fill("input[name=name]", "Branch").await;
    browser.click("input[name=remote_access]").await;
    browser
        .fill(
            "input[name=remote_url]",
            &endpoint.replace("localhost", "127.0.0.1"),
        )
        .await;
    browser.fill("input[name=password]", "123456").await;
    browser.fill("input[name=period_seconds]", "1").await;
    browser.screenshot("add-sync").await;
    browser.click("#create-sync").await;
    // The sync's own page, once the browser has followed the redirect to it.
    browser.find("#sync-status").await;
    let active_page = browser.client.current_url().await.unwrap().to_string();

    // 3. Fields on the active side: table, field, direction, Add.
    for (field, direction) in [(main_name, "both"), (main_phone, "upload")] {
        browser
            .choose("#field-table", &main_table.to_string())
            .await;
        browser.choose("#field-no", &field.to_string()).await;
        browser.choose("select[name=direction]", direction).await;
        browser.click("#add-field-button").await;
        browser.find(&format!("tr[data-field=\"{field}\"]")).await;
    }
    // The green check once the passive side answers.
    eventually(45, "the green check on the active side's page", || async {
        browser.goto(&active_page).await;
        let mark = browser.try_find("#sync-status").await?;
        (mark.attr("data-connected").await.ok().flatten().as_deref() == Some("true")).then_some(())
    })
    .await;
    assert_eq!(
        browser
            .find("#sync-status")
            .await
            .attr("title")
            .await
            .unwrap()
            .as_deref(),
        Some(words.connected)
    );

    // 4. Fields on the passive side, mapped to the active side's numbers from its catalogue.
    browser.goto(&passive_page).await;
    for (field, remote, direction) in [
        (aux_name, main_name, "both"),
        (aux_phone, main_phone, "download"),
    ] {
        browser.choose("#field-table", &aux_table.to_string()).await;
        browser.choose("#field-no", &field.to_string()).await;
        browser.choose("select[name=direction]", direction).await;
        browser.choose("#remote-field", &remote.to_string()).await;
        browser.click("#add-field-button").await;
        browser.find(&format!("tr[data-field=\"{field}\"]")).await;
    }
    browser.screenshot("sync-passive").await;

    // 5. Initial sync from the active side, watched to the end.
    browser.goto(&active_page).await;
    browser.click("#initial-sync").await;
    eventually(60, "the initial sync done", || async {
        // The bar is replaced every half second: a read may meet the old one, gone.
        let bar = browser.try_find(".progress").await?;
        let state = bar.attr("data-state").await.ok().flatten();
        (state.as_deref() == Some("done")).then_some(())
    })
    .await;
    assert!(browser.text(".progress").await.contains(words.done));
    let with_job = browser.client.current_url().await.unwrap().to_string();
    // Its dashboard counts what went: three records (or more, with the field's own).
    eventually(30, "the dashboard counting the records sent", || async {
        browser.goto(&active_page).await;
        let dashboard = browser.try_find("#dashboard").await?;
        let sent = dashboard.attr("data-sent").await.ok().flatten()?;
        (sent.parse::<u64>().ok()? >= 3).then_some(())
    })
    .await;
    browser.goto(&with_job).await;
    browser.find(".progress.done").await;
    browser.screenshot("sync-active").await;
    eventually(30, "the three clients on the auxiliary side", || async {
        (aux_api.all_ids(aux_table, "active").await.len() == 3).then_some(())
    })
    .await;
    browser.goto(&format!("{main_url}/syncs")).await;
    assert_eq!(
        browser
            .find("tr[data-sync] .status.ok")
            .await
            .text()
            .await
            .unwrap(),
        "✔"
    );
    browser.screenshot("syncs").await;

    // 6. An edit on the active side appears on the other side.
    let first = main_api.all_ids(main_table, "active").await[0];
    browser
        .goto(&format!("{main_url}/tables/{main_table}/{first}"))
        .await;
    browser
        .fill(
            &format!("input[name=f{main_name}]"),
            "ООО Ромашка и партнёры",
        )
        .await;
    browser.click("#save-record").await;
    assert!(browser.text(".notice").await.contains(words.saved));
    browser.screenshot("record").await;
    eventually(30, "the edit on the auxiliary side", || async {
        let page = aux_api
            .ok(
                reqwest::Method::GET,
                &format!("/tables/{aux_table}/records?q=партнёры"),
                None,
            )
            .await;
        (page["records"].as_array()?.len() == 1).then_some(())
    })
    .await;

    // 7. The passive side learns the active side's address (its settings, edited; the
    // password left empty stays), so a copy opens the same record there (S-23).
    browser.goto(&passive_page).await;
    browser.click("#edit-sync").await;
    browser.click("input[name=remote_access]").await;
    browser.fill("input[name=remote_url]", &main_url).await;
    browser.fill("input[name=period_seconds]", "2").await;
    browser.click("#create-sync").await;
    assert_eq!(browser.text("#period").await, "2");
    let (_, passive_status) = aux_api.get("/syncs/1/status").await;
    assert_eq!(
        passive_status["connected"], true,
        "the password was kept: {passive_status}"
    );

    // 8. The per-record Sync action, on the auxiliary side's copy; its history says where
    // the values came from; and it opens on the active side.
    browser.goto(&format!("{aux_url}/tables/{aux_table}")).await;
    browser.screenshot("grid").await;
    let copy = aux_api
        .ok(
            reqwest::Method::GET,
            &format!("/tables/{aux_table}/records?q=партнёры"),
            None,
        )
        .await["records"][0]["id"]
        .as_i64()
        .unwrap();
    browser
        .goto(&format!("{aux_url}/tables/{aux_table}/{copy}"))
        .await;
    assert!(browser.text("ol.history").await.contains("Main office"));
    browser.click("#sync-record").await;
    assert!(browser.text(".notice").await.contains(words.queued));
    let on_active = browser
        .find("#open-on-active")
        .await
        .attr("href")
        .await
        .unwrap()
        .expect("a link to the active side");
    browser.goto(&on_active).await;
    assert_eq!(
        browser.client.current_url().await.unwrap().as_str(),
        format!("{main_url}/tables/{main_table}/{first}")
    );

    // 9. The log.
    browser.goto(&format!("{main_url}/syncs")).await;
    browser.goto(&format!("{active_page}/log?kind=all")).await;
    assert!(
        browser
            .find("table.log tr")
            .await
            .text()
            .await
            .unwrap()
            .len()
            > 1
    );
    browser.screenshot("log").await;
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_pages_setup_in_russian_and_in_english() {
    walk_through_the_setup(
        "ru",
        Words {
            connected: "Связь есть",
            done: "Готово",
            queued: "Поставлено в отправку",
            saved: "Сохранено",
        },
    )
    .await;
    walk_through_the_setup(
        "en",
        Words {
            connected: "Connected",
            done: "Done",
            queued: "Queued for sending",
            saved: "Saved",
        },
    )
    .await;
}

/// Issue 6 in the browser: an office that kept its own clients joins by phone number (the
/// preview, then the run), and a field gets its own conflict rule on the sync's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_with_clients_of_its_own_joins_by_phone() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (table, name, phone) = clients(&main_api, &["ООО Ромашка", "ИП Петров"]).await;
    let (aux_table, aux_name, aux_phone) = clients(&aux_api, &[]).await;
    for (client, number) in [("Ромашка", "7 (900) 000-00-00"), ("Acme Ltd", "+7 900 555")] {
        aux_api
            .create_record(
                aux_table,
                json!({ aux_name.to_string(): client, aux_phone.to_string(): number }),
            )
            .await;
    }
    let passive = aux_api
        .ok(
            reqwest::Method::POST,
            "/syncs",
            Some(json!({ "name": "Main office", "mode": "passive", "password": "123456" })),
        )
        .await;
    let active = main_api
        .ok(
            reqwest::Method::POST,
            "/syncs",
            Some(json!({ "name": "Branch", "mode": "active", "remote_access": true,
                         "remote_url": passive["endpoint_url"], "password": "123456", "period_seconds": 1 })),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    for (mine, theirs) in [(name, aux_name), (phone, aux_phone)] {
        main_api
            .ok(
                reqwest::Method::POST,
                &format!("/syncs/{active}/fields"),
                Some(json!({ "field_no": mine })),
            )
            .await;
        aux_api
            .ok(
                reqwest::Method::POST,
                &format!("/syncs/{}/fields", passive["id"]),
                Some(json!({ "field_no": theirs, "remote_field_no": mine })),
            )
            .await;
    }
    let browser = Browser::start("en").await;
    browser.sign_in(&main.url).await;
    let sync_page = format!("{}/syncs/{active}", main.url);
    eventually(30, "the sync connected", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        (s["connected"] == true).then_some(())
    })
    .await;

    // The preview: one client paired by phone (written differently), one to create each way.
    browser.goto(&sync_page).await;
    browser.click("#match-by-key").await;
    browser.choose("#match-field", &phone.to_string()).await;
    browser.click("#match-preview").await;
    let plan = browser.find("#match-plan").await;
    assert_eq!(
        plan.attr("data-paired").await.unwrap().as_deref(),
        Some("1")
    );
    assert!(
        browser
            .text("#match-plan")
            .await
            .contains("Created on the other side")
    );
    browser.screenshot("match-preview").await;
    assert_eq!(
        aux_api.all_ids(aux_table, "active").await.len(),
        2,
        "a preview writes nothing"
    );

    // The run: pairs, then the initial sync, watched to the end.
    browser.click("#match-run").await;
    eventually(60, "the initial sync done", || async {
        let bar = browser.try_find(".progress").await?;
        let state = bar.attr("data-state").await.ok().flatten();
        (state.as_deref() == Some("done")).then_some(())
    })
    .await;
    for (api, t) in [(&main_api, table), (&aux_api, aux_table)] {
        eventually(30, "three clients on each side, none doubled", || async {
            (api.all_ids(t, "active").await.len() == 3).then_some(())
        })
        .await;
    }

    // The name's own conflict rule, chosen on the sync's page.
    browser.goto(&sync_page).await;
    let row = format!("tr[data-field=\"{name}\"]");
    browser
        .choose(&format!("{row} select.conflict-policy"), "this_side")
        .await;
    browser
        .click(&format!("{row} form[action$=\"/conflict\"] button"))
        .await;
    // The form posts and the page comes back: the rule is stored.
    eventually(20, "the name's rule stored", || async {
        let (_, fields) = main_api.get(&format!("/syncs/{active}/fields")).await;
        (fields["fields"][0]["conflict_policy"] == "this_side").then_some(())
    })
    .await;
    browser.goto(&sync_page).await;
    let shown = browser.find(&format!("{row} select.conflict-policy")).await;
    assert_eq!(
        shown.prop("value").await.unwrap().as_deref(),
        Some("this_side")
    );
    browser.screenshot("sync-rules").await;
    browser.client.clone().close().await.unwrap();
}

/// Issue 11, item 4: an order linked to a client far beyond the first 500 shows that
/// client in its picker; saving the order's status keeps the link; typing part of another
/// client's name and choosing it links the order to that client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_picker_keeps_and_finds_a_client_among_many() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = server.admin();
    let shop = common::orders_of_many_clients(&api, 600).await;
    let (status, client) = (shop.status.to_string(), shop.client.to_string());
    let order = || async {
        api.ok(
            reqwest::Method::GET,
            &format!("/tables/{}/records/{}", shop.orders, shop.order),
            None,
        )
        .await["values"]
            .clone()
    };
    let browser = Browser::start("en").await;
    browser.sign_in(&server.url).await;
    browser
        .goto(&format!(
            "{}/tables/{}/{}",
            server.url, shop.orders, shop.order
        ))
        .await;
    let picker = format!("#pick-f{client}");
    let far = format!("Client 0600 (#{})", shop.far_client);
    let shown = browser.find(&picker).await.prop("value").await.unwrap();
    assert_eq!(shown.as_deref(), Some(far.as_str()));

    // Another field changed and saved: the link stays.
    browser
        .choose(&format!("select[name=f{status}]"), "Paid")
        .await;
    browser.click("#save-record").await;
    eventually(20, "the status saved", || async {
        (order().await[&status] == "Paid").then_some(())
    })
    .await;
    assert_eq!(order().await[&client], shop.far_client);
    assert!(browser.text(".notice").await.contains("Saved"));
    let shown = browser.find(&picker).await.prop("value").await.unwrap();
    assert_eq!(shown.as_deref(), Some(far.as_str()));

    // Part of another client's name typed over the current one (a click into the picker
    // selects its text), that client chosen, saved.
    let search = browser.find(&picker).await;
    search.click().await.unwrap();
    search.send_keys("ebra tra").await.unwrap();
    let zebra = format!(".picker-results button[data-id=\"{}\"]", shop.zebra);
    browser.find(&zebra).await;
    browser.screenshot("link-picker").await;
    browser.click(&zebra).await;
    let shown = browser.find(&picker).await.prop("value").await.unwrap();
    assert_eq!(
        shown.as_deref(),
        Some(format!("Zebra Trading (#{})", shop.zebra).as_str())
    );
    browser.click("#save-record").await;
    eventually(20, "the order linked to the chosen client", || async {
        (order().await[&client] == shop.zebra).then_some(())
    })
    .await;
    assert_eq!(order().await[&status], "Paid");
    browser.client.clone().close().await.unwrap();
}

/// Issue 11, item 17 (S-23 over folders): a passive local-folder sync set up in the web UI
/// with remote access and the active side's address; a record that came through the
/// folders has a button that opens the same record on the active side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_folder_sync_opens_a_record_on_the_active_side() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    let aux = Server::start(&dir.path().join("aux"));
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, main_name, _) = clients(&main_api, &[]).await;
    let (aux_table, aux_name, _) = clients(&aux_api, &[]).await;
    let (up, down) = (dir.path().join("up"), dir.path().join("down"));
    let active = main_api
        .ok(
            reqwest::Method::POST,
            "/syncs",
            Some(
                json!({ "name": "Branch", "mode": "active", "transport": "local",
                         "password": "123456", "period_seconds": 1,
                         "local": { "upload_dir": up, "download_dir": down } }),
            ),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    main_api
        .ok(
            reqwest::Method::POST,
            &format!("/syncs/{active}/fields"),
            Some(json!({ "field_no": main_name })),
        )
        .await;
    // Two host names, so the browser keeps one session cookie for each instance.
    let main_url = main.url.clone();
    let aux_url = aux.url.replace("127.0.0.1", "localhost");
    let browser = Browser::start("en").await;
    browser.sign_in(&main_url).await;

    // The passive side, in the web UI: folders, remote access and the active's address.
    browser.sign_in(&aux_url).await;
    browser.goto(&format!("{aux_url}/syncs/new")).await;
    browser.fill("input[name=name]", "Main office").await;
    browser.choose("select[name=mode]", "passive").await;
    browser.choose("select[name=transport]", "local").await;
    browser
        .fill("input[name=local_upload_dir]", down.to_str().unwrap())
        .await;
    browser
        .fill("input[name=local_download_dir]", up.to_str().unwrap())
        .await;
    browser.click("input[name=remote_access]").await;
    browser.fill("input[name=remote_url]", &main_url).await;
    browser.fill("input[name=password]", "123456").await;
    browser.fill("input[name=period_seconds]", "1").await;
    browser.screenshot("add-folder-sync").await;
    browser.click("#create-sync").await;
    browser.find("#sync-status").await;
    let passive_page = browser.client.current_url().await.unwrap().to_string();
    let passive: i64 = passive_page.rsplit('/').next().unwrap().parse().unwrap();
    let (_, settings) = aux_api.get(&format!("/syncs/{passive}")).await;
    assert_eq!(settings["transport"], "local", "{settings}");
    assert_eq!(settings["remote_access"], true, "{settings}");
    assert_eq!(settings["remote_url"], main_url.as_str(), "{settings}");
    browser.choose("#field-table", &aux_table.to_string()).await;
    browser.choose("#field-no", &aux_name.to_string()).await;
    browser.choose("select[name=direction]", "both").await;
    browser
        .fill("input[name=remote_typed]", &main_name.to_string())
        .await;
    browser.click("#add-field-button").await;
    browser
        .find(&format!("tr[data-field=\"{aux_name}\"]"))
        .await;

    // A client made on the active side comes through the folders and opens there.
    let original = main_api
        .create_record(
            main_table,
            json!({ main_name.to_string(): "Folder client" }),
        )
        .await;
    let copy = eventually(30, "the client through the folders", || async {
        let page = aux_api
            .ok(
                reqwest::Method::GET,
                &format!("/tables/{aux_table}/records?q=Folder"),
                None,
            )
            .await;
        page["records"][0]["id"].as_i64()
    })
    .await;
    browser
        .goto(&format!("{aux_url}/tables/{aux_table}/{copy}"))
        .await;
    let on_active = browser
        .find("#open-on-active")
        .await
        .attr("href")
        .await
        .unwrap()
        .expect("a link to the active side");
    assert_eq!(
        on_active,
        format!(
            "{main_url}/tables/{main_table}/uid/{}",
            original["uid"].as_str().unwrap()
        )
    );
    browser.goto(&on_active).await;
    assert_eq!(
        browser.client.current_url().await.unwrap().as_str(),
        format!("{main_url}/tables/{main_table}/{}", original["id"])
    );
    browser.client.clone().close().await.unwrap();
}
