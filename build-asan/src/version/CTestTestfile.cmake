# CMake generated Testfile for 
# Source directory: /work/wt/pg/src/version
# Build directory: /work/wt/pg/build-asan/src/version
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
