
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/tests/store/test_store_pg.c" "tests/store/CMakeFiles/test_store_pg.dir/test_store_pg.c.o" "gcc" "tests/store/CMakeFiles/test_store_pg.dir/test_store_pg.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt/pg/build-asan/CMakeFiles/tally_store_pg.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/engine/CMakeFiles/tally.dir/DependInfo.cmake"
  "/work/wt/pg/build-asan/src/util/CMakeFiles/tally_util.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
