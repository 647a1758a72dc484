# Empty compiler generated dependencies file for test_cmd_events.
# This may be replaced when dependencies are built.
