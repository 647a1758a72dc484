# CMake generated Testfile for 
# Source directory: /work/wt/pg/tests/fault
# Build directory: /work/wt/pg/build-asan/tests/fault
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
