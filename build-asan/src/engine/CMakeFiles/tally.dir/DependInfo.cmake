
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/pg/src/engine/batch.c" "src/engine/CMakeFiles/tally.dir/batch.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/batch.c.o.d"
  "/work/wt/pg/src/engine/codec.c" "src/engine/CMakeFiles/tally.dir/codec.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/codec.c.o.d"
  "/work/wt/pg/src/engine/crc32c.c" "src/engine/CMakeFiles/tally.dir/crc32c.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/crc32c.c.o.d"
  "/work/wt/pg/src/engine/db.c" "src/engine/CMakeFiles/tally.dir/db.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/db.c.o.d"
  "/work/wt/pg/src/engine/handle.c" "src/engine/CMakeFiles/tally.dir/handle.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/handle.c.o.d"
  "/work/wt/pg/src/engine/log.c" "src/engine/CMakeFiles/tally.dir/log.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/log.c.o.d"
  "/work/wt/pg/src/engine/mdel.c" "src/engine/CMakeFiles/tally.dir/mdel.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/mdel.c.o.d"
  "/work/wt/pg/src/engine/mem.c" "src/engine/CMakeFiles/tally.dir/mem.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/mem.c.o.d"
  "/work/wt/pg/src/engine/once.c" "src/engine/CMakeFiles/tally.dir/once.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/once.c.o.d"
  "/work/wt/pg/src/engine/recover.c" "src/engine/CMakeFiles/tally.dir/recover.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/recover.c.o.d"
  "/work/wt/pg/src/engine/snap.c" "src/engine/CMakeFiles/tally.dir/snap.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/snap.c.o.d"
  "/work/wt/pg/src/engine/table.c" "src/engine/CMakeFiles/tally.dir/table.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/table.c.o.d"
  "/work/wt/pg/src/engine/tail.c" "src/engine/CMakeFiles/tally.dir/tail.c.o" "gcc" "src/engine/CMakeFiles/tally.dir/tail.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
