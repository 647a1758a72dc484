file(REMOVE_RECURSE
  "CMakeFiles/tally_shared.dir/batch.c.o"
  "CMakeFiles/tally_shared.dir/batch.c.o.d"
  "CMakeFiles/tally_shared.dir/codec.c.o"
  "CMakeFiles/tally_shared.dir/codec.c.o.d"
  "CMakeFiles/tally_shared.dir/crc32c.c.o"
  "CMakeFiles/tally_shared.dir/crc32c.c.o.d"
  "CMakeFiles/tally_shared.dir/db.c.o"
  "CMakeFiles/tally_shared.dir/db.c.o.d"
  "CMakeFiles/tally_shared.dir/handle.c.o"
  "CMakeFiles/tally_shared.dir/handle.c.o.d"
  "CMakeFiles/tally_shared.dir/log.c.o"
  "CMakeFiles/tally_shared.dir/log.c.o.d"
  "CMakeFiles/tally_shared.dir/mdel.c.o"
  "CMakeFiles/tally_shared.dir/mdel.c.o.d"
  "CMakeFiles/tally_shared.dir/mem.c.o"
  "CMakeFiles/tally_shared.dir/mem.c.o.d"
  "CMakeFiles/tally_shared.dir/once.c.o"
  "CMakeFiles/tally_shared.dir/once.c.o.d"
  "CMakeFiles/tally_shared.dir/recover.c.o"
  "CMakeFiles/tally_shared.dir/recover.c.o.d"
  "CMakeFiles/tally_shared.dir/snap.c.o"
  "CMakeFiles/tally_shared.dir/snap.c.o.d"
  "CMakeFiles/tally_shared.dir/table.c.o"
  "CMakeFiles/tally_shared.dir/table.c.o.d"
  "CMakeFiles/tally_shared.dir/tail.c.o"
  "CMakeFiles/tally_shared.dir/tail.c.o.d"
  "libtally.pdb"
  "libtally.so"
  "libtally.so.0.1"
  "libtally.so.0.1.0"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_shared.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
