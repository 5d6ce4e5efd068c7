//! What every store behind the domain's `Store` traits must do, as one suite of behaviours
//! (as atuin runs one set of database tests against each backend). A store's own tests
//! name a [`Backend`] — how to get an empty storage place and open the store on it — and
//! call [`conformance_suite!`], which makes one `#[test]` per behaviour:
//!
//! ```ignore
//! struct Sqlite(tempfile::TempDir);
//! impl crmsync_store_conformance::Backend for Sqlite { … }
//! crmsync_store_conformance::conformance_suite!(Sqlite);
//! ```
//!
//! Every behaviour goes through the traits only: nothing here knows SQL.

pub mod change_log;
pub mod convergence;
pub mod fixtures;
pub mod numbering;
pub mod opening;
pub mod postgres_cluster;
pub mod records;
pub mod syncs;

use crmsync_domain::Store;

/// A kind of store under test.
pub trait Backend: Sized {
    type Store: Store;
    /// A new, empty storage place (a folder, a database), removed when dropped.
    fn new() -> Self;
    /// Opens the store on this place, creating or migrating it; may be called again, also
    /// while a store opened before is still open.
    fn open(&self) -> Self::Store;
}

/// One `#[test]` per behaviour of the suite, for the backend `$backend`.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ty) => {
        $crate::conformance_suite!(@each $backend;
            records::stamps_round_trip_for_local_and_remote_writers,
            records::a_failed_transaction_leaves_nothing,
            records::a_write_that_goes_on_after_a_failed_statement_reports_what_was_kept,
            records::kept_record_counts_match_the_records_through_every_kind_of_write,
            records::the_uids_present_are_found_and_records_read_among_many,
            records::a_deleted_record_stays_as_a_tombstone_and_is_listed_by_status,
            change_log::a_sync_reads_the_log_without_its_echoes_and_to_its_end,
            change_log::a_record_s_history_is_every_write_in_order_with_its_origin,
            change_log::an_origin_the_domain_does_not_know_reads_back_as_it_was_written,
            change_log::a_write_and_its_log_entry_are_seen_by_reads_in_the_same_transaction,
            syncs::the_config_version_grows_with_what_a_mapping_is_built_from_only,
            syncs::a_sync_s_cursors_and_state_are_kept_as_saved,
            syncs::a_held_change_replaces_the_same_part_and_is_released_alone,
            syncs::pending_links_and_the_sync_log_are_kept_per_sync_and_pruned_by_age,
            syncs::deleting_a_sync_removes_its_fields_progress_and_log,
            numbering::the_owner_numbers_records_one_by_one_from_the_start,
            numbering::a_numbering_set_on_a_field_that_holds_numbers_starts_past_the_largest,
            numbering::a_number_is_never_typed_nor_edited,
            numbering::a_failed_write_gives_its_number_to_no_record,
            numbering::blocks_handed_out_and_numbers_used_here_never_overlap,
            numbering::a_block_is_from_one_to_the_largest_block_and_only_from_the_owner,
            numbering::an_instance_drawing_numbers_uses_its_blocks_in_order_and_refuses_records_without_one,
            opening::a_store_opened_again_keeps_its_identity_and_everything_written,
            opening::users_and_web_sessions_round_trip,
            convergence::replicas_converge_on_the_newest_write_whatever_the_order_of_delivery,
        );
    };
    (@each $backend:ty; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::$module::$name::<$backend>();
            }
        )*
    };
}
