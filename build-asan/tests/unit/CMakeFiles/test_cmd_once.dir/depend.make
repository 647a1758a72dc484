# Empty dependencies file for test_cmd_once.
# This may be replaced when dependencies are built.
