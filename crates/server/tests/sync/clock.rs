//! Clock sanity (B-19): a peer whose clock is far off is flagged in the status on both
//! sides, and merging still ends with one value on both (hybrid logical clocks).

use super::http::{add_field, clients, pair, record_values};
use crate::common::{Server, eventually};
use serde_json::json;

#[tokio::test]
async fn a_peer_clock_ninety_seconds_ahead_is_flagged_and_merging_still_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let main = Server::start(&dir.path().join("main"));
    // The auxiliary machine's clock runs 90 s fast.
    let aux = Server::start_with_clock_offset(&dir.path().join("aux"), 90_000);
    let (main_api, aux_api) = (main.admin(), aux.admin());
    let (main_table, m) = clients(&main_api, &["Name"]).await;
    let (aux_table, a) = clients(&aux_api, &["Name"]).await;
    let (active, passive) = pair(&main_api, &aux_api, "123456").await;
    add_field(&main_api, active, m[0], "both", None).await;
    add_field(&aux_api, passive, a[0], "both", Some(m[0])).await;

    let on_main = eventually(30, "main sees aux's clock ahead", || async {
        let (_, s) = main_api.get(&format!("/syncs/{active}/status")).await;
        // Flagged, not refused: the sync works.
        (s["connected"] == true
            && s["clock_warning"]
                .as_str()
                .is_some_and(|w| w.contains("ahead of")))
        .then_some(s)
    })
    .await;
    let offset = on_main["peer_clock_offset_ms"].as_i64().unwrap();
    assert!((85_000..95_000).contains(&offset), "{on_main}");

    let on_aux = eventually(30, "aux sees main's clock behind", || async {
        let (_, s) = aux_api.get(&format!("/syncs/{passive}/status")).await;
        s["clock_warning"]
            .as_str()
            .is_some_and(|w| w.contains("behind"))
            .then_some(s)
    })
    .await;
    assert!(
        on_aux["peer_clock_offset_ms"].as_i64().unwrap() < -85_000,
        "{on_aux}"
    );

    // The same field edited on both: one value on both, whatever the clocks say.
    let record = main_api
        .create_record(main_table, json!({ m[0].to_string(): "start" }))
        .await;
    let copy = eventually(30, "the record on aux", || async {
        let (_, r) = aux_api
            .get(&format!(
                "/tables/{aux_table}/records/uid/{}",
                record["uid"].as_str().unwrap()
            ))
            .await;
        r["id"].as_i64()
    })
    .await;
    aux_api
        .patch(
            &format!("/tables/{aux_table}/records/{copy}"),
            json!({ "values": { a[0].to_string(): "edited on aux" } }),
        )
        .await;
    main_api
        .patch(
            &format!("/tables/{main_table}/records/{}", record["id"]),
            json!({ "values": { m[0].to_string(): "edited on main" } }),
        )
        .await;
    eventually(30, "one value on both sides", || async {
        let (here, there) = (
            record_values(&main_api, main_table).await,
            record_values(&aux_api, aux_table).await,
        );
        (here[0][m[0].to_string()] == there[0][a[0].to_string()]).then_some(())
    })
    .await;
}
