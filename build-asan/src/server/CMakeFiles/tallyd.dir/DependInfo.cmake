
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/src/server/conffile.c" "src/server/CMakeFiles/tallyd.dir/conffile.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/conffile.c.o.d"
  "/work/wt/pg/src/server/config.c" "src/server/CMakeFiles/tallyd.dir/config.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/config.c.o.d"
  "/work/wt/pg/src/server/conn.c" "src/server/CMakeFiles/tallyd.dir/conn.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/conn.c.o.d"
  "/work/wt/pg/src/server/fronts.c" "src/server/CMakeFiles/tallyd.dir/fronts.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/fronts.c.o.d"
  "/work/wt/pg/src/server/log.c" "src/server/CMakeFiles/tallyd.dir/log.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/log.c.o.d"
  "/work/wt/pg/src/server/main.c" "src/server/CMakeFiles/tallyd.dir/main.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/main.c.o.d"
  "/work/wt/pg/src/server/notify.c" "src/server/CMakeFiles/tallyd.dir/notify.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/notify.c.o.d"
  "/work/wt/pg/src/server/outbox.c" "src/server/CMakeFiles/tallyd.dir/outbox.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/outbox.c.o.d"
  "/work/wt/pg/src/server/push.c" "src/server/CMakeFiles/tallyd.dir/push.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/push.c.o.d"
  "/work/wt/pg/src/server/tls.c" "src/server/CMakeFiles/tallyd.dir/tls.c.o" "gcc" "src/server/CMakeFiles/tallyd.dir/tls.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/pg/build-asan/src/proto/CMakeFiles/tally_proto.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/cmd/CMakeFiles/tally_cmd.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/util/CMakeFiles/tally_util.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/engine/CMakeFiles/tally.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/version/CMakeFiles/tally_version.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/store/CMakeFiles/tally_store.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
