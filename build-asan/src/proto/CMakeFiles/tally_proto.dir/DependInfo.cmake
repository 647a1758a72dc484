
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/src/proto/http.c" "src/proto/CMakeFiles/tally_proto.dir/http.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http.c.o.d"
  "/work/wt/pg/src/proto/http_batch.c" "src/proto/CMakeFiles/tally_proto.dir/http_batch.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http_batch.c.o.d"
  "/work/wt/pg/src/proto/http_counter.c" "src/proto/CMakeFiles/tally_proto.dir/http_counter.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http_counter.c.o.d"
  "/work/wt/pg/src/proto/http_events.c" "src/proto/CMakeFiles/tally_proto.dir/http_events.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http_events.c.o.d"
  "/work/wt/pg/src/proto/http_guard.c" "src/proto/CMakeFiles/tally_proto.dir/http_guard.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http_guard.c.o.d"
  "/work/wt/pg/src/proto/http_page.c" "src/proto/CMakeFiles/tally_proto.dir/http_page.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http_page.c.o.d"
  "/work/wt/pg/src/proto/http_reply.c" "src/proto/CMakeFiles/tally_proto.dir/http_reply.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/http_reply.c.o.d"
  "/work/wt/pg/src/proto/memcache.c" "src/proto/CMakeFiles/tally_proto.dir/memcache.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/memcache.c.o.d"
  "/work/wt/pg/src/proto/memcache_meta.c" "src/proto/CMakeFiles/tally_proto.dir/memcache_meta.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/memcache_meta.c.o.d"
  "/work/wt/pg/src/proto/metrics.c" "src/proto/CMakeFiles/tally_proto.dir/metrics.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/metrics.c.o.d"
  "/work/wt/pg/build-asan/src/proto/page_files.c" "src/proto/CMakeFiles/tally_proto.dir/page_files.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/page_files.c.o.d"
  "/work/wt/pg/src/proto/resp.c" "src/proto/CMakeFiles/tally_proto.dir/resp.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp.c.o.d"
  "/work/wt/pg/src/proto/resp_admin.c" "src/proto/CMakeFiles/tally_proto.dir/resp_admin.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_admin.c.o.d"
  "/work/wt/pg/src/proto/resp_clients.c" "src/proto/CMakeFiles/tally_proto.dir/resp_clients.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_clients.c.o.d"
  "/work/wt/pg/src/proto/resp_expire.c" "src/proto/CMakeFiles/tally_proto.dir/resp_expire.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_expire.c.o.d"
  "/work/wt/pg/src/proto/resp_keys.c" "src/proto/CMakeFiles/tally_proto.dir/resp_keys.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_keys.c.o.d"
  "/work/wt/pg/src/proto/resp_multi.c" "src/proto/CMakeFiles/tally_proto.dir/resp_multi.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_multi.c.o.d"
  "/work/wt/pg/src/proto/resp_parse.c" "src/proto/CMakeFiles/tally_proto.dir/resp_parse.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_parse.c.o.d"
  "/work/wt/pg/src/proto/resp_pubsub.c" "src/proto/CMakeFiles/tally_proto.dir/resp_pubsub.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_pubsub.c.o.d"
  "/work/wt/pg/src/proto/resp_reply.c" "src/proto/CMakeFiles/tally_proto.dir/resp_reply.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_reply.c.o.d"
  "/work/wt/pg/src/proto/resp_script.c" "src/proto/CMakeFiles/tally_proto.dir/resp_script.c.o" "gcc" "src/proto/CMakeFiles/tally_proto.dir/resp_script.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/pg/build-asan/src/cmd/CMakeFiles/tally_cmd.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/util/CMakeFiles/tally_util.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/store/CMakeFiles/tally_store.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/engine/CMakeFiles/tally.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
