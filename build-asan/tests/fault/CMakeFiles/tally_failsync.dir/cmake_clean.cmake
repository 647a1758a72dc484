file(REMOVE_RECURSE
  "../libtally_failsync.pdb"
  "../libtally_failsync.so"
  "CMakeFiles/tally_failsync.dir/failsync.c.o"
  "CMakeFiles/tally_failsync.dir/failsync.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_failsync.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
