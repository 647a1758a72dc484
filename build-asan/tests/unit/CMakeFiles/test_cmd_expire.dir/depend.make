# Empty dependencies file for test_cmd_expire.
# This may be replaced when dependencies are built.
