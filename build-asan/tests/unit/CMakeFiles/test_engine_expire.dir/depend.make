# Empty dependencies file for test_engine_expire.
# This may be replaced when dependencies are built.
