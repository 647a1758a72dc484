# CMake generated Testfile for 
# Source directory: /work/wt/pg/src/store
# Build directory: /work/wt/pg/build-asan/src/store
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
