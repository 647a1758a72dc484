# CMake generated Testfile for 
# Source directory: /work/wt/pg
# Build directory: /work/wt/pg/build-asan
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
subdirs("src/engine")
subdirs("src/util")
subdirs("src/version")
subdirs("src/store")
subdirs("src/cmd")
subdirs("src/proto")
subdirs("src/server")
subdirs("src/cli")
subdirs("examples")
subdirs("man")
subdirs("tests/unit")
subdirs("tests/fault")
subdirs("tests/store")
subdirs("bench")
