# CMake generated Testfile for 
# Source directory: /work/wt/pg/tests/store
# Build directory: /work/wt/pg/build-asan/tests/store
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(test_store_pg "/work/wt/pg/tests/store/pg_server.sh" "run" "0" "/work/wt/pg/build-asan/tests/test_store_pg")
set_tests_properties(test_store_pg PROPERTIES  LABELS "store;pg" TIMEOUT "600" _BACKTRACE_TRIPLES "/work/wt/pg/tests/store/CMakeLists.txt;8;add_test;/work/wt/pg/tests/store/CMakeLists.txt;0;")
