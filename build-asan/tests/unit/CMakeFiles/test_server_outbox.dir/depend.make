# Empty dependencies file for test_server_outbox.
# This may be replaced when dependencies are built.
