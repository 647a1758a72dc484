# Empty dependencies file for test_engine_commit.
# This may be replaced when dependencies are built.
