# SPDX-License-Identifier: BSD-3-Clause
"""What the black-box suite finds different on --store postgresql://, one
test id per line with the reason: conftest.py marks each xfail(strict=True)
under TALLY_TEST_STORE=postgresql, so the second pass of ./test.sh stays
green while every difference stays listed here, and a test that starts to
pass there fails until its line is removed.  (Tests about the engine's own
files are not here: they carry @pytest.mark.engine_files in their file.)

Ids are "file::test" (every parameter) or "file::test[param]".  Measured
with store at c07b8e6 and pg at 9fbfad2 merged.  GAP is a documented "not
yet" (docs/postgresql.md); BUG is a difference that looks like a defect,
reported to the integrator.
"""

GAP_LOG = ("GAP: the engine's own log figures (tally_syncs_total, the "
           "sync and group-commit histograms, tally_log_bytes, the "
           "dashboard's fsync histogram): a remote store has no log of "
           "tally's; its commits show in tally_store_pg_transactions")
BUG_WINDOW = ("BUG?: the TTL left of a fixed window read back a few ms longer "
              "than the time since it opened (database clock against ours)")
BUG_409 = ("BUG?: no copy of an Idempotency-Key request sent while the first "
           "is in flight got 409 on PostgreSQL")

KNOWN = {
    "test_http_metrics.py::test_metrics_move_as_operations_happen":
        GAP_LOG,
    "test_dashboard_browser.py::test_dashboard_live_counter_and_increment_button":
        GAP_LOG,
    "test_http_expire.py::test_fixed_window_survives_sigkill_then_ends":
        BUG_WINDOW,
    "test_http_idempotency.py::test_retry_before_the_first_is_durable_is_409":
        BUG_409,
    "test_resp_pubsub.py::test_slow_subscriber_is_cut_off_and_writers_do_not_slow_down":
        ("TIMING: writes through PostgreSQL are too few in the test's window "
         "to fill the stuck subscriber's 256 KiB and cut it off (the pubsub "
         "code is the same on every store and passes on the engine)"),
}

# Timing-dependent: they may pass on a quiet machine, so not strict.
NOT_STRICT = {
    "test_resp_pubsub.py::test_slow_subscriber_is_cut_off_and_writers_do_not_slow_down",
    "test_http_expire.py::test_fixed_window_survives_sigkill_then_ends",
    "test_http_idempotency.py::test_retry_before_the_first_is_durable_is_409",
}
