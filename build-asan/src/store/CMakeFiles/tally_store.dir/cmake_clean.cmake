file(REMOVE_RECURSE
  "CMakeFiles/tally_store.dir/engine.c.o"
  "CMakeFiles/tally_store.dir/engine.c.o.d"
  "CMakeFiles/tally_store.dir/store.c.o"
  "CMakeFiles/tally_store.dir/store.c.o.d"
  "libtally_store.a"
  "libtally_store.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_store.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
