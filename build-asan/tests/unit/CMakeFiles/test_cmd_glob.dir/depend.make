# Empty dependencies file for test_cmd_glob.
# This may be replaced when dependencies are built.
