# Empty compiler generated dependencies file for test_cmd_exec.
# This may be replaced when dependencies are built.
