file(REMOVE_RECURSE
  "CMakeFiles/tally.dir/batch.c.o"
  "CMakeFiles/tally.dir/batch.c.o.d"
  "CMakeFiles/tally.dir/codec.c.o"
  "CMakeFiles/tally.dir/codec.c.o.d"
  "CMakeFiles/tally.dir/crc32c.c.o"
  "CMakeFiles/tally.dir/crc32c.c.o.d"
  "CMakeFiles/tally.dir/db.c.o"
  "CMakeFiles/tally.dir/db.c.o.d"
  "CMakeFiles/tally.dir/handle.c.o"
  "CMakeFiles/tally.dir/handle.c.o.d"
  "CMakeFiles/tally.dir/log.c.o"
  "CMakeFiles/tally.dir/log.c.o.d"
  "CMakeFiles/tally.dir/mdel.c.o"
  "CMakeFiles/tally.dir/mdel.c.o.d"
  "CMakeFiles/tally.dir/mem.c.o"
  "CMakeFiles/tally.dir/mem.c.o.d"
  "CMakeFiles/tally.dir/once.c.o"
  "CMakeFiles/tally.dir/once.c.o.d"
  "CMakeFiles/tally.dir/recover.c.o"
  "CMakeFiles/tally.dir/recover.c.o.d"
  "CMakeFiles/tally.dir/snap.c.o"
  "CMakeFiles/tally.dir/snap.c.o.d"
  "CMakeFiles/tally.dir/table.c.o"
  "CMakeFiles/tally.dir/table.c.o.d"
  "CMakeFiles/tally.dir/tail.c.o"
  "CMakeFiles/tally.dir/tail.c.o.d"
  "libtally.a"
  "libtally.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
