# Empty dependencies file for test_cmd_del.
# This may be replaced when dependencies are built.
