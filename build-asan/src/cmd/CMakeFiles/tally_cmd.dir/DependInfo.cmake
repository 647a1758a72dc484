
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/src/cmd/clients.c" "src/cmd/CMakeFiles/tally_cmd.dir/clients.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/clients.c.o.d"
  "/work/wt/pg/src/cmd/cmd.c" "src/cmd/CMakeFiles/tally_cmd.dir/cmd.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/cmd.c.o.d"
  "/work/wt/pg/src/cmd/events.c" "src/cmd/CMakeFiles/tally_cmd.dir/events.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/events.c.o.d"
  "/work/wt/pg/src/cmd/glob.c" "src/cmd/CMakeFiles/tally_cmd.dir/glob.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/glob.c.o.d"
  "/work/wt/pg/src/cmd/keyspace.c" "src/cmd/CMakeFiles/tally_cmd.dir/keyspace.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/keyspace.c.o.d"
  "/work/wt/pg/src/cmd/multi.c" "src/cmd/CMakeFiles/tally_cmd.dir/multi.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/multi.c.o.d"
  "/work/wt/pg/src/cmd/pubsub.c" "src/cmd/CMakeFiles/tally_cmd.dir/pubsub.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/pubsub.c.o.d"
  "/work/wt/pg/src/cmd/replay.c" "src/cmd/CMakeFiles/tally_cmd.dir/replay.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/replay.c.o.d"
  "/work/wt/pg/src/cmd/script.c" "src/cmd/CMakeFiles/tally_cmd.dir/script.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/script.c.o.d"
  "/work/wt/pg/src/cmd/sha1.c" "src/cmd/CMakeFiles/tally_cmd.dir/sha1.c.o" "gcc" "src/cmd/CMakeFiles/tally_cmd.dir/sha1.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/pg/build-asan/src/store/CMakeFiles/tally_store.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/engine/CMakeFiles/tally.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/util/CMakeFiles/tally_util.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
