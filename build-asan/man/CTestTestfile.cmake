# CMake generated Testfile for 
# Source directory: /work/wt/pg/man
# Build directory: /work/wt/pg/build-asan/man
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
