
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/bench/bench_expire.c" "bench/CMakeFiles/bench_expire.dir/bench_expire.c.o" "gcc" "bench/CMakeFiles/bench_expire.dir/bench_expire.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/pg/build-asan/src/util/CMakeFiles/tally_util.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/engine/CMakeFiles/tally.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
