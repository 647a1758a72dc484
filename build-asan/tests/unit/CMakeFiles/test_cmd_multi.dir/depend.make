# Empty dependencies file for test_cmd_multi.
# This may be replaced when dependencies are built.
