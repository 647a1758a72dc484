
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/src/cli/main.c" "src/cli/CMakeFiles/tally_cli.dir/main.c.o" "gcc" "src/cli/CMakeFiles/tally_cli.dir/main.c.o.d"
  "/work/wt/pg/src/cli/offline.c" "src/cli/CMakeFiles/tally_cli.dir/offline.c.o" "gcc" "src/cli/CMakeFiles/tally_cli.dir/offline.c.o.d"
  "/work/wt/pg/src/cli/online.c" "src/cli/CMakeFiles/tally_cli.dir/online.c.o" "gcc" "src/cli/CMakeFiles/tally_cli.dir/online.c.o.d"
  "/work/wt/pg/src/cli/out.c" "src/cli/CMakeFiles/tally_cli.dir/out.c.o" "gcc" "src/cli/CMakeFiles/tally_cli.dir/out.c.o.d"
  "/work/wt/pg/src/cli/tls.c" "src/cli/CMakeFiles/tally_cli.dir/tls.c.o" "gcc" "src/cli/CMakeFiles/tally_cli.dir/tls.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/pg/build-asan/src/util/CMakeFiles/tally_util.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/engine/CMakeFiles/tally.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/version/CMakeFiles/tally_version.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
