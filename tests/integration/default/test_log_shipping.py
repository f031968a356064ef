"""Log shipping on this scenario's hosts (the tests are in helpers/log_shipping.py)."""

from helpers.log_shipping import (  # noqa: F401 (collected by pytest)
    test_every_worker_ships_and_the_secret_key_is_not_in_ps_or_the_journal,
    test_s3_outage_loses_nothing,
    test_shipped_job_directories_older_than_the_retention_are_deleted,
    test_stopping_the_target_stops_the_workers_first_and_ships_their_last_logs,
    test_stopping_the_unit_ships_what_is_left,
)
